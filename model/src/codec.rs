//! The one codec for log entries: a version byte, then postcard.
//!
//! Version 1 is `[0x01] ++ postcard(LogEntry)`. Postcard's format is stable and documented, so
//! records written today decode tomorrow; a change to [`crate::event`] needs a new version.

use crate::event::LogEntry;

/// The version byte written in front of every record.
pub const VERSION: u8 = 1;

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
    let mut out = vec![VERSION];
    // Serialising into a Vec cannot fail for these plain types.
    out.extend(postcard::to_allocvec(entry).unwrap_or_default());
    out
}

/// Decodes one entry.
pub fn decode(bytes: &[u8]) -> Result<LogEntry, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| CodecError::Malformed(e.to_string())),
        Some((&other, _)) => Err(CodecError::UnknownVersion(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Drop, Event, EventId, VisitorIds};
    use crate::reject::DropReason;
    use crate::wire::Revenue;

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
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn version_1_snapshot() {
        // A change here breaks every stored log and every record in flight: bump VERSION instead.
        assert_eq!(
            hex(&encode(&LogEntry::Event(Box::new(sample())))),
            "0100820280a2adcad96605612e636f6d0870616765766965770f68747470733a2f2f612e636f6d2f70010e68747470733a2f2f622e636f6d2f01016b01760103312e350345555201025541010244450102"
        );
        assert_eq!(
            hex(&encode(&LogEntry::Drop(Drop { site: None, reason: DropReason::Bot, received_ms: 1 }))),
            "0101000002"
        );
    }

    #[test]
    fn round_trip() {
        let entry = LogEntry::Event(Box::new(sample()));
        assert_eq!(decode(&encode(&entry)), Ok(entry));
    }

    #[test]
    fn refuses_unknown_versions_and_garbage() {
        assert_eq!(decode(&[]), Err(CodecError::Empty));
        assert_eq!(decode(&[9, 0]), Err(CodecError::UnknownVersion(9)));
        assert!(matches!(decode(&[VERSION, 0xff, 0xff]), Err(CodecError::Malformed(_))));
    }
}
