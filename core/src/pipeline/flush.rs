//! A flush: everything that applying a batch of log entries changes — per site lineage the
//! per-dimension rollup deltas, segment rows (the embedded store only), visit states, visitor
//! sightings, drop counts — built the same way whatever the source (embedded log or Kinesis)
//! and applied atomically (embedded) or idempotently (DynamoDB) by a store.

use crate::pipeline::fact_cache::FactCache;
use crate::pipeline::timebucket::local_hour;
use jiff::tz::TimeZone;
use std::collections::BTreeMap;
use tally_model::breakdown::{Breakdown, Sightings};
use tally_model::event::{Event, LogEntry};
use tally_model::facts::Facts;
use tally_model::money::Money;
use tally_model::reject::DropReason;
use tally_model::segment::SegmentRows;
use tally_model::session::{self, Session};

/// A site's writer lineage within a region: the site and its sub-partition (design decision 6).
/// The embedded store has one lineage per site, sub-partition 0.
pub type Lineage = (String, u16);

/// A map of a flush's in-memory state, hashed with a fixed seed (never stored).
pub type FastMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;

/// Per (site, visitor id) state of a flush, looked up by a borrowed [`SiteKey`], so a lookup
/// allocates nothing.
pub type VisitorMap<V> = FastMap<(String, u64), V>;

/// A borrowed `(String, T)` key (site and visitor id, or site and sub-partition): it hashes as
/// the owned key does, so maps keyed by the owned tuple are looked up without an allocation.
#[derive(Debug, Clone, Copy, Hash)]
pub struct SiteKey<'a, T>(pub &'a str, pub T);

impl<T: PartialEq> hashbrown::Equivalent<(String, T)> for SiteKey<'_, T> {
    fn equivalent(&self, key: &(String, T)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl<T: Copy> From<&SiteKey<'_, T>> for (String, T) {
    fn from(key: &SiteKey<'_, T>) -> (String, T) {
        (key.0.to_owned(), key.1)
    }
}

/// Where a flush finds open visits (and visitor sightings) it does not hold yet.
pub trait SessionLookup {
    /// The stored open visit of `visitor` on `site`, if any.
    fn session(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Session>>;

    /// Where the visitor id has been seen so far (per-dimension rollups only).
    fn sightings(&self, _site: &str, _visitor: u64) -> anyhow::Result<Option<Sightings>> {
        Ok(None)
    }
}

/// The sightings of a visitor id in `held`, loaded from `stored` on first use.
fn sightings_of<'a>(
    held: &'a mut VisitorMap<Sightings>,
    site: &str,
    visitor: u64,
    stored: &dyn SessionLookup,
) -> anyhow::Result<&'a mut Sightings> {
    Ok(match held.entry_ref(&SiteKey(site, visitor)) {
        hashbrown::hash_map::EntryRef::Occupied(known) => known.into_mut(),
        hashbrown::hash_map::EntryRef::Vacant(slot) => {
            slot.insert(stored.sightings(site, visitor)?.unwrap_or_default())
        }
    })
}

/// Everything one flush changes.
#[derive(Debug, Default)]
pub struct Flush {
    /// Per-dimension rollup deltas per lineage.
    pub breakdowns: FastMap<Lineage, Breakdown>,
    /// Segment rows per lineage.
    pub segments: FastMap<Lineage, SegmentRows>,
    /// The new sightings state of every visitor id this flush saw, per (site, visitor id).
    pub sightings: VisitorMap<Sightings>,
    /// User agents and pages normalised so far (they repeat heavily); [`Flush::take_facts`]
    /// hands them to the next flush.
    facts: FactCache,
    /// Visits to write (Some) or delete (None), per (site, visitor id).
    pub sessions: VisitorMap<Option<Session>>,
    /// Drop counts per (site or "", reason).
    pub drops: BTreeMap<(String, DropReason), u64>,
    /// The latest arrival time among the entries, ms since the epoch (0: none).
    pub latest_ms: i64,
}

impl Flush {
    /// Starts with the user agents and pages an earlier flush normalised.
    pub fn with_facts(mut self, facts: FactCache) -> Flush {
        self.facts = facts;
        self
    }

    /// The user agents and pages this flush normalised, for the next one.
    pub fn take_facts(&mut self) -> FactCache {
        std::mem::take(&mut self.facts)
    }

