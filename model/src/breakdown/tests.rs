//! The per-dimension rollups against a brute-force count over the raw events, across zones with
//! half- and quarter-hour offsets and DST-like offset changes, visits crossing midnights.

use super::*;
use crate::event::{Event, EventId, VisitorIds};
use crate::facts::Facts;
use crate::limits::SESSION_TIMEOUT_MS;
use crate::session::{self, Contribution, Session};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const DAY_MS: i64 = 86_400_000;
const PAGES: [&str; 3] = ["/", "/a", "/b"];
const COUNTRIES: [&str; 2] = ["DE", "IN"];

/// A wall clock: a base offset in minutes, and from `switch_ms` on another offset (DST).
#[derive(Debug, Clone, Copy)]
struct Clock {
    offset_min: i64,
    switch_ms: i64,
    after_min: i64,
}

impl Clock {
    fn bucket(&self, ms: i64) -> Bucket {
        let offset = if ms >= self.switch_ms { self.after_min } else { self.offset_min };
        (ms.div_euclid(1000) + offset * 60).div_euclid(3600)
    }
}

fn clocks() -> impl Strategy<Value = Clock> {
    prop_oneof![
        Just((0, 0)),
        Just((330, 330)),
        Just((345, 345)),
        Just((-210, -150)),
        Just((60, 120)),
        Just((120, 60)),
        Just((-600, 840)),
    ]
    .prop_flat_map(|(offset_min, after_min)| {
        (0..3 * DAY_MS).prop_map(move |switch_ms| Clock { offset_min, switch_ms, after_min })
    })
}

/// One raw event: who, when (ms since the epoch), page, country, page view or not, interactive.
#[derive(Debug, Clone)]
struct Raw {
    person: u64,
    at_ms: i64,
    page: usize,
    country: usize,
    pageview: bool,
    interactive: bool,
}

fn raws() -> impl Strategy<Value = Vec<Raw>> {
    let raw = (0u64..4, 0..3 * DAY_MS, 0..3usize, 0..2usize, any::<bool>(), any::<bool>(), 0i64..4).prop_map(
        |(person, at_ms, page, country, pageview, interactive, near)| {
            // Cluster some events around UTC midnights, so visits cross them.
            let at_ms = if near == 0 { (at_ms / DAY_MS) * DAY_MS + (at_ms % 3_600_000) - 1_800_000 } else { at_ms };
            Raw { person, at_ms: at_ms.max(0), page, country, pageview, interactive }
        },
    );
    proptest::collection::vec(raw, 1..60).prop_map(|mut v| {
        v.sort_by_key(|r| r.at_ms);
        v
    })
}

/// The id of a person on a UTC day, as daily salts make it.
fn id(person: u64, utc_day: i64) -> u64 {
    person * 1000 + (utc_day + 10) as u64
}

/// A custom event's props: `plan`, by its page.
fn props_of(r: &Raw) -> Vec<(String, String)> {
    if r.pageview { vec![] } else { vec![("plan".into(), ["free", "pro", "pro"][r.page].into())] }
}

/// A custom event's revenue: none on the first page, euros (by person) on the second, dollars on
/// the third.
fn revenue_of(r: &Raw) -> Option<crate::wire::Revenue> {
    let (amount, currency) = match (r.pageview, r.page) {
        (true, _) | (false, 0) => return None,
        (false, 1) => (format!("{}.5", r.person + 1), "EUR"),
        _ => ("2.2".to_owned(), "USD"),
    };
    Some(crate::wire::Revenue { amount, currency: currency.into() })
}

fn event(r: &Raw, n: usize) -> Event {
    let day = r.at_ms.div_euclid(DAY_MS);
    Event {
        id: EventId(n as u128),
        received_ms: r.at_ms,
        site: "a.com".into(),
        name: if r.pageview { "pageview".into() } else { "Signup".into() },
        url: format!("https://a.com{}", PAGES[r.page]),
        referrer: None,
        props: props_of(r),
        revenue: revenue_of(r),
        interactive: r.interactive,
        user_agent: UA.into(),
        country: Some(COUNTRIES[r.country].into()),
        visitor: VisitorIds { current: id(r.person, day), previous: id(r.person, day - 1) },
        region: None,
        city: None,
        engagement: None,
        hash_mode: false,
    }
}

