//! Visit state between snapshots: the open visits and visitor sightings that committed flushes
//! changed since the store last wrote them.
//!
//! Writing every touched visit and sighting in every flush's transaction rewrote, flush after
//! flush, B-tree pages spread over both tables (their keys are hashed visitor ids): on a
//! 1,000,000-event import that cost a third of the CPU. Instead the aggregator keeps the changes
//! of committed flushes in memory ([`StateDelta`]) and writes them every so often to the store's
//! state database, together with `state_offset`, the log offset they reach (a *state snapshot*).
//! A snapshot is written on a thread of its own while the next flushes build and commit (it
//! took about a second on a 10,000,000-event import, during which no flush could commit when
//! both shared one database); until it has committed, its changes stay a layer of their own
//! ([`Layers::snapshotting`]). Rollups, segment rows and `applied_offset` still commit with every
//! flush. After a restart the store's state is as of `state_offset`, and the aggregator replays the log
//! entries from there to `applied_offset` through the same flush code, keeping only the visit
//! state they produce ([`crate::embedded::aggregate`]); building a flush depends on nothing but
//! the entries, the state before them and the sites' time zones, so the replay rebuilds exactly
//! the state that the lost snapshot would have held.

use crate::pipeline::flush::{Flush, SessionLookup, SiteKey, VisitorMap};
use std::time::Instant;
use tally_model::breakdown::Sightings;
use tally_model::limits::SESSION_TIMEOUT_MS;
use tally_model::session::Session;

/// How long (in log time) a visitor id's sightings are kept after they last changed. An id lives
/// one UTC day, so live ids are dropped at most this long after their day ends; imported ids
/// stay this long after their import touched them.
const SIGHTINGS_KEPT_MS: i64 = 2 * 86_400_000;

/// Whether a snapshot at log time `until_ms` keeps a visit last touched at `touched` (log time)
/// whose last event was at `last_ms`: while either is within the session timeout (imported
/// visits have old events but a recent touch, so an import in progress keeps its open visits).
pub fn visit_kept(touched: i64, last_ms: i64, until_ms: i64) -> bool {
    touched.max(last_ms) >= until_ms - SESSION_TIMEOUT_MS
}

/// Whether a snapshot at log time `until_ms` keeps sightings last changed at `touched`.
pub fn sightings_kept(touched: i64, until_ms: i64) -> bool {
    touched >= until_ms - SIGHTINGS_KEPT_MS
}

/// Changes to the visit state since the last snapshot, each with the log time (ms) of the flush
/// that made it (the store keeps it to expire state by).
#[derive(Debug, Clone)]
pub struct StateDelta {
    /// Visits to write (Some) or delete (None), per (site, visitor id).
    pub sessions: VisitorMap<(i64, Option<Session>)>,
    /// The sightings of every visitor id changed, per (site, visitor id).
    pub sightings: VisitorMap<(i64, Sightings)>,
    /// Log entries applied since the last snapshot.
    pub entries: usize,
    /// When the last snapshot was written (or the delta started).
    pub since: Instant,
}

impl Default for StateDelta {
    fn default() -> StateDelta {
        StateDelta {
            sessions: VisitorMap::default(),
            sightings: VisitorMap::default(),
            entries: 0,
            since: Instant::now(),
        }
    }
}

impl StateDelta {
    /// Takes in the visit state (visits, sightings) of a flush of `entries` log entries, made at
    /// log time `touched_ms` (it replaces what the delta held for the same ids).
    pub fn absorb(
        &mut self,
        sessions: VisitorMap<Option<Session>>,
        sightings: VisitorMap<Sightings>,
        entries: usize,
        touched_ms: i64,
    ) {
        self.sessions.extend(sessions.into_iter().map(|(id, visit)| (id, (touched_ms, visit))));
        self.sightings.extend(sightings.into_iter().map(|(id, seen)| (id, (touched_ms, seen))));
        self.entries += entries;
    }

    /// An empty delta with room for as many ids as `previous` held (the maps then never grow
    /// by rehashing their large values).
    pub fn sized_like(previous: &StateDelta) -> StateDelta {
        let mut fresh = StateDelta::default();
        fresh.sessions.reserve(previous.sessions.len());
        fresh.sightings.reserve(previous.sightings.len());
        fresh
    }

    /// Whether it holds no change.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.sightings.is_empty()
    }

    /// Takes back the changes of an older delta (a snapshot that failed to write) under its own,
    /// which are newer: an id both hold keeps this delta's state.
    pub fn absorb_older(&mut self, older: &StateDelta) {
        for (id, held) in &older.sessions {
            self.sessions.entry(id.clone()).or_insert_with(|| held.clone());
        }
        for (id, held) in &older.sightings {
            self.sightings.entry(id.clone()).or_insert_with(|| held.clone());
        }
        self.entries += older.entries;
    }
}

