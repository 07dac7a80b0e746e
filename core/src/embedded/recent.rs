//! The last 30 minutes of live events, in memory, for realtime answers (`date_range:
//! "realtime"`, the last 5 minutes, and `"30m"`): seconds old, exact, and independent of the
//! hour buckets of the store. Engagement events are left out, as Plausible's current visitors
//! leave them out. Ingest adds each acknowledged event; a start fills it from the tail
//! of the event log.

use crate::embedded::log::EventLog;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use tally_model::codec;
use tally_model::event::LogEntry;

/// How far back realtime answers look.
pub const WINDOW_MS: i64 = 30 * 60_000;
/// Most events held (about 40 bytes each): beyond it the oldest go first.
pub const MAX_EVENTS: usize = 4_000_000;

#[derive(Debug, Clone, Copy)]
struct Recent {
    site: u64,
    visitor: u64,
    at_ms: i64,
    pageview: bool,
}

/// Counts of one realtime answer row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RealtimeCounts {
    /// Distinct visitors.
    pub visitors: u64,
    /// Page views.
    pub pageviews: u64,
    /// Events of any name.
    pub events: u64,
}

/// Recent live events of every site.
#[derive(Debug, Default)]
pub struct RecentEvents {
    events: Mutex<VecDeque<Recent>>,
    hasher: foldhash::fast::FixedState,
}

impl RecentEvents {
    /// Filled from the log's tail: the events of the last 30 minutes before `now_ms`, newest
    /// first until an older one (an import's old events may hide a few live ones behind them).
    pub fn from_log(log: &EventLog, now_ms: i64) -> anyhow::Result<RecentEvents> {
        let recent = RecentEvents::default();
        let since = now_ms - WINDOW_MS;
        let mut found = Vec::new();
        log.scan_newest_first(MAX_EVENTS, |bytes| match codec::decode(bytes) {
            Ok(LogEntry::Event(event)) if event.received_ms < since => false,
            Ok(LogEntry::Event(event)) if event.is_engagement() => true,
            Ok(LogEntry::Event(event)) => {
                found.push(recent.entry(&event.site, event.visitor.current, event.received_ms, event.is_pageview()));
                true
            }
            _ => true,
        })?;
        found.reverse();
        recent.lock().extend(found);
        Ok(recent)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Recent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn site_key(&self, site: &str) -> u64 {
        self.hasher.hash_one(site)
    }

    fn entry(&self, site: &str, visitor: u64, at_ms: i64, pageview: bool) -> Recent {
        Recent { site: self.site_key(site), visitor, at_ms, pageview }
    }

    /// Adds the accepted events of `entries` (just acknowledged) and forgets what is older than
    /// the window.
    pub fn add(&self, entries: &[LogEntry], now_ms: i64) {
        let added: Vec<Recent> = entries
            .iter()
            .filter_map(|e| match e {
                LogEntry::Event(event) if !event.is_engagement() => {
                    Some(self.entry(&event.site, event.visitor.current, event.received_ms, event.is_pageview()))
                }
                _ => None,
            })
            .collect();
        let mut events = self.lock();
        events.extend(added);
        while events.front().is_some_and(|e| e.at_ms < now_ms - WINDOW_MS) || events.len() > MAX_EVENTS {
            events.pop_front();
        }
    }

    /// `site`'s counts since `since_ms`, in all, or per minute (minute start in ms → counts).
    pub fn counts(&self, site: &str, since_ms: i64, by_minute: bool) -> BTreeMap<i64, RealtimeCounts> {
        let key = self.site_key(site);
        let events = self.lock();
        let mut out: BTreeMap<i64, (RealtimeCounts, HashSet<u64>)> = BTreeMap::new();
        for e in events.iter().filter(|e| e.site == key && e.at_ms >= since_ms) {
            let slot = if by_minute { e.at_ms - e.at_ms.rem_euclid(60_000) } else { since_ms };
            let (counts, visitors) = out.entry(slot).or_default();
            counts.events += 1;
            counts.pageviews += u64::from(e.pageview);
            visitors.insert(e.visitor);
        }
        out.into_iter()
            .map(|(at, (counts, visitors))| (at, RealtimeCounts { visitors: visitors.len() as u64, ..counts }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::event::{Event, EventId, VisitorIds};

    fn event(site: &str, visitor: u64, at_ms: i64, name: &str) -> LogEntry {
        LogEntry::Event(Box::new(Event {
            id: EventId(u128::from(visitor) << 64 | at_ms as u128),
            received_ms: at_ms,
            site: site.into(),
            name: name.into(),
            url: format!("https://{site}/"),
            referrer: None,
            props: Vec::new(),
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

    #[test]
    fn counts_distinct_visitors_per_site_and_minute_and_forgets_the_old() {
        let recent = RecentEvents::default();
        let t = 100 * 60_000;
        recent.add(&[event("a.com", 1, t, "pageview"), event("a.com", 1, t + 1_000, "Signup")], t + 1_000);
        recent.add(&[event("a.com", 2, t + 61_000, "pageview"), event("b.com", 3, t + 61_000, "pageview")], t + 61_000);
        let all = recent.counts("a.com", t, false);
        assert_eq!(all.values().next(), Some(&RealtimeCounts { visitors: 2, pageviews: 2, events: 3 }));
        let by_minute: Vec<u64> = recent.counts("a.com", t, true).values().map(|c| c.visitors).collect();
        assert_eq!(by_minute, [1, 1]);
        assert!(recent.counts("a.com", t + 62_000, false).is_empty(), "nothing since");
        // Half an hour later the first minute is gone.
        recent.add(&[event("a.com", 4, t + WINDOW_MS + 30_000, "pageview")], t + WINDOW_MS + 30_000);
        let later = recent.counts("a.com", 0, false);
        assert_eq!(later.values().next().map(|c| c.visitors), Some(2), "visitor 2 (within 30 min) and 4");
    }
}