/// The production path: visits per visitor id (yesterday's visit moved to today's id), one
/// sightings state per id; `sink` gets each event's index, contribution and the sightings of
/// every id.
fn replay(raws: &[Raw], clock: Clock, mut sink: impl FnMut(usize, &Contribution<'_>, &mut HashMap<u64, Sightings>)) {
    let mut sessions: HashMap<u64, Session> = HashMap::new();
    let mut seen: HashMap<u64, Sightings> = HashMap::new();
    for (n, r) in raws.iter().enumerate() {
        let e = event(r, n);
        let facts = Facts::of(&e).expect("valid event");
        let open = sessions.remove(&e.visitor.current).or_else(|| sessions.remove(&e.visitor.previous));
        let bucket = clock.bucket(e.received_ms);
        let (next, change) = session::apply(open, &e, &facts, bucket);
        sink(n, &session::contribution(&next, &change, &e, &facts, bucket), &mut seen);
        sessions.insert(e.visitor.current, next);
    }
}

/// Adds one contribution as a flush does: its id's sightings, then its visit's start id's.
fn add(b: &mut Breakdown, c: &Contribution<'_>, r: &Raw, seen: &mut HashMap<u64, Sightings>) {
    b.add(c, seen.entry(c.visitor).or_default());
    b.add_props(c, &props_of(r), seen.entry(c.visitor).or_default());
    b.add_exit(c, seen.entry(c.start_visitor).or_default());
    if let Some(money) = revenue_of(r).as_ref().and_then(crate::money::Money::of) {
        b.add_revenue(c, &props_of(r), money);
    }
}

/// Revenue sums as four numbers: euro micro-units and events, dollar micro-units and events.
fn revenue_numbers(sums: &RevenueSums) -> [i64; 4] {
    let of = |code: &str| {
        let found = sums.0.iter().find(|(c, _)| c.as_str() == code);
        found.map_or([0, 0], |(_, s)| [i64::try_from(s.micros).expect("fits"), s.events])
    };
    let ([eur, eur_n], [usd, usd_n]) = (of("EUR"), of("USD"));
    [eur, eur_n, usd, usd_n]
}

/// All contributions in one breakdown.
fn rollup(raws: &[Raw], clock: Clock) -> Breakdown {
    let mut out = Breakdown::default();
    replay(raws, clock, |n, c, seen| add(&mut out, c, &raws[n], seen));
    out
}

/// What a query asks of one slot and value: a local period range at one grain.
#[derive(Debug, Clone, Copy)]
struct Ask {
    slot: Slot,
    value_at: usize,
    grain: Grain,
    first: i64,
    last: i64,
}

fn slot_value(slot: Slot, at: usize) -> String {
    match slot {
        Slot::Total => String::new(),
        Slot::Of(Dimension::Page | Dimension::ExitPage) => PAGES[at % 3].into(),
        Slot::Of(Dimension::ExitPageHostname) => "a.com".into(),
        Slot::Of(Dimension::Country) => COUNTRIES[at % 2].into(),
        Slot::Of(Dimension::Name) => ["pageview", "Signup"][at % 2].into(),
        Slot::Of(_) => String::new(),
        Slot::Props => crate::props::row_value("plan", ["free", "pro"][at % 2]),
    }
}

/// A visit as brute force sees it: a person's events with no gap over the timeout.
struct Visit {
    events: Vec<Raw>,
}

fn visits(raws: &[Raw]) -> Vec<Visit> {
    let mut by_person: BTreeMap<u64, Vec<Raw>> = BTreeMap::new();
    for r in raws {
        by_person.entry(r.person).or_default().push(r.clone());
    }
    let mut out = Vec::new();
    for events in by_person.into_values() {
        let mut current: Vec<Raw> = Vec::new();
        for r in events {
            if current.last().is_some_and(|last| r.at_ms - last.at_ms > SESSION_TIMEOUT_MS) {
                out.push(Visit { events: std::mem::take(&mut current) });
            }
            current.push(r);
        }
        out.push(Visit { events: current });
    }
    out
}

/// The brute-force answer: (visitors, events, pageviews, visits, bounces, duration ms), then
/// the revenue ([`revenue_numbers`]).
fn brute(raws: &[Raw], clock: Clock, ask: Ask) -> [i64; 10] {
    let period = |ms: i64| match ask.grain {
        Grain::Hour => clock.bucket(ms),
        Grain::Day => day_of(clock.bucket(ms)),
    };
    let in_range = |ms: i64| (ask.first..=ask.last).contains(&period(ms));
    let want = slot_value(ask.slot, ask.value_at);
    let mut ids = BTreeSet::new();
    let (mut events, mut pageviews, mut n_visits, mut bounces, mut duration) = (0, 0, 0, 0, 0);
    let mut revenue = RevenueSums::default();
    for v in visits(raws) {
        let entry = &v.events[0];
        if let Slot::Of(d) = ask.slot
            && d.is_exit()
        {
            // Exit rows: visits by where they left (the latest page view's page, else the first
            // event's), counted where they started, under the id they started with.
            let exit = v.events.iter().rev().find(|r| r.pageview).unwrap_or(entry);
            let value = if d == Dimension::ExitPage { PAGES[exit.page].to_owned() } else { "a.com".to_owned() };
            if in_range(entry.at_ms) && value == want {
                ids.insert(id(entry.person, entry.at_ms.div_euclid(DAY_MS)));
                n_visits += 1;
                let later_engaged = v.events[1..].iter().any(|r| r.pageview || r.interactive);
                bounces += i64::from(!later_engaged);
                duration += v.events.last().map_or(0, |l| l.at_ms) - entry.at_ms;
            }
            continue;
        }
        // The value an event has in this slot: its own for event dimensions, the entry's for
        // visit dimensions.
        let value = |r: &Raw| match ask.slot {
            Slot::Total => String::new(),
            Slot::Of(Dimension::Page) => PAGES[r.page].into(),
            Slot::Of(Dimension::Name) => (if r.pageview { "pageview" } else { "Signup" }).into(),
            Slot::Of(Dimension::Country) => COUNTRIES[entry.country].into(),
            Slot::Of(_) => String::new(),
            Slot::Props => props_of(r).first().map_or(String::new(), |(n, v)| crate::props::row_value(n, v)),
        };
        for r in &v.events {
            if in_range(r.at_ms) && value(r) == want {
                ids.insert(id(r.person, r.at_ms.div_euclid(DAY_MS)));
                events += 1;
                pageviews += i64::from(r.pageview);
                if let Some(money) = revenue_of(r) {
                    // Amounts have one decimal here.
                    let micros: i128 = money.amount.replace('.', "").parse::<i128>().expect("digits") * 100_000;
                    revenue.add(crate::money::Currency::parse(&money.currency).expect("code"), micros, 1);
                }
            }
        }
        if in_range(entry.at_ms) && value(entry) == want && ask.slot != Slot::Props {
            n_visits += 1;
            let later_engaged = v.events[1..].iter().any(|r| r.pageview || r.interactive);
            bounces += i64::from(!later_engaged);
            duration += v.events.last().map_or(0, |l| l.at_ms) - entry.at_ms;
        }
    }
    let [a, b, c, d] = revenue_numbers(&revenue);
    [ids.len() as i64, events, pageviews, n_visits, bounces, duration, a, b, c, d]
}

/// The rollups' answer to the same question.
fn answer(b: &Breakdown, ask: Ask) -> [i64; 10] {
    let want = slot_value(ask.slot, ask.value_at);
    let rows: BTreeMap<i64, Tallies> = b
        .rows()
        .filter(|(k, _)| k.grain == ask.grain && k.slot == ask.slot && k.value == want)
        .map(|(k, t)| (k.at, t.clone()))
        .collect();
    let mut sum = Tallies::default();
    rows.range(ask.first..=ask.last).for_each(|(_, t)| sum.add(t));
    // Hour asks are one hour; day asks sum each day row's share up to the last day.
    let visitors: i64 = rows.range(ask.first..=ask.last).map(|(at, t)| t.visitors_until(*at, ask.last)).sum();
    let c = sum.counters;
    let [a, b, e, d] = revenue_numbers(&sum.revenue);
    [visitors, c.events, c.pageviews, c.visits, c.bounces, c.duration_ms, a, b, e, d]
}

fn asks() -> impl Strategy<Value = Ask> {
    let slots = prop_oneof![
        Just(Slot::Total),
        Just(Slot::Of(Dimension::Page)),
        Just(Slot::Of(Dimension::Country)),
        Just(Slot::Of(Dimension::Name)),
        Just(Slot::Of(Dimension::ExitPage)),
        Just(Slot::Of(Dimension::ExitPageHostname)),
        Just(Slot::Props),
    ];
    (slots, 0..3usize, any::<bool>(), -1i64..5, 0i64..4).prop_map(|(slot, value_at, hourly, first, len)| {
        if hourly && slot.keeps_hours() {
            // One local hour (hour rows count visitors per hour).
            let hour = first * 24 + len * 7;
            Ask { slot, value_at, grain: Grain::Hour, first: hour, last: hour }
        } else {
            Ask { slot, value_at, grain: Grain::Day, first, last: first + len }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn rollups_equal_brute_force(raws in raws(), clock in clocks(), asks in proptest::collection::vec(asks(), 12)) {
        let b = rollup(&raws, clock);
        for ask in asks {
            prop_assert_eq!(answer(&b, ask), brute(&raws, clock, ask), "{:?} {:?}", ask, clock);
        }
    }

    #[test]
    fn hour_rows_carry_no_links_and_no_negative_counts(raws in raws(), clock in clocks()) {
        let b = rollup(&raws, clock);
        for (key, t) in b.rows() {
            prop_assert!(t.visitors >= 0 && t.counters.events >= 0 && t.counters.bounces >= 0);
            if key.grain == Grain::Hour {
                prop_assert!(t.links_1 == 0 && t.links_2 == 0);
                prop_assert!(key.slot.keeps_hours(), "{:?} has hour rows", key.slot);
            }
        }
    }

    #[test]
    fn merging_flushes_equals_one_flush(raws in raws(), clock in clocks(), cut in 0usize..60) {
        // Two flushes that share the sightings state add up to one.
        let whole = rollup(&raws, clock);
        let cut = cut.min(raws.len());
        let mut parts = [Breakdown::default(), Breakdown::default()];
        replay(&raws, clock, |n, c, seen| add(&mut parts[usize::from(n >= cut)], c, &raws[n], seen));
        let [mut a, b] = parts;
        a.merge(b);
        let nonzero = |b: Breakdown| -> BTreeMap<String, Tallies> {
            b.rows().filter(|(_, t)| !t.is_zero()).map(|(k, t)| (format!("{k:?}"), t.clone())).collect()
        };
        prop_assert_eq!(nonzero(a), nonzero(whole));
    }
}

#[test]
fn an_id_across_a_local_midnight_counts_once_over_both_days() {
    // Kolkata (+05:30): 18:00Z and 19:00Z of one UTC day fall on two local days.
    let clock = Clock { offset_min: 330, switch_ms: i64::MAX, after_min: 330 };
    let r = |at_ms| Raw { person: 1, at_ms, page: 0, country: 0, pageview: true, interactive: true };
    let raws = [r(18 * 3_600_000), r(19 * 3_600_000)];
    let b = rollup(&raws, clock);
    let one = |first, last| answer(&b, Ask { slot: Slot::Total, value_at: 0, grain: Grain::Day, first, last })[0];
    assert_eq!((one(0, 0), one(1, 1), one(0, 1)), (1, 1, 1));
}

#[test]
fn a_visit_across_a_local_midnight_is_seen_on_both_days_in_every_slot() {
    // Kolkata (+05:30): local midnight is 18:30Z, in the middle of this one visit.
    let clock = Clock { offset_min: 330, switch_ms: i64::MAX, after_min: 330 };
    let r = |at_ms| Raw { person: 1, at_ms, page: 0, country: 0, pageview: true, interactive: true };
    let raws = [r(18 * 3_600_000 + 1_500_000), r(18 * 3_600_000 + 1_700_000), r(18 * 3_600_000 + 1_900_000)];
    let b = rollup(&raws, clock);
    for slot in [Slot::Total, Slot::Of(Dimension::Country), Slot::Of(Dimension::Page)] {
        let ask = |first, last| Ask { slot, value_at: 0, grain: Grain::Day, first, last };
        for (first, last) in [(0, 0), (1, 1), (0, 1)] {
            assert_eq!(
                answer(&b, ask(first, last)),
                brute(&raws, clock, ask(first, last)),
                "{slot:?} {first}..={last}"
            );
        }
        assert_eq!(answer(&b, ask(1, 1))[0], 1, "{slot:?}: the visitor is seen on the second day too");
    }
}

#[test]
fn slot_and_grain_codes_are_pinned() {
    let codes: Vec<u8> = Slot::all().map(Slot::code).collect();
    assert_eq!(
        codes,
        (0..=18).chain([21, 22, 23, 19, 20]).collect::<Vec<u8>>(),
        "storage codes are part of the on-disk key format"
    );
    assert_eq!((Grain::Hour.code(), Grain::Day.code(), Slot::Props.code()), (0, 1, 100));
}
