//! The Kinesis record format: many log entries packed into one record, and the partition key
//! that routes them (design decision 4).
//!
//! Version 1 is `[0x01] ++ postcard(Vec<Vec<u8>>)`, each inner vector one entry as
//! [`crate::codec::encode`] writes it: a varint count, then each entry as a varint length and its
//! bytes. A record carries entries of one partition key, `site#sub`, where `sub` is the
//! sub-partition of the event's route (`visitor::route`: site, IP and user agent, unchanged at
//! midnight): all events of one visitor, also of a visit across a UTC midnight, share a key,
//! hence a shard, and a large site spreads over as many keys as it has sub-partitions.

use crate::codec::{self, CodecError};
use crate::event::LogEntry;
use crate::visitor::route;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The version byte in front of every record.
pub const RECORD_VERSION: u8 = 1;
/// Largest record data we write: Kinesis allows 1 MiB of data and partition key together.
pub const MAX_RECORD_BYTES: usize = 1_000_000;
/// Bytes a record spends besides its entries: the version byte and, at most, a 5-byte count.
const RECORD_OVERHEAD: usize = 6;

/// One Kinesis record ready for `PutRecords`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `site#sub`.
    pub partition_key: String,
    /// The packed entries.
    pub data: Vec<u8>,
}

/// Why record data could not be unpacked.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No bytes at all.
    #[error("empty record")]
    Empty,
    /// A record version this build does not know.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// The framing after the version byte is broken.
    #[error("malformed record framing: {0}")]
    Malformed(String),
    /// One packed entry does not decode.
    #[error("entry {index}: {error}")]
    Entry {
        /// Its position in the record.
        index: usize,
        /// What is wrong with it.
        error: CodecError,
    },
}

/// The sub-partition of a route (`visitor::route`) within a site that has `sub_partitions` of
/// them (at least 1).
pub fn sub_partition(route: u64, sub_partitions: u16) -> u16 {
    // The remainder is below `sub_partitions`, so it fits.
    (route % u64::from(sub_partitions.max(1))) as u16
}

/// The sub-partition of an entry made from a request from `ip`, for a site with
/// `sub_partitions`: an event's by the route of its site, `ip` and user agent (the visit's, so
/// the same on both sides of a midnight); a drop's 0.
pub fn sub_of_request(entry: &LogEntry, ip: IpAddr, sub_partitions: u16) -> u16 {
    match entry {
        LogEntry::Event(event) => sub_partition(route(&event.site, ip, &event.user_agent), sub_partitions),
        LogEntry::Drop(_) | LogEntry::Drops(_) => 0,
    }
}

/// The partition key of a log entry in sub-partition `sub`: events by site and sub-partition;
/// drops by site (or `#0` when they name none), in sub-partition 0.
pub fn partition_key(entry: &LogEntry, sub: u16) -> String {
    match entry {
        LogEntry::Event(event) => format!("{}#{sub}", event.site),
        LogEntry::Drop(drop) => format!("{}#0", drop.site.as_deref().unwrap_or("")),
        LogEntry::Drops(drops) => format!("{}#0", drops.site.as_deref().unwrap_or("")),
    }
}

/// Packs encoded entries into records: one open record per partition key, closed when the next
/// entry would take it past `max_bytes`. Each entry may name its origin (say, the queue message
/// it came from), and every record tells the origins of its entries, so a producer knows which
/// inputs a failed record holds.
#[derive(Debug)]
pub struct Packer {
    max_bytes: usize,
    open: BTreeMap<String, Open>,
    done: Vec<(Record, Vec<usize>)>,
}

/// A record still being filled.
#[derive(Debug)]
struct Open {
    entries: Vec<Vec<u8>>,
    bytes: usize,
    origins: BTreeSet<usize>,
}

impl Open {
    fn new() -> Open {
        Open { entries: Vec::new(), bytes: RECORD_OVERHEAD, origins: BTreeSet::new() }
    }

