//! Visit state between snapshots: the open visits and visitor sightings that committed flushes
//! changed since the store last wrote them.
//!
//! Writing every touched visit and sighting in every flush's transaction rewrote, flush after
//! flush, B-tree pages spread over both tables (their keys are hashed visitor ids): on a
//! 1,000,000-event import that cost a third of the CPU. Instead the aggregator keeps the changes
//! of committed flushes in memory ([`StateDelta`]) and writes them to the store every so often,
//! in a transaction of its own right after a flush's (a *state snapshot*), together with
//! `state_offset`, the log offset they reach. Rollups, segment rows and `applied_offset` still commit with every flush.
//! After a restart the store's state is as of `state_offset`, and the aggregator replays the log
//! entries from there to `applied_offset` through the same flush code, keeping only the visit
//! state they produce ([`crate::embedded::aggregate`]); building a flush depends on nothing but
//! the entries, the state before them and the sites' time zones, so the replay rebuilds exactly
//! the state that the lost snapshot would have held.

use crate::pipeline::flush::{Flush, SessionLookup, SiteKey, VisitorMap};
use std::time::Instant;
use tally_model::breakdown::Sightings;
use tally_model::session::Session;

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
}

/// Visit state in layers, newest first: the flush being committed (if any), the changes of
/// committed flushes since the last snapshot, then the store as of its last snapshot.
pub struct Layers<'a> {
    /// The flush being committed.
    pub applying: Option<&'a Flush>,
    /// Changes since the last snapshot.
    pub delta: &'a StateDelta,
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
        self.stored.sightings(site, visitor)
    }
}
