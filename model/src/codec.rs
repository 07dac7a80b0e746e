//! The one codec for log entries: a version byte, then postcard.
//!
//! Version 6 (written for events of a tracker in hash mode only) is version 5's layout followed
//! by the event's `hash_mode` (a postcard bool). Version 5 (written for engagement events
//! without hash mode only) is version 3's event entry followed by its
//! [`crate::event::Engagement`] (`postcard(Option<Engagement>)`: postcard writes a struct as its
//! fields one after another, so this is the bytes of one struct with the engagement last).
//! Every other entry is still written as version 3 or 4, so everything a version-3 or 4 reader
//! (an older tally, an edge in flight) could read before, it still reads; it refuses only
//! engagement events, which it would have counted as custom events, and hash-mode events, whose
//! pages it would have counted without their fragment.
//! Version 3 is `[0x03] ++ postcard(LogEntry)` with events as `EventV3` has them (no engagement).
//! Version 4 is the same layout with one
//! more kind of entry, counted drops ([`LogEntry::Drops`]): only those are written as version 4. Version 2 (still read) had no region
//! or city on events; they decode with both `None`. Version 1 (still read) had no id on drops
//! either; its drops decode with `id: None`. Postcard's format is stable and documented, so
//! records written today decode tomorrow; a change to [`crate::event`] needs a new version.

use crate::event::{Drop, DropCount, Event, EventId, LogEntry, VisitorIds};
use crate::reject::DropReason;
use crate::wire::Revenue;
use serde::{Deserialize, Serialize};

/// The version byte written in front of events and single drops.
pub const VERSION: u8 = 3;
/// The version byte written in front of counted drops, the one kind of entry version 3 lacks.
pub const VERSION_WITH_COUNTS: u8 = 4;
/// The version byte written in front of engagement events, the one kind of event version 4 lacks.
pub const VERSION_WITH_ENGAGEMENT: u8 = 5;
/// The version byte written in front of events of a tracker in hash mode (which version 5 lacks).
pub const VERSION_WITH_HASH_MODE: u8 = 6;

/// Why bytes could not be decoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// No bytes at all.
    #[error("empty record")]
    Empty,
    /// A version this build does not know.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// The bytes after the version byte are not a valid entry.
    #[error("malformed record: {0}")]
    Malformed(String),
}

/// Encodes one entry.
pub fn encode(entry: &LogEntry) -> Vec<u8> {
    // Serialising into a Vec cannot fail for these plain types.
    let (version, body) = match entry {
        LogEntry::Event(event) => {
            let mut body = postcard::to_allocvec(&LogEntryV3Ref::Event(EventV3Ref::of(event))).unwrap_or_default();
            let version = if event.hash_mode {
                VERSION_WITH_HASH_MODE
            } else if event.engagement.is_some() {
                VERSION_WITH_ENGAGEMENT
            } else {
                VERSION
            };
            if version >= VERSION_WITH_ENGAGEMENT {
                body.extend(postcard::to_allocvec(&event.engagement).unwrap_or_default());
            }
            if version == VERSION_WITH_HASH_MODE {
                body.extend(postcard::to_allocvec(&event.hash_mode).unwrap_or_default());
            }
            (version, body)
        }
        LogEntry::Drops(_) => (VERSION_WITH_COUNTS, postcard::to_allocvec(entry).unwrap_or_default()),
        LogEntry::Drop(_) => (VERSION, postcard::to_allocvec(entry).unwrap_or_default()),
    };
    let mut out = vec![version];
    out.extend(body);
    out
}