    fn seal(self, partition_key: String) -> (Record, Vec<usize>) {
        (seal(partition_key, &self.entries), self.origins.into_iter().collect())
    }
}

impl Packer {
    /// A packer whose records hold at most `max_bytes` of data (an entry larger than that
    /// still gets a record of its own).
    pub fn new(max_bytes: usize) -> Packer {
        Packer { max_bytes, open: BTreeMap::new(), done: Vec::new() }
    }

    /// Adds one encoded entry under a partition key.
    pub fn push(&mut self, partition_key: &str, entry: Vec<u8>) {
        self.push_from(partition_key, entry, 0);
    }

    /// Adds one encoded entry under a partition key, noting where it came from.
    pub fn push_from(&mut self, partition_key: &str, entry: Vec<u8>, origin: usize) {
        let cost = varint_len(entry.len()) + entry.len();
        let open = self.open.entry(partition_key.to_owned()).or_insert_with(Open::new);
        if !open.entries.is_empty() && open.bytes + cost > self.max_bytes {
            let full = std::mem::replace(open, Open::new());
            self.done.push(full.seal(partition_key.to_owned()));
        }
        open.entries.push(entry);
        open.bytes += cost;
        open.origins.insert(origin);
    }

    /// Closes every open record and returns all records, full ones first.
    pub fn finish(self) -> Vec<Record> {
        self.finish_with_origins().into_iter().map(|(record, _)| record).collect()
    }

    /// Like [`Packer::finish`], with the sorted origins of each record's entries.
    pub fn finish_with_origins(mut self) -> Vec<(Record, Vec<usize>)> {
        for (key, open) in std::mem::take(&mut self.open) {
            self.done.push(open.seal(key));
        }
        self.done
    }
}

fn seal(partition_key: String, entries: &[Vec<u8>]) -> Record {
    Record { partition_key, data: record_data(entries) }
}

/// Record data (version byte and framing) holding these encoded entries; [`unpack`] reverses
/// it. The edge also uses it as its queue message body.
pub fn record_data(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut data = vec![RECORD_VERSION];
    // Serialising byte vectors into a Vec cannot fail.
    data.extend(postcard::to_allocvec(entries).unwrap_or_default());
    data
}

fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// Packs log entries into records with the largest allowed size, each in the sub-partition
/// `sub_of` gives it.
pub fn pack(entries: &[LogEntry], sub_of: impl Fn(&LogEntry) -> u16) -> Vec<Record> {
    let mut packer = Packer::new(MAX_RECORD_BYTES);
    for entry in entries {
        packer.push(&partition_key(entry, sub_of(entry)), codec::encode(entry));
    }
    packer.finish()
}

/// The first byte of [`with_subs`] data.
const WITH_SUBS: u8 = 0xf2;

/// Encoded entries with the sub-partition of each (the edge's queue messages, whose consumer no
/// longer knows the request's IP): `0xF2`, the count as a little-endian u32, one little-endian
/// u16 per entry (0 past the end of `subs`), then the entries as [`record_data`] writes them.
pub fn with_subs(entries: &[Vec<u8>], subs: &[u16]) -> Vec<u8> {
    // A request's entries are a batch (at most 25) and a counted drop: far below u32::MAX.
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    let mut out = vec![WITH_SUBS];
    out.extend(count.to_le_bytes());
    out.extend((0..entries.len()).flat_map(|i| subs.get(i).copied().unwrap_or(0).to_le_bytes()));
    out.extend(record_data(entries));
    out
}