/// Visit state in layers, newest first: the flush being committed (if any), the changes of
/// committed flushes since the last snapshot, the changes of a snapshot still being written (if
/// any), then the store as of its last snapshot.
pub struct Layers<'a> {
    /// The flush being committed.
    pub applying: Option<&'a Flush>,
    /// Changes since the last snapshot.
    pub delta: &'a StateDelta,
    /// Changes a snapshot in flight writes (the store may or may not hold them yet), with the
    /// log time it is written at: what it expires there is looked up as absent, as it will be
    /// in the store (a replay after a crash finds the same).
    pub snapshotting: Option<(&'a StateDelta, i64)>,
    /// The store's state.
    pub stored: &'a dyn SessionLookup,
}

impl SessionLookup for Layers<'_> {
    fn session(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Session>> {
        let id = SiteKey(site, visitor);
        if let Some(held) = self.applying.and_then(|f| f.sessions.get(&id)) {
            return Ok(held.clone());
        }
        if let Some((_, held)) = self.delta.sessions.get(&id) {
            return Ok(held.clone());
        }
        if let Some((writing, until_ms)) = self.snapshotting
            && let Some((touched, held)) = writing.sessions.get(&id)
        {
            return Ok(held.clone().filter(|visit| visit_kept(*touched, visit.last_ms, until_ms)));
        }
        self.stored.session(site, visitor)
    }

    fn sightings(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Sightings>> {
        let id = SiteKey(site, visitor);
        if let Some(held) = self.applying.and_then(|f| f.sightings.get(&id)) {
            return Ok(Some(held.clone()));
        }
        if let Some((_, held)) = self.delta.sightings.get(&id) {
            return Ok(Some(held.clone()));
        }
        if let Some((writing, until_ms)) = self.snapshotting
            && let Some((touched, held)) = writing.sightings.get(&id)
        {
            return Ok(sightings_kept(*touched, until_ms).then(|| held.clone()));
        }
        self.stored.sightings(site, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::rollup::CellKey;
    use tally_model::session::Exit;

    fn visit(last_ms: i64) -> Session {
        Session {
            started_ms: last_ms,
            last_ms,
            start_bucket: 0,
            entry: Box::new(CellKey::default()),
            bounce: true,
            exit: Exit::default(),
            pageviews: 1,
            start_visitor: 7,
        }
    }

    /// The store as it was before the snapshot: it still holds every id the tests look up.
    struct Stored;

    impl SessionLookup for Stored {
        fn session(&self, _: &str, _: u64) -> anyhow::Result<Option<Session>> {
            Ok(Some(visit(-1)))
        }

        fn sightings(&self, _: &str, _: u64) -> anyhow::Result<Option<Sightings>> {
            Ok(Some(Sightings { hours: vec![(0, 0, -1)], exits: vec![] }))
        }
    }

    #[test]
    fn a_snapshot_in_flight_reads_as_the_store_will_hold_it() {
        let now = 10 * 86_400_000;
        let mut writing = StateDelta::default();
        let id = |v: u64| ("a.com".to_owned(), v);
        // Visit 1 is open; visit 2 ended long ago (the snapshot expires it); visit 3 was deleted.
        writing.sessions.insert(id(1), (now, Some(visit(now))));
        writing.sessions.insert(id(2), (now - 2 * SESSION_TIMEOUT_MS, Some(visit(now - 2 * SESSION_TIMEOUT_MS))));
        writing.sessions.insert(id(3), (now, None));
        // Id 1's sightings are fresh; id 2's untouched for three days.
        writing.sightings.insert(id(1), (now, Sightings::default()));
        writing.sightings.insert(id(2), (now - 3 * 86_400_000, Sightings::default()));
        let mut newer = StateDelta::default();
        newer.sessions.insert(id(1), (now, Some(visit(now + 5))));
        let layers = Layers { applying: None, delta: &newer, snapshotting: Some((&writing, now)), stored: &Stored };
        let session = |v| layers.session("a.com", v).expect("lookup").map(|s| s.last_ms);
        assert_eq!(session(1), Some(now + 5), "the newer delta wins");
        assert_eq!(session(2), None, "expired by the snapshot: absent, not the store's older copy");
        assert_eq!(session(3), None, "deleted");
        assert_eq!(session(4), Some(-1), "not in flight: the store's");
        let seen = |v| layers.sightings("a.com", v).expect("lookup");
        assert_eq!(seen(1), Some(Sightings::default()));
        assert_eq!(seen(2), None, "expired by the snapshot");
        assert_eq!(seen(4).map(|s| s.hours.len()), Some(1), "not in flight: the store's");
        // A snapshot that failed goes back under the newer changes.
        newer.absorb_older(&writing);
        assert_eq!(newer.sessions[&id(1)].1.as_ref().map(|s| s.last_ms), Some(now + 5));
        assert!(newer.sessions.contains_key(&id(2)) && newer.sightings.contains_key(&id(2)));
    }
}
