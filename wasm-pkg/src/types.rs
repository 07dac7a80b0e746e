//! The TypeScript types of the package's arguments and results, and the Rust handles for them.
//!
//! wasm-bindgen writes these declarations into the generated `.d.ts`; the exported functions
//! name them, so TypeScript callers get precise types instead of `any`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** What the host knows about the request besides its body. */
export interface IngestContext {
  /** The Content-Type header, or null/undefined when absent. */
  contentType?: string | null;
  /** The User-Agent header ("" when absent). */
  userAgent: string;
  /** The client's IP address (v4 or v6). Used for the visitor id only, never returned. */
  ip: string;
  /** The edge's two-letter country header, if any. */
  country?: string | null;
  /** The edge's region (subdivision) code, if any: `TX` or `US-TX` (CloudFront's
   * `CloudFront-Viewer-Country-Region`, Cloudflare's `cf.regionCode`). Kept only with a country. */
  region?: string | null;
  /** The edge's city name, if any (CloudFront's `CloudFront-Viewer-City`, Cloudflare's `cf.city`).
   * Kept only with a country. */
  city?: string | null;
  /** Arrival time in ms since the Unix epoch (Date.now()). */
  receivedMs: number;
  /** The daily salts in force, 16 bytes each. */
  salts: Salts;
  /** 16 random bytes (read little-endian) or a bigint below 2^128; the request's events get consecutive ids from it. */
  firstEventId: Uint8Array | bigint;
}

/** Today's salt and yesterday's (for visits across midnight), 16 bytes each. */
export interface Salts {
  current: Uint8Array;
  previous: Uint8Array;
}

/** The registered sites: a list of domains (normalised as site ids), or a predicate over a normalised site id. */
export type Sites = string[] | ((siteId: string) => boolean);

/** One Kinesis record, ready for PutRecords. */
export interface PackedRecord {
  /** `site#sub`. */
  partitionKey: string;
  /** Version byte + packed log entries. */
  data: Uint8Array;
}

/** The answer to one request body, as the native server gives it. */
export type IngestResult =
  | {
      status: 202;
      /** Events accepted (X-Tally-Accepted). */
      accepted: number;
      /** Drop reasons in body order (X-Tally-Dropped, joined with ", "). */
      dropped: string[];
      /** Every accepted event and every drop, packed: all must reach Kinesis before answering 202. */
      records: PackedRecord[];
    }
  | {
      status: 400 | 413 | 415;
      /** The reason, answered as {"error": error}. */
      error: string;
      accepted: 0;
      dropped: [];
      records: [];
    };

/** One decoded log entry of a record. */
export type LogEntry = EventEntry | DropEntry | DropsEntry;

/** An accepted event. */
export interface EventEntry {
  kind: "event";
  id: bigint;
  receivedMs: number;
  site: string;
  name: string;
  url: string;
  referrer: string | null;
  /** Custom properties as [name, value] pairs, sorted by name. */
  props: [string, string][];
  revenue: { amount: string; currency: string } | null;
  interactive: boolean;
  userAgent: string;
  country: string | null;
  visitor: { current: bigint; previous: bigint };
  /** ISO 3166-2 subdivision code, e.g. `US-TX`. */
  region: string | null;
  city: string | null;
  /** What an `engagement` event measured (null on every other event): scroll depth in percent
   * (null if not sent) and engaged milliseconds. */
  engagement: { scrollDepth: number | null; engagedMs: number } | null;
  /** Whether the tracker ran in hash mode (`h`): the URL's fragment is part of the page's path. */
  hashMode: boolean;
}

/** A dropped event, counted per site and reason. */
export interface DropEntry {
  kind: "drop";
  /** Unique like an event's id (consecutive with the request's events); null only for drops
   * written in entry codec version 1. */
  id: bigint | null;
  /** The registered site it named, or null. */
  site: string | null;
  reason: string;
  receivedMs: number;
}

/** Dropped events counted together (entry codec version 4): what `tally serve` refused
 * without logging each one (reason "rate_limited"). Edges never write these. */
export interface DropsEntry {
  kind: "drops";
  id: bigint;
  site: string | null;
  reason: string;
  /** When the last of them was received. */
  receivedMs: number;
  count: number;
}

/** Versions and limits of the formats this build reads and writes. */
export interface FormatInfo {
  /** The version byte in front of every Kinesis record. */
  recordVersion: number;
  /** The version byte in front of every packed log entry. */
  entryVersion: number;
  /** Largest record data written, in bytes. */
  maxRecordBytes: number;
  /** Largest request body taken, in bytes (413 above). */
  maxBodyBytes: number;
  /** Most events in one batch body. */
  maxBatchEvents: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// An `IngestContext` object.
    #[wasm_bindgen(typescript_type = "IngestContext")]
    pub type IngestContext;

    /// A `Sites` value: a list of domains or a predicate.
    #[wasm_bindgen(typescript_type = "Sites")]
    pub type Sites;

    /// An `IngestResult` object.
    #[wasm_bindgen(typescript_type = "IngestResult")]
    pub type IngestResult;

    /// An array of `LogEntry` objects.
    #[wasm_bindgen(typescript_type = "LogEntry[]")]
    pub type LogEntries;

    /// A `FormatInfo` object.
    #[wasm_bindgen(typescript_type = "FormatInfo")]
    pub type FormatInfo;
}
