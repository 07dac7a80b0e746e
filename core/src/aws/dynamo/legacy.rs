//! Reading what an older `tally ingest` wrote: cell keys and visit snapshots of store format 3,
//! whose cell keys had 15 dimensions (no entry page, entry page hostname or referrer), of
//! format 4, whose cell keys had 18 (no channel) and whose visits did not track their exit page,
//! and of format 5, whose cell keys had 19 (no region or city). Cells and visits of those formats
//! read as having the missing values empty; new ones are written in the current format.

use super::snapshots::Snapshot;
use serde::Deserialize;
use tally_model::rollup::{Bucket, CellKey};
use tally_model::session::{Exit, Session};

/// A cell key as format 3 encoded it (postcard: 15 strings).
#[derive(Deserialize)]
struct CellKeyV3 {
    name: String,
    hostname: String,
    page: String,
    source: String,
    utm_source: String,
    utm_medium: String,
    utm_campaign: String,
    utm_content: String,
    utm_term: String,
    country: String,
    device: String,
    browser: String,
    browser_version: String,
    os: String,
    os_version: String,
}

impl From<CellKeyV3> for CellKey {
    fn from(k: CellKeyV3) -> CellKey {
        CellKey {
            name: k.name,
            hostname: k.hostname,
            page: k.page,
            source: k.source,
            utm_source: k.utm_source,
            utm_medium: k.utm_medium,
            utm_campaign: k.utm_campaign,
            utm_content: k.utm_content,
            utm_term: k.utm_term,
            country: k.country,
            device: k.device,
            browser: k.browser,
            browser_version: k.browser_version,
            os: k.os,
            os_version: k.os_version,
            ..CellKey::default()
        }
    }
}

/// A cell key as format 4 encoded it (postcard: 18 strings, no channel): format 3's 15, then
/// the entry page, its hostname and the referrer.
#[derive(Deserialize)]
struct CellKeyV4 {
    v3: CellKeyV3,
    entry_page: String,
    entry_page_hostname: String,
    referrer: String,
}

impl From<CellKeyV4> for CellKey {
    fn from(k: CellKeyV4) -> CellKey {
        CellKey {
            entry_page: k.entry_page,
            entry_page_hostname: k.entry_page_hostname,
            referrer: k.referrer,
            ..CellKey::from(k.v3)
        }
    }
}

/// A cell key as format 5 encoded it (postcard: 19 strings, no region or city): format 4's 18,
/// then the channel.
#[derive(Deserialize)]
struct CellKeyV5 {
    v4: CellKeyV4,
    channel: String,
}

impl From<CellKeyV5> for CellKey {
    fn from(k: CellKeyV5) -> CellKey {
        CellKey { channel: k.channel, ..CellKey::from(k.v4) }
    }
}

/// A cell key blob of any format. A format-3 blob is 15 strings, a format-4 one 18 and a format-5
/// one 19, so decoding any of them as the current 21 fails for want of bytes, and the older
/// layouts are tried, newest first.
pub fn decode_cell_key(bytes: &[u8]) -> Option<CellKey> {
    postcard::from_bytes::<CellKey>(bytes)
        .ok()
        .or_else(|| postcard::from_bytes::<CellKeyV5>(bytes).ok().map(CellKey::from))
        .or_else(|| postcard::from_bytes::<CellKeyV4>(bytes).ok().map(CellKey::from))
        .or_else(|| postcard::from_bytes::<CellKeyV3>(bytes).ok().map(CellKey::from))
}

/// A visit as formats 3 and 4 kept it (`K`: their cell key), before visits tracked their exit.
#[derive(Deserialize)]
struct OldSession<K> {
    started_ms: i64,
    last_ms: i64,
    start_bucket: Bucket,
    entry: K,
    bounce: bool,
}

#[derive(Deserialize)]
struct OldSnapshot<K> {
    flush_seq: u64,
    end_sequence: String,
    sessions: Vec<((String, u64), OldSession<K>)>,
}

