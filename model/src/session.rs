//! Visits: how one event continues or starts a visit, and what it contributes ([`Contribution`]).
//!
//! A visit ends after [`SESSION_TIMEOUT_MS`] without an event. Visit counters (visits, bounces,
//! duration, page views per visit) live in the visit's entry cell, in the bucket where it began;
//! later events send deltas there. Event counters live in the event's own cell, which carries the
//! visit's dimensions (source, country, device, …) as they were at the visit's start. Both the
//! full-combination cells ([`crate::rollup`]) and the per-dimension rollups
//! ([`crate::breakdown`]) are projections of the same contributions.
//!
//! A visit's **exit page** (and its hostname) is the page of its latest page view (of its first
//! event until it has one), so it is known only when the visit ends. A page view that moves it
//! reports the move ([`Contribution::exit_moved`]): the per-dimension rollups then take the
//! visit's counters so far off the old exit's row and put them on the new one.

use crate::dimension::Dimension;
use crate::event::Event;
use crate::facts::Facts;
use crate::limits::SESSION_TIMEOUT_MS;
use crate::rollup::{Bucket, CellKey, Counters};
use serde::{Deserialize, Serialize};

/// The state of one visitor's current visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Arrival time of its first event, ms since the epoch.
    pub started_ms: i64,
    /// Arrival time of its latest event, ms since the epoch.
    pub last_ms: i64,
    /// The bucket it started in.
    pub start_bucket: Bucket,
    /// Its entry cell: the first event's dimensions (boxed: the maps of open visits then move
    /// small entries when they grow).
    pub entry: Box<CellKey>,
    /// Whether it is (so far) a bounce.
    pub bounce: bool,
    /// Its exit page so far: the page of its latest page view (of its first event before any).
    pub exit: Exit,
    /// Its page views so far.
    pub pageviews: i64,
    /// The visitor id it started under (ids change at UTC midnight; exit-page visitors are
    /// counted under this one, in the visit's start bucket).
    pub start_visitor: u64,
}

/// A visit's exit page: `visit:exit_page` and `visit:exit_page_hostname`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exit {
    /// The path.
    pub page: String,
    /// The hostname.
    pub hostname: String,
}

impl Session {
    /// Whether an event arriving at `at_ms` still belongs to this visit.
    pub fn continues_at(&self, at_ms: i64) -> bool {
        at_ms - self.last_ms <= SESSION_TIMEOUT_MS
    }

    /// Its visit counters so far: what its entry rows hold for it.
    pub fn counters(&self) -> Counters {
        Counters {
            visits: 1,
            bounces: i64::from(self.bounce),
            duration_ms: self.last_ms - self.started_ms,
            visit_pageviews: self.pageviews,
            ..Counters::default()
        }
    }
}

/// The cell of an event that starts a visit: all dimensions from the event itself.
pub fn entry_key(event: &Event, facts: &Facts) -> CellKey {
    let utm = &facts.landing.page.utm;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    CellKey {
        name: event.name.clone(),
        hostname: facts.landing.page.hostname.clone(),
        page: facts.landing.page.path.clone(),
        source: facts.landing.source.clone(),
        utm_source: text(&utm.source),
        utm_medium: text(&utm.medium),
        utm_campaign: text(&utm.campaign),
        utm_content: text(&utm.content),
        utm_term: text(&utm.term),
        country: text(&event.country),
        device: facts.agent.device.as_str().to_owned(),
        browser: facts.agent.browser.clone(),
        browser_version: facts.agent.browser_version.clone(),
        os: facts.agent.os.clone(),
        os_version: facts.agent.os_version.clone(),
        entry_page: facts.landing.page.path.clone(),
        entry_page_hostname: facts.landing.page.hostname.clone(),
        referrer: facts.landing.referrer.clone(),
        channel: facts.landing.channel.to_owned(),
        region: text(&event.region),
        city: text(&event.city),
    }
}

/// What one event adds to the aggregates. It borrows the event's own values and its visit's
/// state after the event (entry cell, exit page), so making one copies no strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution<'a> {
    /// The event's bucket.
    pub bucket: Bucket,
    /// The event's own `event:name`.
    pub name: &'a str,
    /// The event's own `event:hostname`.
    pub hostname: &'a str,
    /// The event's own `event:page`.
    pub page: &'a str,
    /// The event's own counters (events, page views), added to its cell.
    pub counters: Counters,
    /// The visitor id it counts under (today's id).
    pub visitor: u64,
    /// The bucket its visit started in.
    pub visit_bucket: Bucket,
    /// Its visit's entry cell.
    pub entry: &'a CellKey,
    /// What it changes in its visit's counters (a new visit, an ended bounce, duration), added to
    /// the entry cell.
    pub visit: Counters,
    /// Its visit's exit page after this event.
    pub exit: &'a Exit,
    /// If this event moved the exit page: the exit before, and the visit's counters before this
    /// event (what the old exit's rows held for the visit).
    pub exit_moved: Option<&'a (Exit, Counters)>,
    /// The visitor id its visit started under.
    pub start_visitor: u64,
    /// When its visit started, ms since the epoch: with [`Contribution::start_visitor`], which
    /// visit it belongs to (one id starts at most one visit in a millisecond).
    pub visit_started_ms: i64,
    /// When the event itself arrived, ms since the epoch (what orders a visitor's events in a
    /// funnel).
    pub at_ms: i64,
}