/// Decodes one entry, of any version this build reads.
pub fn decode(bytes: &[u8]) -> Result<LogEntry, CodecError> {
    let malformed = |e: postcard::Error| CodecError::Malformed(e.to_string());
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&(VERSION_WITH_ENGAGEMENT | VERSION_WITH_HASH_MODE), rest)) => {
            let (entry, rest) = postcard::take_from_bytes::<LogEntryV3>(rest).map_err(malformed)?;
            let LogEntry::Event(mut event) = LogEntry::from(entry) else {
                return Err(CodecError::Malformed("versions 5 and 6 hold events only".into()));
            };
            let (engagement, rest) = postcard::take_from_bytes(rest).map_err(malformed)?;
            event.engagement = engagement;
            if bytes[0] == VERSION_WITH_HASH_MODE {
                event.hash_mode = postcard::from_bytes(rest).map_err(malformed)?;
            }
            Ok(LogEntry::Event(event))
        }
        Some((&(VERSION | VERSION_WITH_COUNTS), rest)) => {
            postcard::from_bytes::<LogEntryV3>(rest).map(LogEntry::from).map_err(malformed)
        }
        Some((&2, rest)) => postcard::from_bytes::<LogEntryV2>(rest).map(LogEntry::from).map_err(malformed),
        Some((&1, rest)) => postcard::from_bytes::<LogEntryV1>(rest).map(LogEntry::from).map_err(malformed),
        Some((&other, _)) => Err(CodecError::UnknownVersion(other)),
    }
}

/// An event as versions 3 and 4 have it: the current fields but for the engagement.
#[derive(Deserialize)]
struct EventV3 {
    id: EventId,
    received_ms: i64,
    site: String,
    name: String,
    url: String,
    referrer: Option<String>,
    props: Vec<(String, String)>,
    revenue: Option<Revenue>,
    interactive: bool,
    user_agent: String,
    country: Option<String>,
    visitor: VisitorIds,
    region: Option<String>,
    city: Option<String>,
}

impl From<EventV3> for Event {
    fn from(e: EventV3) -> Event {
        Event {
            id: e.id,
            received_ms: e.received_ms,
            site: e.site,
            name: e.name,
            url: e.url,
            referrer: e.referrer,
            props: e.props,
            revenue: e.revenue,
            interactive: e.interactive,
            user_agent: e.user_agent,
            country: e.country,
            visitor: e.visitor,
            region: e.region,
            city: e.city,
            engagement: None,
            hash_mode: false,
        }
    }
}

/// An [`EventV3`] borrowed from an event, for writing (serialised alike).
#[derive(Serialize)]
struct EventV3Ref<'a> {
    id: EventId,
    received_ms: i64,
    site: &'a str,
    name: &'a str,
    url: &'a str,
    referrer: &'a Option<String>,
    props: &'a [(String, String)],
    revenue: &'a Option<Revenue>,
    interactive: bool,
    user_agent: &'a str,
    country: &'a Option<String>,
    visitor: VisitorIds,
    region: &'a Option<String>,
    city: &'a Option<String>,
}