/// An older snapshot's visits in the current shape. What they did not track (the exit page, page
/// views so far) starts at the entry page and zero: the DynamoDB store's cells do not use them.
fn upgrade<K: Into<CellKey>>(old: OldSnapshot<K>) -> Snapshot {
    let sessions = old
        .sessions
        .into_iter()
        .map(|((site, visitor), s)| {
            let entry: CellKey = s.entry.into();
            let exit = Exit { page: entry.entry_page.clone(), hostname: entry.entry_page_hostname.clone() };
            let session = Session {
                started_ms: s.started_ms,
                last_ms: s.last_ms,
                start_bucket: s.start_bucket,
                entry: Box::new(entry),
                bounce: s.bounce,
                exit,
                pageviews: 0,
                start_visitor: visitor,
            };
            ((site, visitor), session)
        })
        .collect();
    Snapshot { flush_seq: old.flush_seq, end_sequence: old.end_sequence, sessions }
}

/// A visit as format 5 kept it: the current shape but for its entry cell's key.
#[derive(Deserialize)]
struct SessionV5 {
    started_ms: i64,
    last_ms: i64,
    start_bucket: Bucket,
    entry: CellKeyV5,
    bounce: bool,
    exit: Exit,
    pageviews: i64,
    start_visitor: u64,
}

#[derive(Deserialize)]
struct SnapshotV5 {
    flush_seq: u64,
    end_sequence: String,
    sessions: Vec<((String, u64), SessionV5)>,
}

/// A snapshot payload written by format 5 (cell keys without the region and city).
pub fn decode_snapshot_v5(payload: &[u8]) -> Result<Snapshot, postcard::Error> {
    let old: SnapshotV5 = postcard::from_bytes(payload)?;
    let sessions = old
        .sessions
        .into_iter()
        .map(|(id, s)| {
            let session = Session {
                started_ms: s.started_ms,
                last_ms: s.last_ms,
                start_bucket: s.start_bucket,
                entry: Box::new(s.entry.into()),
                bounce: s.bounce,
                exit: s.exit,
                pageviews: s.pageviews,
                start_visitor: s.start_visitor,
            };
            (id, session)
        })
        .collect();
    Ok(Snapshot { flush_seq: old.flush_seq, end_sequence: old.end_sequence, sessions })
}

/// A snapshot payload written by format 3 (its header has no `format` attribute).
pub fn decode_snapshot_v3(payload: &[u8]) -> Result<Snapshot, postcard::Error> {
    postcard::from_bytes::<OldSnapshot<CellKeyV3>>(payload).map(upgrade)
}