impl<'a> Contribution<'a> {
    /// Whether this event started its visit.
    pub fn starts_visit(&self) -> bool {
        self.visit.visits == 1
    }

    /// The value of a dimension in the event's cell: its own name, hostname and page, its visit's
    /// other values (`""` for the exit page and its hostname, which cells do not hold).
    pub fn value(&self, dimension: Dimension) -> &'a str {
        match dimension {
            Dimension::Name => self.name,
            Dimension::Hostname => self.hostname,
            Dimension::Page => self.page,
            other => other.value(self.entry),
        }
    }

    /// Which visit it belongs to within its site: the id the visit started under and when. Its
    /// entry cell is the same for every event of the visit, so aggregates may remember what they
    /// derived from it under this key.
    pub fn visit_key(&self) -> (u64, i64) {
        (self.start_visitor, self.visit_started_ms)
    }

    /// The event's cell, owned.
    pub fn key(&self) -> CellKey {
        CellKey {
            name: self.name.to_owned(),
            hostname: self.hostname.to_owned(),
            page: self.page.to_owned(),
            ..self.entry.clone()
        }
    }
}

/// What one event changed in its visit, besides the visit's new state: see [`Contribution`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The change to the visit's counters.
    pub visit: Counters,
    /// If the event moved the exit page: the exit before and the visit's counters before.
    pub exit_moved: Option<(Exit, Counters)>,
}

/// Applies one event to its visitor's visit (`None` if there is none, or it has ended) and
/// returns the visit's new state and what the event changed in it; [`contribution`] then says
/// what the event contributes. `bucket` is the event's bucket.
pub fn apply(session: Option<Session>, event: &Event, facts: &Facts, bucket: Bucket) -> (Session, Change) {
    let pageview = i64::from(event.is_pageview());
    let (next, visit, exit_moved) = match session.filter(|s| s.continues_at(event.received_ms)) {
        None => {
            let (next, visit) = start(event, facts, bucket, pageview);
            (next, visit, None)
        }
        Some(s) => continue_visit(s, event, facts, pageview),
    };
    (next, Change { visit, exit_moved })
}

/// What an event contributes, given its visit after it (`visit`) and what it changed there
/// (`change`), as [`apply`] returned them.
pub fn contribution<'a>(
    visit: &'a Session,
    change: &'a Change,
    event: &'a Event,
    facts: &'a Facts,
    bucket: Bucket,
) -> Contribution<'a> {
    Contribution {
        bucket,
        name: &event.name,
        hostname: &facts.landing.page.hostname,
        page: &facts.landing.page.path,
        counters: Counters { events: 1, pageviews: i64::from(event.is_pageview()), ..Counters::default() },
        visitor: event.visitor.current,
        visit_bucket: visit.start_bucket,
        entry: &visit.entry,
        visit: change.visit,
        exit: &visit.exit,
        exit_moved: change.exit_moved.as_ref(),
        start_visitor: visit.start_visitor,
        visit_started_ms: visit.started_ms,
        at_ms: event.received_ms,
    }
}

/// What an engagement event contributes to `visit`, the open visit it belongs to, which it
/// changes in nothing (no bounce ended, no duration, no page view, no event counted; as in
/// Plausible): only its own bucket, name, hostname and page, for its engagement row
/// ([`crate::segment::SegmentRows::add_engagement`]).
pub fn engagement<'a>(visit: &'a Session, event: &'a Event, facts: &'a Facts, bucket: Bucket) -> Contribution<'a> {
    Contribution {
        bucket,
        name: &event.name,
        hostname: &facts.landing.page.hostname,
        page: &facts.landing.page.path,
        counters: Counters::default(),
        visitor: event.visitor.current,
        visit_bucket: visit.start_bucket,
        entry: &visit.entry,
        visit: Counters::default(),
        exit: &visit.exit,
        exit_moved: None,
        start_visitor: visit.start_visitor,
        visit_started_ms: visit.started_ms,
        at_ms: event.received_ms,
    }
}

fn start(event: &Event, facts: &Facts, bucket: Bucket, pageview: i64) -> (Session, Counters) {
    let entry = Box::new(entry_key(event, facts));
    let visit = Counters { visits: 1, bounces: 1, visit_pageviews: pageview, ..Counters::default() };
    let session = Session {
        started_ms: event.received_ms,
        last_ms: event.received_ms,
        start_bucket: bucket,
        exit: Exit { page: facts.landing.page.path.clone(), hostname: facts.landing.page.hostname.clone() },
        entry,
        bounce: true,
        pageviews: pageview,
        start_visitor: event.visitor.current,
    };
    (session, visit)
}