    /// Adds one log entry of lineage sub-partition `sub`. `zone_of` gives a site's time zone
    /// (UTC when unknown); `stored` finds visits this flush does not hold yet.
    pub fn add(
        &mut self,
        entry: &LogEntry,
        sub: u16,
        zone_of: &dyn Fn(&str) -> Option<TimeZone>,
        stored: &dyn SessionLookup,
    ) -> anyhow::Result<()> {
        match entry {
            LogEntry::Event(event) => self.add_event(event, sub, zone_of, stored),
            LogEntry::Drop(drop) => {
                *self.drops.entry((drop.site.clone().unwrap_or_default(), drop.reason)).or_default() += 1;
                self.latest_ms = self.latest_ms.max(drop.received_ms);
                Ok(())
            }
            LogEntry::Drops(drops) => {
                *self.drops.entry((drops.site.clone().unwrap_or_default(), drops.reason)).or_default() += drops.count;
                self.latest_ms = self.latest_ms.max(drops.received_ms);
                Ok(())
            }
        }
    }

    fn add_event(
        &mut self,
        event: &Event,
        sub: u16,
        zone_of: &dyn Fn(&str) -> Option<TimeZone>,
        stored: &dyn SessionLookup,
    ) -> anyhow::Result<()> {
        self.latest_ms = self.latest_ms.max(event.received_ms);
        let Some(facts) = self.facts.facts(event) else {
            // The edge checked the URL; an entry that fails now was written by other code.
            *self.drops.entry((event.site.clone(), DropReason::InvalidUrl)).or_default() += 1;
            return Ok(());
        };
        let bucket = local_hour(zone_of(&event.site).as_ref(), event.received_ms);
        let open = self.open_session(event, stored)?;
        if event.is_engagement() {
            return self.add_engagement(event, &facts, bucket, sub, open);
        }
        let (next, change) = session::apply(open, event, &facts, bucket);
        let contribution = session::contribution(&next, &change, event, &facts, bucket);
        let breakdown = self.breakdowns.entry_ref(&SiteKey(&event.site, sub)).or_default();
        let seen = sightings_of(&mut self.sightings, &event.site, event.visitor.current, stored)?;
        breakdown.add(&contribution, seen);
        breakdown.add_props(&contribution, &event.props, seen);
        let money = event.revenue.as_ref().and_then(Money::of);
        if let Some(money) = money {
            breakdown.add_revenue(&contribution, &event.props, money);
        }
        // Exit rows count under the id the visit started with (the same one but for visits
        // across a UTC midnight); touching its sightings keeps them while the visit goes on.
        if contribution.start_visitor == event.visitor.current {
            breakdown.add_exit(&contribution, seen);
        } else {
            let start_seen = sightings_of(&mut self.sightings, &event.site, contribution.start_visitor, stored)?;
            breakdown.add_exit(&contribution, start_seen);
        }
        let props = tally_model::props::set_text(&event.props);
        self.segments.entry_ref(&SiteKey(&event.site, sub)).or_default().add(&contribution, &props, money);
        *self.sessions.entry_ref(&SiteKey(&event.site, event.visitor.current)).or_default() = Some(next);
        Ok(())
    }

    /// An engagement event of a visit that `open` holds (the visitor's visit as
    /// [`Flush::open_session`] took it out): an engagement row in the segments, the visit put
    /// back unchanged. Without an open visit it is dropped, as Plausible drops it; one logged
    /// before engagement events kept what they measured (codec version 5) measures nothing and
    /// is dropped as the edge now drops such an event.
    fn add_engagement(
        &mut self,
        event: &Event,
        facts: &Facts,
        bucket: i64,
        sub: u16,
        open: Option<Session>,
    ) -> anyhow::Result<()> {
        let visit = open.as_ref().filter(|visit| visit.continues_at(event.received_ms));
        match (&event.engagement, visit) {
            (None, _) => *self.drops.entry((event.site.clone(), DropReason::MissingField)).or_default() += 1,
            (Some(_), None) => {
                *self.drops.entry((event.site.clone(), DropReason::EngagementWithoutVisit)).or_default() += 1;
            }
            (Some(engagement), Some(visit)) => {
                let contribution = session::engagement(visit, event, facts, bucket);
                let props = tally_model::props::set_text(&event.props);
                self.segments.entry_ref(&SiteKey(&event.site, sub)).or_default().add_engagement(
                    &contribution,
                    &props,
                    engagement,
                );
            }
        }
        if open.is_some() {
            *self.sessions.entry_ref(&SiteKey(&event.site, event.visitor.current)).or_default() = open;
        }
        Ok(())
    }