impl<'a> EventV3Ref<'a> {
    fn of(e: &'a Event) -> EventV3Ref<'a> {
        EventV3Ref {
            id: e.id,
            received_ms: e.received_ms,
            site: &e.site,
            name: &e.name,
            url: &e.url,
            referrer: &e.referrer,
            props: &e.props,
            revenue: &e.revenue,
            interactive: e.interactive,
            user_agent: &e.user_agent,
            country: &e.country,
            visitor: e.visitor,
            region: &e.region,
            city: &e.city,
        }
    }
}

/// A version 3 or 4 entry (variants in [`LogEntry`]'s order).
#[derive(Deserialize)]
enum LogEntryV3 {
    Event(Box<EventV3>),
    Drop(Drop),
    Drops(DropCount),
}

impl From<LogEntryV3> for LogEntry {
    fn from(entry: LogEntryV3) -> LogEntry {
        match entry {
            LogEntryV3::Event(event) => LogEntry::Event(Box::new(Event::from(*event))),
            LogEntryV3::Drop(drop) => LogEntry::Drop(drop),
            LogEntryV3::Drops(drops) => LogEntry::Drops(drops),
        }
    }
}

/// A version 3 event entry, borrowed, for writing: variant 0 of [`LogEntryV3`].
#[derive(Serialize)]
enum LogEntryV3Ref<'a> {
    Event(EventV3Ref<'a>),
}

/// An event as versions 1 and 2 wrote it: the current fields but for the region and city.
#[derive(Deserialize)]
struct EventV2 {
    id: EventId,
    received_ms: i64,
    site: String,
    name: String,
    url: String,
    referrer: Option<String>,
    props: Vec<(String, String)>,
    revenue: Option<Revenue>,
    interactive: bool,
    user_agent: String,
    country: Option<String>,
    visitor: VisitorIds,
}

impl From<EventV2> for Event {
    fn from(e: EventV2) -> Event {
        Event {
            id: e.id,
            received_ms: e.received_ms,
            site: e.site,
            name: e.name,
            url: e.url,
            referrer: e.referrer,
            props: e.props,
            revenue: e.revenue,
            interactive: e.interactive,
            user_agent: e.user_agent,
            country: e.country,
            visitor: e.visitor,
            region: None,
            city: None,
            engagement: None,
            hash_mode: false,
        }
    }
}

/// A version 2 entry: events without region and city.
#[derive(Deserialize)]
enum LogEntryV2 {
    Event(Box<EventV2>),
    Drop(Drop),
}

impl From<LogEntryV2> for LogEntry {
    fn from(entry: LogEntryV2) -> LogEntry {
        match entry {
            LogEntryV2::Event(event) => LogEntry::Event(Box::new(Event::from(*event))),
            LogEntryV2::Drop(drop) => LogEntry::Drop(drop),
        }
    }
}

/// A version 1 entry: the same as version 2 but for the drop's missing id.
#[derive(Deserialize)]
enum LogEntryV1 {
    Event(Box<EventV2>),
    Drop { site: Option<String>, reason: DropReason, received_ms: i64 },
}

impl From<LogEntryV1> for LogEntry {
    fn from(entry: LogEntryV1) -> LogEntry {
        match entry {
            LogEntryV1::Event(event) => LogEntry::Event(Box::new(Event::from(*event))),
            LogEntryV1::Drop { site, reason, received_ms } => {
                LogEntry::Drop(Drop { id: None, site, reason, received_ms })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Engagement;

    fn sample() -> Event {
        Event {
            id: EventId(0x0102),
            received_ms: 1_764_370_000_000,
            site: "a.com".into(),
            name: "pageview".into(),
            url: "https://a.com/p".into(),
            referrer: Some("https://b.com/".into()),
            props: vec![("k".into(), "v".into())],
            revenue: Some(Revenue { amount: "1.5".into(), currency: "EUR".into() }),
            interactive: true,
            user_agent: "UA".into(),
            country: Some("DE".into()),
            visitor: VisitorIds { current: 1, previous: 2 },
            region: None,
            city: None,
            engagement: None,
            hash_mode: false,
        }
    }

    /// The sample as version 3 has it: with a region and a city.
    fn sample_v3() -> Event {
        Event { region: Some("DE-BE".into()), city: Some("Berlin".into()), ..sample() }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    const V1_EVENT: &str = "0100820280a2adcad96605612e636f6d0870616765766965770f68747470733a2f2f612e636f6d2f70010e68747470733a2f2f622e636f6d2f01016b01760103312e350345555201025541010244450102";
    const V1_DROP: &str = "0101000002";

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn version_3_snapshot() {
        // A change here breaks every stored log and every record in flight: bump VERSION instead.
        let region_city = "010544452d424501064265726c696e";
        assert_eq!(hex(&encode(&LogEntry::Event(Box::new(sample_v3())))), format!("03{}{region_city}", &V1_EVENT[2..]));
        let drop = Drop { id: Some(EventId(7)), site: None, reason: DropReason::Bot, received_ms: 1 };
        assert_eq!(hex(&encode(&LogEntry::Drop(drop))), "03010107000002");
    }

    #[test]
    fn version_5_holds_engagement_events_only() {
        let engaged = Event {
            name: "engagement".into(),
            engagement: Some(Engagement { scroll_depth: Some(80), engaged_ms: 4_200 }),
            ..sample_v3()
        };
        let bytes = encode(&LogEntry::Event(Box::new(engaged.clone())));
        // The version-3 layout, then Some(Some(80), 4200 as a varint).
        let v3 = hex(&encode(&LogEntry::Event(Box::new(sample_v3()))));
        assert!(v3.starts_with("03"));
        let name = hex(b"engagement");
        let body = v3[2..].replace(&format!("08{}", hex(b"pageview")), &format!("0a{name}"));
        assert_eq!(hex(&bytes), format!("05{body}010150e820"));
        assert_eq!(decode(&bytes), Ok(LogEntry::Event(Box::new(engaged))));
        let none = Event { engagement: Some(Engagement { scroll_depth: None, engaged_ms: 0 }), ..sample() };
        assert_eq!(decode(&encode(&LogEntry::Event(Box::new(none.clone())))), Ok(LogEntry::Event(Box::new(none))));
    }

    #[test]
    fn version_6_holds_hash_mode_events_only() {
        let hashed = Event { hash_mode: true, ..sample_v3() };
        let bytes = encode(&LogEntry::Event(Box::new(hashed.clone())));
        // The version-3 layout, then no engagement, then true.
        let v3 = hex(&encode(&LogEntry::Event(Box::new(sample_v3()))));
        assert_eq!(hex(&bytes), format!("06{}0001", &v3[2..]));
        assert_eq!(decode(&bytes), Ok(LogEntry::Event(Box::new(hashed))));
        let both = Event {
            name: "engagement".into(),
            engagement: Some(Engagement { scroll_depth: Some(80), engaged_ms: 4_200 }),
            hash_mode: true,
            ..sample_v3()
        };
        let bytes = encode(&LogEntry::Event(Box::new(both.clone())));
        assert!(bytes[0] == VERSION_WITH_HASH_MODE && hex(&bytes).ends_with("010150e82001"));
        assert_eq!(decode(&bytes), Ok(LogEntry::Event(Box::new(both))));
        // A drop is never version 5 or 6.
        let mut drop = encode(&LogEntry::Drop(Drop { id: None, site: None, reason: DropReason::Bot, received_ms: 1 }));
        drop[0] = VERSION_WITH_HASH_MODE;
        assert!(matches!(decode(&drop), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn version_4_snapshot_holds_counted_drops_only() {
        let counted = DropCount {
            id: EventId(7),
            site: Some("a.com".into()),
            reason: DropReason::RateLimited,
            received_ms: 1,
            count: 300,
        };
        let bytes = encode(&LogEntry::Drops(counted.clone()));
        // Variant 2, id 7, Some("a.com"), reason 14, time 1 (zigzag 2), count 300 (varint ac 02).
        assert_eq!(hex(&bytes), "0402070105612e636f6d0e02ac02");
        assert_eq!(decode(&bytes), Ok(LogEntry::Drops(counted)));
    }

    #[test]
    fn version_2_is_still_read() {
        let v2_event = format!("02{}", &V1_EVENT[2..]);
        assert_eq!(decode(&unhex(&v2_event)), Ok(LogEntry::Event(Box::new(sample()))));
        let drop = Drop { id: Some(EventId(7)), site: None, reason: DropReason::Bot, received_ms: 1 };
        assert_eq!(decode(&unhex("02010107000002")), Ok(LogEntry::Drop(drop)));
    }

    #[test]
    fn version_1_is_still_read() {
        assert_eq!(decode(&unhex(V1_EVENT)), Ok(LogEntry::Event(Box::new(sample()))));
        let drop = Drop { id: None, site: None, reason: DropReason::Bot, received_ms: 1 };
        assert_eq!(decode(&unhex(V1_DROP)), Ok(LogEntry::Drop(drop)));
    }

    #[test]
    fn round_trip() {
        let entry = LogEntry::Event(Box::new(sample_v3()));
        assert_eq!(decode(&encode(&entry)), Ok(entry));
        let drop = LogEntry::Drop(Drop {
            id: Some(EventId(u128::MAX)),
            site: Some("a.com".into()),
            reason: DropReason::HostnameNotAllowed,
            received_ms: -1,
        });
        assert_eq!(decode(&encode(&drop)), Ok(drop));
    }

    #[test]
    fn refuses_unknown_versions_and_garbage() {
        assert_eq!(decode(&[]), Err(CodecError::Empty));
        assert_eq!(decode(&[9, 0]), Err(CodecError::UnknownVersion(9)));
        assert!(matches!(decode(&[VERSION, 0xff, 0xff]), Err(CodecError::Malformed(_))));
    }
}