/// The entries of [`with_subs`] data with their sub-partitions, or of plain record data (what
/// the edge queued before it sent sub-partitions) with `None`.
pub fn unpack_with_subs(data: &[u8]) -> Result<Vec<(LogEntry, Option<u16>)>, RecordError> {
    let Some((&WITH_SUBS, rest)) = data.split_first() else {
        return Ok(unpack(data)?.into_iter().map(|e| (e, None)).collect());
    };
    let malformed = |what: &str| RecordError::Malformed(what.to_owned());
    let count = rest.get(..4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).ok_or(malformed("no count"))?;
    let count = usize::try_from(count).map_err(|_| malformed("count"))?;
    let subs_end = count.checked_mul(2).and_then(|n| n.checked_add(4)).ok_or(malformed("count"))?;
    let subs = rest.get(4..subs_end).ok_or(malformed("fewer sub-partitions than the count"))?;
    let entries = unpack(&rest[subs_end..])?;
    if entries.len() != count {
        return Err(malformed(&format!("{} entries for {count} sub-partitions", entries.len())));
    }
    let subs = subs.chunks_exact(2).map(|c| Some(u16::from_le_bytes([c[0], c[1]])));
    Ok(entries.into_iter().zip(subs).collect())
}

/// Unpacks a record's data into its entries.
pub fn unpack(data: &[u8]) -> Result<Vec<LogEntry>, RecordError> {
    let (&version, rest) = data.split_first().ok_or(RecordError::Empty)?;
    if version != RECORD_VERSION {
        return Err(RecordError::UnknownVersion(version));
    }
    let entries: Vec<Vec<u8>> = postcard::from_bytes(rest).map_err(|e| RecordError::Malformed(e.to_string()))?;
    entries
        .iter()
        .enumerate()
        .map(|(index, bytes)| codec::decode(bytes).map_err(|error| RecordError::Entry { index, error }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Drop, Event, EventId, VisitorIds};
    use crate::reject::DropReason;

    fn event(site: &str, visitor: u64, id: u128) -> LogEntry {
        LogEntry::Event(Box::new(Event {
            id: EventId(id),
            received_ms: 1_000,
            site: site.into(),
            name: "pageview".into(),
            url: format!("https://{site}/"),
            referrer: None,
            props: vec![],
            revenue: None,
            interactive: true,
            user_agent: "UA".into(),
            country: None,
            visitor: VisitorIds { current: visitor, previous: visitor },
            region: None,
            city: None,
            engagement: None,
            hash_mode: false,
        }))
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn version_1_snapshot() {
        // A change here breaks every record in flight: bump RECORD_VERSION instead.
        // Record version 1 holding entries of codec version 3.
        let drop = LogEntry::Drop(Drop { id: Some(EventId(7)), site: None, reason: DropReason::Bot, received_ms: 1 });
        let records = pack(&[drop], |_| 0);
        assert_eq!(records, vec![Record { partition_key: "#0".into(), data: vec![1, 1, 7, 3, 1, 1, 7, 0, 0, 2] }]);
        let records = pack(&[event("a.com", 7, 1)], |_| 3);
        assert_eq!(records[0].partition_key, "a.com#3");
        assert_eq!(
            hex(&records[0].data),
            "01012f030001d00f05612e636f6d0870616765766965770e68747470733a2f2f612e636f6d2f000000010255410007070000"
        );
    }

    #[test]
    fn one_visitor_one_key_on_both_sides_of_midnight_and_sites_spread_over_their_sub_partitions() {
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        let keys = |site: &str, subs: u16| {
            (0..64u8)
                .map(|i| partition_key(&event(site, 0, 0), sub_of_request(&event(site, 0, 0), ip(i), subs)))
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(keys("small.com", 1).len(), 1);
        assert_eq!(keys("big.com", 8).len(), 8);
        // The visitor ids change at midnight; the route (site, IP, user agent) does not.
        let (before, after) = (event("a.com", 9, 0), event("a.com", 10, 1));
        assert_eq!(sub_of_request(&before, ip(1), 4), sub_of_request(&after, ip(1), 4));
        assert_eq!(partition_key(&before, 2), "a.com#2");
    }

    #[test]
    fn sub_partitions_travel_with_their_entries_and_plain_data_still_reads() {
        let entries = [event("a.com", 1, 1), event("b.com", 2, 2)];
        let encoded: Vec<Vec<u8>> = entries.iter().map(codec::encode).collect();
        let back = unpack_with_subs(&with_subs(&encoded, &[3, 0])).expect("decodes");
        assert_eq!(back, vec![(entries[0].clone(), Some(3)), (entries[1].clone(), Some(0))]);
        let plain = unpack_with_subs(&record_data(&encoded)).expect("decodes");
        assert_eq!(plain, vec![(entries[0].clone(), None), (entries[1].clone(), None)]);
        assert!(unpack_with_subs(&[WITH_SUBS, 5, 0, 0, 0, 1]).is_err(), "truncated");
    }

    #[test]
    fn packs_many_entries_per_record_and_round_trips() {
        let entries: Vec<LogEntry> = (0..1_000u64).map(|i| event("a.com", i % 2, u128::from(i))).collect();
        let records = pack(&entries, |e| match e {
            LogEntry::Event(event) => sub_partition(event.visitor.current, 2),
            LogEntry::Drop(_) | LogEntry::Drops(_) => 0,
        });
        assert_eq!(records.len(), 2, "one record per partition key");
        let mut back: Vec<LogEntry> = records.iter().flat_map(|r| unpack(&r.data).expect("unpacks")).collect();
        back.sort_by_key(|e| match e {
            LogEntry::Event(e) => e.id,
            LogEntry::Drop(_) | LogEntry::Drops(_) => EventId(u128::MAX),
        });
        assert_eq!(back, entries);
    }

    #[test]
    fn records_stay_under_the_limit() {
        let entries: Vec<LogEntry> = (0..500u64).map(|i| event("a.com", 0, u128::from(i))).collect();
        let mut packer = Packer::new(2_000);
        for e in &entries {
            packer.push("a.com#0", codec::encode(e));
        }
        let records = packer.finish();
        assert!(records.len() > 1);
        assert!(records.iter().all(|r| r.data.len() <= 2_000), "{:?}", records.iter().map(|r| r.data.len()).max());
        let count: usize = records.iter().map(|r| unpack(&r.data).expect("unpacks").len()).sum();
        assert_eq!(count, entries.len());
    }

    #[test]
    fn records_name_the_origins_of_their_entries() {
        let mut packer = Packer::new(120);
        // Origins 0 and 1 share key a; origin 2 fills key b past one record.
        packer.push_from("a#0", codec::encode(&event("a", 0, 1)), 0);
        packer.push_from("a#0", codec::encode(&event("a", 0, 2)), 1);
        for id in 0..6 {
            packer.push_from("b#0", codec::encode(&event("b", 0, id)), 2);
        }
        let records = packer.finish_with_origins();
        let of_key = |key: &str| -> Vec<Vec<usize>> {
            records.iter().filter(|(r, _)| r.partition_key == key).map(|(_, o)| o.clone()).collect()
        };
        assert_eq!(of_key("a#0"), vec![vec![0, 1]]);
        let b = of_key("b#0");
        assert!(b.len() > 1 && b.iter().all(|o| o == &vec![2]), "{b:?}");
    }

    #[test]
    fn refuses_what_is_not_a_record() {
        assert_eq!(unpack(&[]), Err(RecordError::Empty));
        assert_eq!(unpack(&[2, 0]), Err(RecordError::UnknownVersion(2)));
        assert!(matches!(unpack(&[1, 5]), Err(RecordError::Malformed(_))));
        assert!(matches!(unpack(&[1, 1, 1, 9]), Err(RecordError::Entry { index: 0, .. })));
    }

    #[test]
    fn varint_lengths() {
        assert_eq!([0, 127, 128, 16_383, 16_384].map(varint_len), [1, 1, 2, 2, 3]);
    }
}