/// A snapshot payload written by format 4 (cell keys without the channel, visits without their
/// exit).
pub fn decode_snapshot_v4(payload: &[u8]) -> Result<Snapshot, postcard::Error> {
    postcard::from_bytes::<OldSnapshot<CellKeyV4>>(payload).map(upgrade)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes format 3 wrote for a cell key of these 15 values, in field order.
    fn v3_blob(values: &[&str; 15]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            out.push(u8::try_from(v.len()).expect("short"));
            out.extend_from_slice(v.as_bytes());
        }
        out
    }

    #[test]
    fn a_format_3_cell_key_reads_with_the_new_values_empty() {
        let mut values = [""; 15];
        values[2] = "/pricing";
        values[9] = "DE";
        let key = decode_cell_key(&v3_blob(&values)).expect("decodes");
        assert_eq!((key.page.as_str(), key.country.as_str()), ("/pricing", "DE"));
        assert_eq!((key.entry_page.as_str(), key.referrer.as_str()), ("", ""));
        let now = CellKey { entry_page: "/".into(), referrer: "a.org".into(), ..key.clone() };
        assert_eq!(decode_cell_key(&postcard::to_allocvec(&now).expect("encodes")), Some(now));
    }

    #[test]
    fn a_format_3_snapshot_reads() {
        let mut payload = vec![7u8, 1, b'9', 1];
        payload.extend_from_slice(&[5, b'a', b'.', b'c', b'o', b'm', 3]);
        // started_ms 10 (zigzag 20), last_ms 12 (24), start_bucket 1 (2), the key, bounce.
        payload.extend_from_slice(&[20, 24, 2]);
        payload.extend_from_slice(&v3_blob(&["pageview", "", "/", "", "", "", "", "", "", "", "", "", "", "", ""]));
        payload.push(1);
        let snapshot = decode_snapshot_v3(&payload).expect("decodes");
        assert_eq!((snapshot.flush_seq, snapshot.end_sequence.as_str()), (7, "9"));
        let ((site, visitor), session) = &snapshot.sessions[0];
        assert_eq!((site.as_str(), *visitor, session.started_ms, session.last_ms), ("a.com", 3, 10, 12));
        assert_eq!((session.entry.page.as_str(), session.bounce), ("/", true));
    }

    /// The 18 strings of a format-4 cell key whose entry page is `/in`.
    const V4_KEY: [&str; 18] =
        ["pageview", "", "/", "", "", "", "", "", "", "", "", "", "", "", "", "/in", "a.com", "x.org"];

    #[test]
    fn a_format_4_cell_key_reads_with_no_channel() {
        let key = decode_cell_key(&postcard::to_allocvec(&V4_KEY).expect("encodes")).expect("decodes");
        assert_eq!((key.page.as_str(), key.entry_page.as_str(), key.referrer.as_str()), ("/", "/in", "x.org"));
        assert_eq!(key.channel, "");
    }

    #[test]
    fn a_format_4_snapshot_reads() {
        /// A format-4 visit: started, last, start bucket, entry cell, bounce.
        type VisitV4<'a> = (i64, i64, i64, [&'a str; 18], bool);
        #[derive(serde::Serialize)]
        struct V4<'a>(u64, &'a str, Vec<((&'a str, u64), VisitV4<'a>)>);
        let payload =
            postcard::to_allocvec(&V4(7, "9", vec![(("a.com", 3), (10, 12, 1, V4_KEY, false))])).expect("encodes");
        let snapshot = decode_snapshot_v4(&payload).expect("decodes");
        let ((_, visitor), s) = &snapshot.sessions[0];
        assert_eq!((*visitor, s.started_ms, s.last_ms, s.bounce), (3, 10, 12, false));
        assert_eq!((s.exit.page.as_str(), s.start_visitor, s.entry.entry_page_hostname.as_str()), ("/in", 3, "a.com"));
    }

    /// The 19 strings of a format-5 cell key: format 4's, then the channel.
    fn v5_key() -> [&'static str; 19] {
        let mut key = V4_KEY.to_vec();
        key.push("Direct");
        key.try_into().expect("19 strings")
    }

    #[test]
    fn a_format_5_cell_key_reads_with_no_region_or_city() {
        let key = decode_cell_key(&postcard::to_allocvec(&v5_key()).expect("encodes")).expect("decodes");
        assert_eq!((key.entry_page.as_str(), key.channel.as_str()), ("/in", "Direct"));
        assert_eq!((key.region.as_str(), key.city.as_str()), ("", ""));
        let now = CellKey { region: "DE-BE".into(), city: "Berlin".into(), ..key.clone() };
        assert_eq!(decode_cell_key(&postcard::to_allocvec(&now).expect("encodes")), Some(now));
    }

    #[test]
    fn a_format_5_snapshot_reads() {
        /// A format-5 visit: started, last, start bucket, entry cell, bounce, exit, page views,
        /// start visitor.
        type VisitV5<'a> = (i64, i64, i64, [&'a str; 19], bool, (&'a str, &'a str), i64, u64);
        #[derive(serde::Serialize)]
        struct V5<'a>(u64, &'a str, Vec<((&'a str, u64), VisitV5<'a>)>);
        let visit = (10, 12, 1, v5_key(), true, ("/out", "a.com"), 2, 4);
        let payload = postcard::to_allocvec(&V5(7, "9", vec![(("a.com", 3), visit)])).expect("encodes");
        let snapshot = decode_snapshot_v5(&payload).expect("decodes");
        let ((_, visitor), s) = &snapshot.sessions[0];
        assert_eq!((*visitor, s.started_ms, s.pageviews, s.start_visitor), (3, 10, 2, 4));
        assert_eq!((s.exit.page.as_str(), s.entry.channel.as_str(), s.entry.city.as_str()), ("/out", "Direct", ""));
    }
}