fn continue_visit(
    mut s: Session,
    event: &Event,
    facts: &Facts,
    pageview: i64,
) -> (Session, Counters, Option<(Exit, Counters)>) {
    let before = s.counters();
    let ends_bounce = s.bounce && (pageview == 1 || event.interactive);
    let delta = Counters {
        duration_ms: (event.received_ms - s.last_ms).max(0),
        visit_pageviews: pageview,
        bounces: -i64::from(ends_bounce),
        ..Counters::default()
    };
    s.last_ms = s.last_ms.max(event.received_ms);
    s.bounce &= !ends_bounce;
    s.pageviews += pageview;
    let moves =
        pageview == 1 && (s.exit.page != facts.landing.page.path || s.exit.hostname != facts.landing.page.hostname);
    let exit_moved = moves.then(|| {
        let to = Exit { page: facts.landing.page.path.clone(), hostname: facts.landing.page.hostname.clone() };
        (std::mem::replace(&mut s.exit, to), before)
    });
    (s, delta, exit_moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, VisitorIds};
    use crate::rollup::Rollup;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

    fn event(at_ms: i64, name: &str, path: &str) -> Event {
        Event {
            id: EventId(at_ms as u128),
            received_ms: at_ms,
            site: "a.com".into(),
            name: name.into(),
            url: format!("https://a.com{path}"),
            referrer: None,
            props: vec![],
            revenue: None,
            interactive: true,
            user_agent: CHROME.into(),
            country: Some("DE".into()),
            visitor: VisitorIds { current: 1, previous: 2 },
            region: None,
            city: None,
            engagement: None,
            hash_mode: false,
        }
    }

    fn run(events: &[Event]) -> Rollup {
        let mut rollup = Rollup::default();
        let mut session = None;
        for e in events {
            let facts = Facts::of(e).expect("valid url");
            let bucket = e.received_ms / 3_600_000;
            let (next, change) = apply(session, e, &facts, bucket);
            rollup.add_contribution(&contribution(&next, &change, e, &facts, bucket));
            session = Some(next);
        }
        rollup
    }

    fn totals(rollup: &Rollup) -> Counters {
        let mut sum = Counters::default();
        rollup.cells.values().for_each(|c| sum.add(c));
        sum
    }

    #[test]
    fn one_pageview_is_one_bounced_visit() {
        let t = totals(&run(&[event(0, "pageview", "/")]));
        assert_eq!((t.events, t.pageviews, t.visits, t.bounces, t.duration_ms), (1, 1, 1, 1, 0));
    }

    #[test]
    fn a_second_pageview_ends_the_bounce_and_adds_duration() {
        let r = run(&[event(0, "pageview", "/"), event(60_000, "pageview", "/b")]);
        let t = totals(&r);
        assert_eq!(
            (t.events, t.pageviews, t.visits, t.bounces, t.duration_ms, t.visit_pageviews),
            (2, 2, 1, 0, 60_000, 2)
        );
        let entry = r.cells.iter().find(|((_, k), _)| k.page == "/").map(|(_, c)| *c).expect("entry cell");
        assert_eq!(entry.visits, 1, "visit counters live in the entry cell");
    }

    #[test]
    fn thirty_minutes_of_silence_starts_a_new_visit() {
        let t = totals(&run(&[event(0, "pageview", "/"), event(SESSION_TIMEOUT_MS + 1, "pageview", "/")]));
        assert_eq!((t.visits, t.bounces), (2, 2));
        let t = totals(&run(&[event(0, "pageview", "/"), event(SESSION_TIMEOUT_MS, "pageview", "/")]));
        assert_eq!((t.visits, t.bounces), (1, 0));
    }

    #[test]
    fn a_non_interactive_event_keeps_the_bounce() {
        let mut quiet = event(1_000, "scroll", "/");
        quiet.interactive = false;
        let t = totals(&run(&[event(0, "pageview", "/"), quiet]));
        assert_eq!((t.events, t.pageviews, t.visits, t.bounces), (2, 1, 1, 1));
    }

    #[test]
    fn later_events_carry_the_visit_dimensions_of_its_start() {
        let mut second = event(1_000, "pageview", "/b");
        second.country = Some("FR".into());
        let r = run(&[event(0, "pageview", "/"), second]);
        assert!(r.cells.keys().all(|(_, k)| k.country == "DE"));
    }

    #[test]
    fn every_event_carries_its_visits_entry_page_and_referrer() {
        let mut first = event(0, "pageview", "/landing");
        first.referrer = Some("https://news.example.org/story/?x=1".into());
        let mut second = event(1_000, "pageview", "/b");
        second.referrer = Some("https://elsewhere.example/".into());
        let r = run(&[first, second]);
        assert_eq!(r.cells.len(), 2);
        for (_, key) in r.cells.keys() {
            assert_eq!((key.entry_page.as_str(), key.entry_page_hostname.as_str()), ("/landing", "a.com"));
            assert_eq!(key.referrer, "news.example.org/story");
        }
    }
}