    /// The visitor's open visit: under today's id, else under yesterday's (moved to today's).
    fn open_session(&mut self, event: &Event, stored: &dyn SessionLookup) -> anyhow::Result<Option<Session>> {
        let current = self.lookup(&event.site, event.visitor.current, stored)?;
        if current.is_some() || event.visitor.previous == event.visitor.current {
            return Ok(current);
        }
        let previous = self.lookup(&event.site, event.visitor.previous, stored)?;
        if previous.is_some() {
            self.sessions.insert((event.site.clone(), event.visitor.previous), None);
        }
        Ok(previous)
    }

    /// The visit of `visitor`: taken out of this flush if it holds it (the caller writes it back
    /// or deletes it, as `add_event` and `open_session` do), else read from `stored`.
    fn lookup(&mut self, site: &str, visitor: u64, stored: &dyn SessionLookup) -> anyhow::Result<Option<Session>> {
        match self.sessions.get_mut(&SiteKey(site, visitor)) {
            Some(known) => Ok(known.take()),
            None => stored.session(site, visitor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::event::{ENGAGEMENT, Engagement, EventId, VisitorIds};

    /// No stored visits: every visit starts in the flush.
    struct Nothing;

    impl SessionLookup for Nothing {
        fn session(&self, _site: &str, _visitor: u64) -> anyhow::Result<Option<Session>> {
            Ok(None)
        }
    }

    fn event(at_ms: i64, visitor: u64, name: &str, engagement: Option<Engagement>) -> LogEntry {
        LogEntry::Event(Box::new(Event {
            id: EventId(at_ms as u128),
            received_ms: at_ms,
            site: "a.com".into(),
            name: name.into(),
            url: "https://a.com/docs".into(),
            referrer: None,
            props: vec![],
            revenue: None,
            interactive: true,
            user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0".into(),
            country: None,
            visitor: VisitorIds { current: visitor, previous: visitor },
            region: None,
            city: None,
            engagement,
            hash_mode: false,
        }))
    }

    fn flush(entries: &[LogEntry]) -> Flush {
        let mut flush = Flush::default();
        for entry in entries {
            flush.add(entry, 0, &|_| None, &Nothing).expect("added");
        }
        flush
    }

    #[test]
    fn engagement_events_change_no_visit_and_count_nothing_but_their_row() {
        let measured = Some(Engagement { scroll_depth: Some(60), engaged_ms: 4_000 });
        let alone = flush(&[event(0, 1, "pageview", None)]);
        let engaged = flush(&[
            event(0, 1, "pageview", None),
            event(10_000, 1, ENGAGEMENT, measured),
            // Logged by an older release, which kept no measurement: counted as nothing.
            event(20_000, 1, ENGAGEMENT, None),
            // Another visitor without a visit.
            event(30_000, 2, ENGAGEMENT, measured),
        ]);
        let lineage = ("a.com".to_owned(), 0);
        assert_eq!(engaged.breakdowns[&lineage], alone.breakdowns[&lineage], "the rollups see nothing");
        assert_eq!(engaged.sessions, alone.sessions, "the visit is unchanged");
        let rows = &engaged.segments[&lineage].rows;
        assert_eq!(rows.len(), alone.segments[&lineage].rows.len() + 1, "one engagement row");
        let sums: Vec<_> = rows.values().filter(|s| s.engagement.events > 0).collect();
        assert_eq!(sums.len(), 1);
        assert_eq!((sums[0].engagement.engaged_ms, sums[0].engagement.max_scroll_depth), (4_000, 60));
        assert_eq!(sums[0].counters, tally_model::rollup::Counters::default());
        let drops: Vec<_> = engaged.drops.iter().map(|((_, reason), n)| (*reason, *n)).collect();
        assert_eq!(drops, vec![(DropReason::MissingField, 1), (DropReason::EngagementWithoutVisit, 1)]);
    }
}
