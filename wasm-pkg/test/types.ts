// Compile-only check of the generated TypeScript declarations (scripts/test runs tsc --strict on
// it): the types are valid and precise, and the @ts-expect-error lines must stay errors.
import { formatInfo, ingest, unpackRecord, visitorId } from '../pkg/tally_wasm';
import type { FormatInfo, IngestContext, IngestResult, LogEntry, Sites } from '../pkg/tally_wasm';

const salts = { current: new Uint8Array(16), previous: new Uint8Array(16) };
const ctx: IngestContext = { userAgent: 'UA', ip: '1.2.3.4', receivedMs: Date.now(), salts, firstEventId: 1n };
const sites: Sites = (site: string) => site === 'a.com';
const result: IngestResult = ingest(new Uint8Array(), ctx, sites, 1);

if (result.status === 202) {
  const accepted: number = result.accepted;
  const dropped: string[] = result.dropped;
  const records: { partitionKey: string; data: Uint8Array }[] = result.records;
  void [accepted, dropped, records];
} else {
  const status: 400 | 413 | 415 = result.status;
  const error: string = result.error;
  void [status, error];
}

const id: bigint = visitorId(new Uint8Array(16), 'a.com', '1.2.3.4', 'UA');
const entries: LogEntry[] = unpackRecord(new Uint8Array());
for (const entry of entries) {
  if (entry.kind === 'event') {
    const ids: bigint[] = [entry.id, entry.visitor.current, entry.visitor.previous];
    const props: [string, string][] = entry.props;
    const referrer: string | null = entry.referrer;
    void [ids, props, referrer];
  } else {
    const site: string | null = entry.site;
    const reason: string = entry.reason;
    void [site, reason];
  }
}
const info: FormatInfo = formatInfo();
const version: number = info.recordVersion;
void [id, version];

// @ts-expect-error: a context needs the client's IP
const noIp: IngestContext = { userAgent: '', receivedMs: 0, salts, firstEventId: 0n };
// @ts-expect-error: sites are a list of domains or a predicate, not one string
ingest(new Uint8Array(), ctx, 'a.com', 1);
// @ts-expect-error: a rejected body has no records to read
if (result.status === 400) result.records[0].data;
// @ts-expect-error: event ids are bigints or 16 bytes, not numbers
const numericId: IngestContext = { ...ctx, firstEventId: 1 };
void [noIp, numericId];
