// The oracle's model, shared by the embedded test (`tests/e2e/oracle.rs`) and the DynamoDB one
// (`tests/aws/oracle.rs`), which paste it in with `include!`: random traffic in five time zones,
// its NDJSON lines, random Stats API queries over the whole surface, and the brute force that
// answers them from the raw events, written independently of Tally's code; `run_queries` asks a
// server and compares.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const ZONES: [(&str, &str); 5] = [
    ("utc.test", "Etc/UTC"),
    ("kolkata.test", "Asia/Kolkata"),
    ("kathmandu.test", "Asia/Kathmandu"),
    ("stjohns.test", "America/St_Johns"),
    ("berlin.test", "Europe/Berlin"),
];
/// 2026-10-22T00:00Z: the range holds Berlin's (10-25) and St John's (11-01) DST ends.
const START_MS: i64 = 1_792_540_800_000;
const DAYS: i64 = 12;
/// The time dimensions a random query may group by (`time` picks hours or days here).
const TIMES: [&str; 5] = ["time:day", "time:hour", "time:week", "time:month", "time"];
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const PAGES: [&str; 4] = ["/", "/pricing", "/docs/start", "/docs/api"];
const COUNTRIES: [&str; 3] = ["DE", "IN", "CA"];
/// Per country, the places its people are in: (region as the import line sends it, as
/// `visit:region` reports it, city). Empty: the edge did not know it.
const PLACES: [[(&str, &str, &str); 3]; 3] = [
    [("BE", "DE-BE", "Berlin"), ("de-by", "DE-BY", "München"), ("", "", "")],
    [("MH", "IN-MH", "Mumbai"), ("IN-KA", "IN-KA", "Bengaluru"), ("", "", "")],
    [("NL", "CA-NL", "St. John's"), ("ON", "CA-ON", "Toronto"), ("QC", "CA-QC", "")],
];
/// (user agent, browser, OS, device) as Tally classifies them.
const AGENTS: [(&str, &str, &str, &str); 3] = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Chrome",
        "Windows",
        "Desktop",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "Safari",
        "iOS",
        "Mobile",
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox", "Linux", "Desktop"),
];
/// (referrer, source, `visit:referrer`, `visit:channel`).
const REFERRERS: [(&str, &str, &str, &str); 3] = [
    ("", "Direct / None", "Direct / None", "Direct"),
    ("https://www.google.com/", "Google", "google.com", "Organic Search"),
    ("https://news.ycombinator.com/item?id=1", "Hacker News", "news.ycombinator.com/item", "Organic Social"),
];
const DIMENSIONS: [&str; 17] = [
    "visit:channel",
    "visit:region",
    "visit:city",
    "event:props:plan",
    "event:page",
    "event:name",
    "visit:country",
    "visit:source",
    "visit:browser",
    "visit:os",
    "visit:device",
    "event:hostname",
    "visit:entry_page",
    "visit:entry_page_hostname",
    "visit:referrer",
    "visit:country_name",
    "visit:city_name",
];
/// The countries' names, as `visit:country_name` shows them.
const COUNTRY_NAMES: [&str; 3] = ["Germany", "India", "Canada"];
/// Dimensions only the rollups hold (visit metrics, unfiltered, one at a time).
const EXIT_DIMENSIONS: [&str; 2] = ["visit:exit_page", "visit:exit_page_hostname"];
const VISIT_METRICS: [&str; 6] =
    ["visitors", "visits", "bounce_rate", "visit_duration", "views_per_visit", "percentage"];
/// By exit page, also the exit rate.
const EXIT_PAGE_METRICS: [&str; 7] =
    ["visitors", "visits", "bounce_rate", "visit_duration", "views_per_visit", "percentage", "exit_rate"];
/// What an event dimension other than the page answers (as Plausible: no session metrics).
const EVENT_METRICS: [&str; 7] =
    ["visitors", "visits", "events", "pageviews", "total_revenue", "average_revenue", "percentage"];
/// Filtered by the page, everything but views per visit (as Plausible).
const ALL_BUT_VIEWS_PER_VISIT: [&str; 9] = [
    "visitors",
    "visits",
    "pageviews",
    "events",
    "bounce_rate",
    "visit_duration",
    "total_revenue",
    "average_revenue",
    "percentage",
];
/// What engagement events measured, asked by page or filtered by page.
const ENGAGEMENT_METRICS: [&str; 2] = ["scroll_depth", "time_on_page"];
/// Grouped by the page: every metric, and what engagement events measured.
static PAGE_METRICS: std::sync::LazyLock<Vec<&str>> =
    std::sync::LazyLock::new(|| [&ALL_METRICS[..], &ENGAGEMENT_METRICS].concat());
/// Filtered by the page: everything but views per visit, and what engagement events measured.
static PAGE_FILTERED_METRICS: std::sync::LazyLock<Vec<&str>> =
    std::sync::LazyLock::new(|| [&ALL_BUT_VIEWS_PER_VISIT[..], &ENGAGEMENT_METRICS].concat());
/// Every metric in the order `brute` computes them.
static BRUTE_ORDER: std::sync::LazyLock<Vec<&str>> =
    std::sync::LazyLock::new(|| [&ALL_METRICS[..], &["exit_rate"], &ENGAGEMENT_METRICS].concat());
/// What the oracle asks grouped by goal.
const GOAL_METRICS: [&str; 3] = ["visitors", "events", "conversion_rate"];
const ALL_METRICS: [&str; 10] = [
    "visitors",
    "visits",
    "pageviews",
    "events",
    "bounce_rate",
    "visit_duration",
    "views_per_visit",
    "total_revenue",
    "average_revenue",
    "percentage",
];

/// A small deterministic generator (SplitMix64): the test needs no seed from outside.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One raw event as the test made it.
#[derive(Debug, Clone)]
struct Raw {
    person: u64,
    at_ms: i64,
    page: &'static str,
    name: &'static str,
    interactive: bool,
    referrer: usize,
    country: usize,
    /// The person's place in [`PLACES`] of their country.
    place: usize,
    agent: usize,
    /// Revenue of a custom event: an amount in cents and its currency.
    revenue: Option<(i64, &'static str)>,
    /// An engagement event's scroll depth as sent (if sent) and engaged milliseconds.
    engagement: Option<(Option<u64>, u64)>,
}

/// Visits of people with a fixed agent and country; some start just before a local or a UTC
/// midnight so that they cross it.
fn traffic(rng: &mut Rng, zone: &TimeZone) -> Vec<Raw> {
    let mut out = Vec::new();
    for person in 0..30 {
        let (agent, country, place) = (rng.below(3) as usize, rng.below(3) as usize, rng.below(3) as usize);
        for _ in 0..1 + rng.below(4) {
            let day = START_MS + rng.below(DAYS as u64) as i64 * DAY_MS;
            let mut at = match rng.below(3) {
                0 => day + rng.below(DAY_MS as u64) as i64,
                // Shortly before UTC midnight.
                1 => day + DAY_MS - rng.below(40 * 60_000) as i64,
                // Shortly before local midnight.
                _ => {
                    let date = zone.to_datetime(Timestamp::from_millisecond(day).unwrap()).date();
                    let midnight =
                        zone.to_timestamp(date.tomorrow().unwrap().to_datetime(jiff::civil::Time::midnight()));
                    midnight.unwrap().as_millisecond() - rng.below(40 * 60_000) as i64
                }
            };
            let referrer = rng.below(3) as usize;
            for _ in 0..1 + rng.below(5) {
                let custom = rng.below(4) == 0;
                let revenue = match rng.below(3) {
                    _ if !custom => None,
                    0 => None,
                    1 => Some((rng.below(100_000) as i64, "EUR")),
                    _ => Some((rng.below(5_000) as i64, "USD")),
                };
                out.push(Raw {
                    person,
                    at_ms: at,
                    page: PAGES[rng.below(4) as usize],
                    name: if custom { "Signup" } else { "pageview" },
                    interactive: !custom || rng.below(2) == 0,
                    referrer,
                    country,
                    place,
                    agent,
                    revenue,
                    engagement: None,
                });
                // Now and then, engagement events on the page (Plausible's tracker sends them
                // when the page is hidden or left): a depth (sometimes over 100, sometimes none)
                // and an engaged time; some come so late that the visit has ended.
                if !custom && rng.below(2) == 0 {
                    let page = out.last().unwrap().page;
                    for _ in 0..1 + rng.below(2) {
                        let late = rng.below(12) == 0;
                        let after = if late { 29 * 60_000 + rng.below(4 * 60_000) } else { 500 + rng.below(20 * 60_000) };
                        let depth = match rng.below(6) {
                            0 => None,
                            1 => Some(100 + rng.below(60)),
                            _ => Some(rng.below(101)),
                        };
                        let engaged = if depth.is_none() { 1 + rng.below(300_000) } else { rng.below(300_000) };
                        out.push(Raw {
                            person,
                            at_ms: at + after as i64,
                            page,
                            name: "engagement",
                            interactive: false,
                            referrer,
                            country,
                            place,
                            agent,
                            revenue: None,
                            engagement: Some((depth, engaged)),
                        });
                    }
                }
                at += 1_000 + rng.below(25 * 60_000) as i64;
            }
        }
    }
    out.sort_by_key(|r| r.at_ms);
    out
}

fn ndjson(site: &str, events: &[Raw]) -> String {
    let mut out = String::new();
    for (i, r) in events.iter().enumerate() {
        let mut line = json!({
            "n": r.name, "u": format!("https://{site}{}", r.page), "d": site, "i": r.interactive,
            "timestamp": r.at_ms, "user_agent": AGENTS[r.agent].0, "visitor": format!("person-{}", r.person),
            "country": COUNTRIES[r.country], "id": format!("{site}-{i}"),
        });
        if r.name == "Signup" {
            line["p"] = json!({"plan": "pro"});
        }
        let (region, _, city) = PLACES[r.country][r.place];
        if !region.is_empty() {
            line["region"] = json!(region);
        }
        if !city.is_empty() {
            line["city"] = json!(city);
        }
        if let Some((depth, engaged)) = r.engagement {
            // Depths sent as numbers or numeric strings, as trackers and proxies do.
            if let Some(depth) = depth {
                line["sd"] = if i % 3 == 0 { json!(depth.to_string()) } else { json!(depth) };
            }
            line["e"] = json!(engaged);
        }
        if let Some((cents, currency)) = r.revenue {
            // Sent as a string or as a JSON number, as trackers do.
            let amount = format!("{}.{:02}", cents / 100, cents % 100);
            let amount = if i % 2 == 0 { json!(amount) } else { json!(amount.parse::<f64>().unwrap()) };
            line["$"] = json!({"amount": amount, "currency": currency});
        }
        // Only a visit's first event carries its referrer; later ones come from the site itself.
        line["r"] = json!(REFERRERS[r.referrer].0);
        out += &line.to_string();
        out.push('\n');
    }
    out
}

/// A visit as the brute force sees it: one person's events with no gap over 30 minutes.
fn visits(events: &[Raw]) -> Vec<Vec<Raw>> {
    visits_with_engagement(events).into_iter().map(|(visit, _)| visit).collect()
}

/// The visits, each with its engagement events: those that came at most 30 minutes after the
/// person's latest other event, which they belong to (they change no visit: no bounce ended, no
/// duration, no new visit); the others are dropped.
fn visits_with_engagement(events: &[Raw]) -> Vec<(Vec<Raw>, Vec<Raw>)> {
    let mut by_person: BTreeMap<u64, Vec<Raw>> = BTreeMap::new();
    for r in events {
        by_person.entry(r.person).or_default().push(r.clone());
    }
    let mut out = Vec::new();
    for list in by_person.into_values() {
        let mut current: (Vec<Raw>, Vec<Raw>) = (Vec::new(), Vec::new());
        for r in list {
            let open = current.0.last().is_some_and(|l| r.at_ms - l.at_ms <= 30 * 60_000);
            if r.engagement.is_some() {
                if open {
                    current.1.push(r);
                }
                continue;
            }
            if !open && !current.0.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.0.push(r);
        }
        if !current.0.is_empty() {
            out.push(current);
        }
    }
    out
}

/// The value of a dimension for an event of a visit whose first event is `entry`.
fn value(dimension: &str, site: &str, event: &Raw, entry: &Raw) -> String {
    match dimension {
        "event:page" => event.page.into(),
        "event:name" => event.name.into(),
        "event:hostname" => site.into(),
        "visit:country" => COUNTRIES[entry.country].into(),
        "visit:region" => PLACES[entry.country][entry.place].1.into(),
        "visit:city" | "visit:city_name" => PLACES[entry.country][entry.place].2.into(),
        "visit:country_name" => COUNTRY_NAMES[entry.country].into(),
        "visit:source" => REFERRERS[entry.referrer].1.into(),
        "visit:browser" => AGENTS[entry.agent].1.into(),
        "visit:os" => AGENTS[entry.agent].2.into(),
        "visit:device" => AGENTS[entry.agent].3.into(),
        "visit:entry_page" => entry.page.into(),
        "visit:entry_page_hostname" => site.into(),
        "visit:referrer" => REFERRERS[entry.referrer].2.into(),
        "visit:channel" => REFERRERS[entry.referrer].3.into(),
        // Only custom events carry it (`brute` leaves out events without it when grouping).
        "event:props:plan" => (if event.name == "Signup" { "pro" } else { "(none)" }).into(),
        // A visit's, not an event's: `brute` fills them in.
        "visit:exit_page" | "visit:exit_page_hostname" => String::new(),
        other => panic!("no brute force for {other}"),
    }
}

/// A query as both sides see it.
#[derive(Debug, Clone)]
struct Ask {
    first: String,
    last: String,
    groupings: Vec<String>,
    filters: Vec<Cond>,
    /// Compare with the previous period (asked only without a time dimension).
    compare: bool,
    /// Which of the shape's metrics to ask, as a bit mask over them (0: all of them).
    subset: u16,
    /// A range to the second instead of the days `first..=last`: its first and last Unix
    /// second, both included (asked as two date-times).
    window: Option<(i64, i64)>,
}

impl Ask {
    /// Whether an event at `ms` is in the range: its second within the window, else its local
    /// day within the days.
    fn holds_time(&self, zone: &TimeZone, ms: i64) -> bool {
        match self.window {
            Some((from, to)) => (from..=to).contains(&ms.div_euclid(1000)),
            None => {
                let day = zone.to_datetime(Timestamp::from_millisecond(ms).unwrap()).date().to_string();
                self.first <= day && day <= self.last
            }
        }
    }
}

/// A filter as the test writes it: a comparison, or an `or` / `not` of them.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Leaf {
        op: &'static str,
        dim: &'static str,
        values: Vec<String>,
        any_case: bool,
    },
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// `has_done` (or `has_not_done`): the visit holds (no) event in the range that passes it.
    HasDone(Box<Cond>, bool),
    /// `["is" | "is_not", "event:goal", [goal]]`: the event converts (or does not convert) a goal.
    Goal(&'static str, bool),
}

/// The goals every site saves after its traffic was imported: (name, `tally goal add` flag, value;
/// `--scroll` stands for `--page VALUE --scroll 50`).
const GOALS: [(&str, &str, &str); 5] = [
    ("Signup", "--event", "Signup"),
    ("Visit /docs/*", "--page", "/docs/*"),
    ("Visit /pricing", "--page", "/pricing"),
    ("Visit /", "--page", "/"),
    ("Scroll 50% on /docs/*", "--scroll", "/docs/*"),
];

/// The scroll goals among `conds` that an event must convert (not negated): the engagement
/// events they convert count as events.
fn scroll_goals(conds: &[Cond]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for cond in conds {
        match cond {
            Cond::Goal(goal, false) if goal.starts_with("Scroll") => out.push(*goal),
            Cond::Or(any) => out.extend(scroll_goals(any)),
            Cond::Not(inner) | Cond::HasDone(inner, _) => out.extend(scroll_goals(std::slice::from_ref(inner))),
            _ => {}
        }
    }
    out
}

/// Whether `event` converts the goal named `goal` (as the brute force reads the goals: a custom
/// event by name; page views of a path with one segment after `/docs/`).
fn converts(goal: &str, event: &Raw) -> bool {
    match goal {
        "Signup" => event.name == "Signup",
        "Visit /pricing" => event.name == "pageview" && event.page == "/pricing",
        "Visit /" => event.name == "pageview" && event.page == "/",
        // An engagement event on a page of one segment after `/docs/` that reported a scroll
        // depth of at least 50 (over 100 counts as 100).
        "Scroll 50% on /docs/*" => {
            event.engagement.is_some_and(|(depth, _)| depth.is_some_and(|d| d.min(100) >= 50))
                && event.page.strip_prefix("/docs/").is_some_and(|rest| !rest.contains('/'))
        }
        _ => event.name == "pageview" && event.page.strip_prefix("/docs/").is_some_and(|rest| !rest.contains('/')),
    }
}

/// The brute force of a funnel of `steps` (goal names) over the range and filters of `ask`: every
/// visitor id (a person in a UTC day) with an event in the range that passes the filters, and how
/// many of them reached each step: a chain of events converting the steps in order (by second;
/// within one second, in step order) whose last is at most 24 hours after its first. Returns
/// (all visitors, visitors per step).
fn brute_funnel(site: &str, zone: &TimeZone, events: &[Raw], ask: &Ask, steps: &[&str]) -> (u64, Vec<u64>) {
    let in_range = |ms: i64| ask.holds_time(zone, ms);
    let mut scrolls = scroll_goals(&ask.filters);
    scrolls.extend(steps.iter().filter(|s| s.starts_with("Scroll")));
    let mut hits: BTreeMap<(u64, i64), Vec<(i64, usize)>> = BTreeMap::new();
    for (visit, engagements) in visits_with_engagement(events) {
        let counted = engagements.iter().filter(|e| scrolls.iter().any(|g| converts(g, e)));
        let entry = &visit[0];
        let done = |inner: &Cond| {
            visit
                .iter()
                .any(|e| in_range(e.at_ms) && inner.holds(&Seen { site, event: e, entry, done: &|_: &Cond| false }))
        };
        for e in visit.iter().chain(counted).filter(|e| in_range(e.at_ms)) {
            if !ask.passes(&Seen { site, event: e, entry, done: &done }) {
                continue;
            }
            let mine = hits.entry((e.person, e.at_ms.div_euclid(DAY_MS))).or_default();
            for (i, step) in steps.iter().enumerate() {
                if converts(step, e) {
                    mine.push((e.at_ms.div_euclid(1000), i));
                }
            }
        }
    }
    /// The deepest step a chain from `step` on reaches, after second `after`, within the
    /// window of a chain that started at `start`: every choice of event tried.
    fn deepest(hits: &[(i64, usize)], step: usize, after: i64, start: Option<i64>, steps: usize) -> usize {
        let mut best = step;
        for &(t, s) in hits {
            if best == steps {
                break;
            }
            if s == step && t >= after && start.is_none_or(|first| t - first <= 86_400) {
                best = best.max(deepest(hits, step + 1, t, Some(start.unwrap_or(t)), steps));
            }
        }
        best
    }
    let mut reached = vec![0u64; steps.len()];
    for list in hits.values() {
        for r in reached.iter_mut().take(deepest(list, 0, i64::MIN, None, steps.len())) {
            *r += 1;
        }
    }
    (hits.len() as u64, reached)
}

/// What a condition sees of an event: the site, the event, its visit's first event, and whether
/// its visit holds an event in the range that passes a `has_done`'s condition.
struct Seen<'a> {
    site: &'a str,
    event: &'a Raw,
    entry: &'a Raw,
    done: &'a dyn Fn(&Cond) -> bool,
}

impl Cond {
    fn json(&self) -> Value {
        match self {
            Cond::Leaf { op, dim, values, any_case: false } => json!([op, dim, values]),
            Cond::Leaf { op, dim, values, any_case: true } => json!([op, dim, values, {"case_sensitive": false}]),
            Cond::Or(any) => json!(["or", any.iter().map(Cond::json).collect::<Vec<_>>()]),
            Cond::Not(inner) => json!(["not", inner.json()]),
            Cond::HasDone(inner, false) => json!(["has_done", inner.json()]),
            Cond::HasDone(inner, true) => json!(["has_not_done", inner.json()]),
            Cond::Goal(goal, negated) => json!([if *negated { "is_not" } else { "is" }, "event:goal", [goal]]),
        }
    }

    fn dims(&self) -> Vec<&'static str> {
        match self {
            Cond::Leaf { dim, .. } => vec![*dim],
            Cond::Or(any) => any.iter().flat_map(Cond::dims).collect(),
            Cond::Not(inner) | Cond::HasDone(inner, _) => inner.dims(),
            Cond::Goal(..) => vec!["event:goal"],
        }
    }

    /// Whether it compares an event's own field outside a `has_done` (then a visit counts when
    /// one of its events passes).
    fn reads_events(&self) -> bool {
        match self {
            Cond::Leaf { dim, .. } => dim.starts_with("event:"),
            Cond::Or(any) => any.iter().any(Cond::reads_events),
            Cond::Not(inner) => inner.reads_events(),
            Cond::HasDone(..) => false,
            Cond::Goal(..) => true,
        }
    }

    /// The brute force: Plausible's meaning of each operator, on the event's (or its visit's)
    /// value; without case, both sides lower-cased.
    fn holds(&self, seen: &Seen<'_>) -> bool {
        let (site, event, entry) = (seen.site, seen.event, seen.entry);
        match self {
            Cond::Leaf { op, dim, values, any_case } => {
                let fold = |s: &str| if *any_case { s.to_lowercase() } else { s.to_owned() };
                let v = fold(&value(dim, site, event, entry));
                let base = op.trim_end_matches("_not");
                let hit = values.iter().any(|needle| match base {
                    "is" => fold(needle) == v || (v.is_empty() && fold(needle) == "(not set)"),
                    "contains" => v.contains(&fold(needle)),
                    _ => regex::RegexBuilder::new(needle).case_insensitive(*any_case).build().unwrap().is_match(&v),
                });
                hit != op.ends_with("_not")
            }
            Cond::Or(any) => any.iter().any(|c| c.holds(seen)),
            Cond::Not(inner) => !inner.holds(seen),
            Cond::HasDone(inner, negated) => (seen.done)(inner) != *negated,
            Cond::Goal(goal, negated) => converts(goal, event) != *negated,
        }
    }
}

impl Ask {
    fn by_exit(&self) -> bool {
        self.groupings.iter().any(|g| EXIT_DIMENSIONS.contains(&g.as_str()))
    }

    fn by_prop(&self) -> bool {
        self.groupings.iter().any(|g| g.starts_with("event:props:"))
    }

    /// The metrics asked: the shape's, or the subset of them.
    fn metrics(&self) -> Vec<&'static str> {
        let all = self.shape_metrics();
        all.iter().enumerate().filter(|(i, _)| self.subset == 0 || self.subset & (1 << i) != 0).map(|(_, m)| *m).collect()
    }

    /// Every metric the query's shape allows (as Plausible allows them).
    fn shape_metrics(&self) -> &'static [&'static str] {
        if self.groupings.iter().any(|g| g == "event:goal") {
            &GOAL_METRICS
        } else if self.groupings.iter().any(|g| g == "visit:exit_page") {
            &EXIT_PAGE_METRICS
        } else if self.by_exit() {
            &VISIT_METRICS
        } else if self.groupings.iter().any(|g| g.starts_with("event:") && g != "event:page") {
            &EVENT_METRICS
        } else if self.filters.iter().flat_map(Cond::dims).any(|d| d == "event:page") {
            // A page inside a `has_done` is not the page the engagement metrics need.
            if self.filters.iter().any(|f| matches!(f, Cond::Leaf { dim: "event:page", .. })) {
                PAGE_FILTERED_METRICS.as_slice()
            } else {
                &ALL_BUT_VIEWS_PER_VISIT
            }
        } else if self.groupings.iter().any(|g| g == "event:page") {
            PAGE_METRICS.as_slice()
        } else {
            &ALL_METRICS
        }
    }

    fn body(&self, site: &str) -> Value {
        let filters: Vec<Value> = self.filters.iter().map(Cond::json).collect();
        let metrics = self.metrics();
        let mut body = json!({
            "site_id": site,
            "metrics": metrics,
            "date_range": [self.first, self.last], "dimensions": self.groupings, "filters": filters,
            "pagination": {"limit": 10000},
        });
        if let Some((from, to)) = self.window {
            let at = |s: i64| Timestamp::from_second(s).unwrap().to_string();
            body["date_range"] = json!([at(from), at(to)]);
        }
        if self.compare {
            body["include"] = json!({"comparisons": {"mode": "previous_period"}});
        }
        body
    }

    /// The same question over the days just before, as many.
    fn previous(&self) -> Ask {
        let (first, last) =
            (self.first.parse::<jiff::civil::Date>().unwrap(), self.last.parse::<jiff::civil::Date>().unwrap());
        let days = (last - first).get_days() + 1;
        let shift = |d: jiff::civil::Date| (d - jiff::Span::new().days(days)).to_string();
        Ask { first: shift(first), last: shift(last), compare: false, ..self.clone() }
    }

    fn passes(&self, seen: &Seen<'_>) -> bool {
        self.filters.iter().all(|c| c.holds(seen))
    }
}

#[derive(Default)]
struct Group {
    ids: BTreeSet<(u64, i64)>,
    /// The visits (person, start) of the group's events, where visits are counted by events.
    visit_ids: BTreeSet<(u64, i64)>,
    events: i64,
    pageviews: i64,
    visits: i64,
    bounces: i64,
    duration_ms: i64,
    visit_pageviews: i64,
    /// Currency → (cents, events).
    revenue: BTreeMap<&'static str, (i64, i64)>,
    /// Per visit (person, start) with engagement events in the group: their engaged time and
    /// deepest scroll (capped at 100; `None`: none sent).
    engaged: BTreeMap<(u64, i64), (u64, Option<u64>)>,
}

/// A revenue metric as the API defines it: `null` without revenue, else the amount per currency
/// (total, or per event rounded half away from zero to micro-units), with `value` and `currency`
/// set when there is one currency.
fn revenue_metric(revenue: &BTreeMap<&'static str, (i64, i64)>, average: bool) -> Value {
    if revenue.is_empty() {
        return Value::Null;
    }
    let amount = |(cents, n): (i64, i64)| {
        let micros = i128::from(cents) * 10_000;
        let micros = if average { (2 * micros + i128::from(n)) / (2 * i128::from(n)) } else { micros };
        micros as f64 / 1e6
    };
    let by: serde_json::Map<String, Value> =
        revenue.iter().map(|(c, s)| ((*c).to_owned(), json!(amount(*s)))).collect();
    if revenue.len() == 1 {
        let (c, s) = revenue.iter().next().unwrap();
        json!({"value": amount(*s), "currency": c, "by_currency": by})
    } else {
        json!({"value": null, "currency": null, "by_currency": by})
    }
}

/// The brute-force answer: group values → the seven metrics, as the API defines them.
fn brute(site: &str, zone: &TimeZone, events: &[Raw], ask: &Ask) -> BTreeMap<Vec<String>, Vec<Value>> {
    if ask.groupings == ["event:goal"] {
        // A row per goal with conversions: its converting visitors and events under the filters,
        // and those visitors as a share of every visitor under the filters other than goals.
        let others: Vec<Cond> = ask.filters.iter().filter(|f| !f.dims().contains(&"event:goal")).cloned().collect();
        let everyone = Ask { groupings: Vec::new(), filters: others, ..ask.clone() };
        let total = brute(site, zone, events, &everyone)[&Vec::new()][0].as_u64().unwrap();
        let mut out = BTreeMap::new();
        for (goal, _, _) in GOALS {
            let mut filters = ask.filters.clone();
            filters.push(Cond::Goal(goal, false));
            let one = Ask { groupings: Vec::new(), filters, ..ask.clone() };
            let row = &brute(site, zone, events, &one)[&Vec::new()];
            let at = |metric: &str| one.metrics().iter().position(|m| *m == metric).unwrap();
            let (visitors, events) = (row[at("visitors")].as_u64().unwrap(), row[at("events")].as_u64().unwrap());
            if visitors > 0 || events > 0 {
                let rate =
                    if total == 0 { 0.0 } else { (visitors as f64 * 100.0 * 100.0 / total as f64).round() / 100.0 };
                out.insert(vec![goal.to_owned()], vec![json!(visitors), json!(events), json!(rate)]);
            }
        }
        return out;
    }
    let local = |ms: i64| zone.to_datetime(Timestamp::from_millisecond(ms).unwrap());
    let in_range = |ms: i64| ask.holds_time(zone, ms);
    // `time` is hours for ranges of up to two days (48 hours), else days (the oracle's ranges
    // are at most five days, never the 41 that make weeks).
    let days_asked = ask.last.parse::<jiff::civil::Date>().unwrap() - ask.first.parse::<jiff::civil::Date>().unwrap();
    let auto = if days_asked.get_days() < 2 { "time:hour" } else { "time:day" };
    let key = |event: &Raw, entry: &Raw| -> Vec<String> {
        ask.groupings
            .iter()
            .map(|g| match if g == "time" { auto } else { g.as_str() } {
                "time:day" => local(event.at_ms).date().to_string(),
                "time:hour" => local(event.at_ms).strftime("%Y-%m-%d %H:00:00").to_string(),
                "time:week" => {
                    // The Monday of the week, unless the range starts later in it.
                    let date = local(event.at_ms).date();
                    let monday = date - jiff::Span::new().days(date.weekday().to_monday_zero_offset());
                    monday.to_string().max(ask.first.clone())
                }
                "time:month" => local(event.at_ms).date().first_of_month().to_string(),
                // An empty value shows as `(not set)`, as Plausible shows it.
                d => Some(value(d, site, event, entry)).filter(|v| !v.is_empty()).unwrap_or_else(|| "(not set)".into()),
            })
            .collect()
    };
    // Grouped or filtered by an event's own field, `visits` counts the visits with events in the
    // group, as Plausible counts them.
    let reads_events = ask.filters.iter().any(Cond::reads_events);
    let by_events = reads_events || ask.groupings.iter().any(|g| g.starts_with("event:"));
    let asks_engagement = ask.metrics().iter().any(|m| ["scroll_depth", "time_on_page"].contains(m));
    let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    for (visit, engagements) in visits_with_engagement(events) {
        let entry = &visit[0];
        if ask.by_exit() {
            // A visit by where it left (the page of its latest page view, else of its first
            // event), counted where it started, under the id it started with.
            let exit = visit.iter().rev().find(|e| e.name == "pageview").unwrap_or(entry);
            if in_range(entry.at_ms) {
                let mut k = key(entry, entry);
                for (i, g) in ask.groupings.iter().enumerate() {
                    match g.as_str() {
                        "visit:exit_page" => k[i] = exit.page.into(),
                        "visit:exit_page_hostname" => k[i] = site.into(),
                        _ => {}
                    }
                }
                let g = groups.entry(k).or_default();
                g.ids.insert((entry.person, entry.at_ms.div_euclid(DAY_MS)));
                g.visits += 1;
                let engaged = visit[1..].iter().any(|e| e.name == "pageview" || e.interactive);
                g.bounces += i64::from(!engaged);
                g.duration_ms += visit.last().unwrap().at_ms - entry.at_ms;
                g.visit_pageviews += visit.iter().filter(|e| e.name == "pageview").count() as i64;
            }
            continue;
        }
        let has_props = |e: &Raw| !ask.groupings.iter().any(|g| g.starts_with("event:props:")) || e.name == "Signup";
        // `has_done`: whether the visit holds an event in the range that passes the condition.
        let done = |inner: &Cond| {
            visit
                .iter()
                .any(|e| in_range(e.at_ms) && inner.holds(&Seen { site, event: e, entry, done: &|_: &Cond| false }))
        };
        let done: &dyn Fn(&Cond) -> bool = &done;
        let seen = |event| Seen { site, event, entry, done };
        // Engagement events count as events where a scroll goal of the filters converts them.
        let scrolls = scroll_goals(&ask.filters);
        let counted: Vec<&Raw> = engagements.iter().filter(|e| scrolls.iter().any(|g| converts(g, e))).collect();
        // Filtered by an event's own field, a visit counts when one of its events in the range
        // passes the filters; else when it passes them itself.
        let visit_in = if reads_events {
            visit.iter().chain(counted.iter().copied()).any(|e| in_range(e.at_ms) && ask.passes(&seen(e)))
        } else {
            ask.passes(&seen(entry))
        };
        for e in visit.iter().chain(counted.iter().copied()) {
            if in_range(e.at_ms) && ask.passes(&seen(e)) && has_props(e) {
                let g = groups.entry(key(e, entry)).or_default();
                g.ids.insert((e.person, e.at_ms.div_euclid(DAY_MS)));
                g.visit_ids.insert((entry.person, entry.at_ms));
                g.events += 1;
                g.pageviews += i64::from(e.name == "pageview");
                if let Some((cents, currency)) = e.revenue {
                    let sum = g.revenue.entry(currency).or_default();
                    (sum.0, sum.1) = (sum.0 + cents, sum.1 + 1);
                }
            }
        }
        // Engagement events, filtered as events are, measure their visit on their page.
        for e in engagements.iter().filter(|_| asks_engagement) {
            if in_range(e.at_ms) && ask.passes(&seen(e)) && has_props(e) {
                let (depth, engaged) = e.engagement.unwrap();
                let g = groups.entry(key(e, entry)).or_default();
                let one = g.engaged.entry((entry.person, entry.at_ms)).or_default();
                one.0 += engaged;
                one.1 = one.1.max(depth.map(|d| d.min(100)));
            }
        }
        // Props are on events: their queries ask no visit metrics. Counting visits by their
        // events, the visit itself adds only the counters of bounce rate, duration and views
        // per visit (in the hour it began): a group it alone reaches is no row without them.
        let asks_visit_counters =
            ask.metrics().iter().any(|m| ["bounce_rate", "visit_duration", "views_per_visit"].contains(m));
        if !ask.by_prop() && in_range(entry.at_ms) && visit_in && (!by_events || asks_visit_counters) {
            let g = groups.entry(key(entry, entry)).or_default();
            g.visits += 1;
            let engaged = visit[1..].iter().any(|e| e.name == "pageview" || e.interactive);
            g.bounces += i64::from(!engaged);
            g.duration_ms += visit.last().unwrap().at_ms - entry.at_ms;
            g.visit_pageviews += visit.iter().filter(|e| e.name == "pageview").count() as i64;
        }
    }
    if groups.is_empty() && ask.groupings.is_empty() {
        groups.insert(Vec::new(), Group::default());
    }
    // `percentage`: a group's visitors over those of the same range and filters, ungrouped.
    let total = if ask.groupings.is_empty() {
        groups.values().next().map_or(0, |g| g.ids.len())
    } else {
        let ungrouped = Ask { groupings: Vec::new(), subset: 0, ..ask.clone() };
        let row = brute(site, zone, events, &ungrouped).remove(&Vec::new()).unwrap();
        row[0].as_u64().unwrap() as usize
    };
    // `exit_rate`: a group's exits over the page views of its page in the same period.
    let mut views: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    if ask.by_exit() {
        for visit in visits(events) {
            for e in visit.iter().filter(|e| e.name == "pageview" && in_range(e.at_ms)) {
                let mut k = key(e, &visit[0]);
                for (i, g) in ask.groupings.iter().enumerate() {
                    match g.as_str() {
                        "visit:exit_page" => k[i] = e.page.into(),
                        "visit:exit_page_hostname" => k[i] = site.into(),
                        _ => {}
                    }
                }
                *views.entry(k).or_default() += 1;
            }
        }
    }
    groups
        .into_iter()
        .map(|(k, g)| {
            let page_views = views.get(&k).copied().unwrap_or(0);
            let per_visit = |n: i64| if g.visits > 0 { n as f64 / g.visits as f64 } else { 0.0 };
            let all = [
                json!(g.ids.len()),
                json!(if by_events { g.visit_ids.len() as i64 } else { g.visits }),
                json!(g.pageviews),
                json!(g.events),
                json!((per_visit(g.bounces) * 100.0).round() as i64),
                json!((per_visit(g.duration_ms) / 1000.0).round() as i64),
                json!((per_visit(g.visit_pageviews) * 100.0).round() / 100.0),
                revenue_metric(&g.revenue, false),
                revenue_metric(&g.revenue, true),
                json!(if total == 0 { 0.0 } else { (g.ids.len() as f64 * 1000.0 / total as f64).round() / 10.0 }),
                if page_views == 0 {
                    Value::Null
                } else {
                    json!((g.visits as f64 * 1000.0 / page_views as f64).round() / 10.0)
                },
                // Per visit the deepest scroll, averaged over the visits that sent one; the
                // engaged time per visit that sent any (rounded half to even, as ClickHouse).
                {
                    let depths: Vec<u64> = g.engaged.values().filter_map(|(_, d)| *d).collect();
                    if depths.is_empty() {
                        Value::Null
                    } else {
                        json!((depths.iter().sum::<u64>() as f64 / depths.len() as f64).round_ties_even() as i64)
                    }
                },
                if g.engaged.is_empty() {
                    Value::Null
                } else {
                    let ms: u64 = g.engaged.values().map(|(ms, _)| ms).sum();
                    json!((ms as f64 / 1000.0 / g.engaged.len() as f64).round_ties_even() as i64)
                },
            ];
            let at = |m: &str| BRUTE_ORDER.iter().position(|a| *a == m).unwrap();
            let metrics = ask.metrics().iter().map(|m| all[at(m)].clone()).collect();
            (k, metrics)
        })
        .collect()
}

fn random_ask(rng: &mut Rng, days: &[String]) -> Ask {
    let a = rng.below(days.len() as u64) as usize;
    let b = (a + rng.below(5) as usize).min(days.len() - 1);
    let dim = |rng: &mut Rng| (*rng.pick(&DIMENSIONS)).to_owned();
    if rng.below(8) == 0 {
        // Exit pages: rollups only, unfiltered, alone or by time.
        let mut groupings = vec![(*rng.pick(&EXIT_DIMENSIONS)).to_owned()];
        if rng.below(2) == 0 {
            groupings.push((*rng.pick(&TIMES)).to_owned());
        }
        return Ask {
            first: days[a].clone(),
            last: days[b].clone(),
            groupings,
            filters: Vec::new(),
            compare: false,
            subset: 0,
            window: None,
        };
    }
    let groupings = match rng.below(6) {
        0 => vec![],
        1 => vec![(*rng.pick(&TIMES)).to_owned()],
        2 => vec!["time:hour".to_owned()],
        3 => vec![dim(rng)],
        4 => vec![dim(rng), (*rng.pick(&TIMES)).to_owned()],
        _ => {
            let first = dim(rng);
            let second = DIMENSIONS.iter().find(|d| **d != first && rng.below(3) == 0).unwrap_or(&"visit:country");
            if *second == first { vec![first] } else { vec![first, (*second).to_owned()] }
        }
    };
    let mut filters = Vec::new();
    for _ in 0..[0, 0, 1, 2][rng.below(4) as usize] {
        let filter = match rng.below(6) {
            0 => Cond::Or(vec![random_leaf(rng), random_leaf(rng)]),
            1 => Cond::Not(Box::new(random_leaf(rng))),
            2 => {
                let (dim, values) = if rng.below(2) == 0 {
                    ("event:page", &PAGES[..])
                } else {
                    ("event:name", &["Signup", "pageview"][..])
                };
                let inner = Cond::Leaf { op: "is", dim, values: vec![(*rng.pick(values)).to_owned()], any_case: false };
                Cond::HasDone(Box::new(inner), rng.below(2) == 0)
            }
            _ => random_leaf(rng),
        };
        let filter = if rng.below(10) == 0 {
            // A scroll goal cannot be negated (a 400).
            let goal = rng.pick(&GOALS).0;
            Cond::Goal(goal, rng.below(3) == 0 && !goal.starts_with("Scroll"))
        } else {
            filter
        };
        // The same filter twice is a 400 (a query limit), not a question.
        if !filters.contains(&filter) {
            filters.push(filter);
        }
    }
    // Grouped by goal, now and then (goals were saved after the traffic).
    let groupings = if rng.below(10) == 0 { vec!["event:goal".to_owned()] } else { groupings };
    if groupings == ["event:goal"] {
        // Props answer event metrics only, not conversion rates.
        filters.retain(|f: &Cond| !f.dims().iter().any(|d| d.starts_with("event:props:")));
    }
    let compare = !groupings.iter().any(|g| g.starts_with("time") || g == "event:goal") && rng.below(4) == 0;
    let mut ask = Ask { first: days[a].clone(), last: days[b].clone(), groupings, filters, compare, subset: 0, window: None };
    // Now and then only some of the metrics: what a query counts must not depend on what else it asks.
    if ask.groupings != ["event:goal"] && rng.below(3) == 0 {
        let all = (1u64 << ask.shape_metrics().len()) - 1;
        ask.subset = u16::try_from(1 + rng.below(all)).unwrap();
    }
    ask
}

/// The brute force of `include.comparisons` (previous period) for the rows `want`: each group's
/// metrics in the period before (zeros where it has none) and the change, as Plausible counts it.
fn brute_comparison(
    site: &str,
    zone: &TimeZone,
    events: &[Raw],
    ask: &Ask,
    want: &BTreeMap<Vec<String>, Vec<Value>>,
) -> BTreeMap<Vec<String>, Value> {
    let before = brute(site, zone, events, &ask.previous());
    want.iter()
        .map(|(k, now)| {
            let zero = |m: &str| match m {
                "total_revenue" | "average_revenue" | "scroll_depth" | "time_on_page" => Value::Null,
                "views_per_visit" | "percentage" => json!(0.0),
                _ => json!(0),
            };
            let old: Vec<Value> =
                before.get(k).cloned().unwrap_or_else(|| ask.metrics().iter().map(|m| zero(m)).collect());
            let number = |v: &Value| if v.is_object() { v["value"].as_f64() } else { v.as_f64() };
            let change: Vec<Value> = ask
                .metrics()
                .iter()
                .zip(old.iter().zip(now))
                .map(|(m, (o, n))| match (number(o), number(n)) {
                    (Some(o), Some(n)) if *m == "bounce_rate" => {
                        if o > 0.0 {
                            json!((n - o).round() as i64)
                        } else {
                            Value::Null
                        }
                    }
                    (Some(0.0), Some(n)) => json!(if n > 0.0 { 100 } else { 0 }),
                    (Some(o), Some(n)) => json!(((n - o) / o * 100.0).round() as i64),
                    _ => Value::Null,
                })
                .collect();
            (k.clone(), json!({"dimensions": k, "metrics": old, "change": change}))
        })
        .collect()
}

/// One comparison of every operator, with or without case.
fn random_leaf(rng: &mut Rng) -> Cond {
    let (dim, candidates): (&'static str, Vec<&str>) = match rng.below(6) {
        0 => ("event:page", PAGES.to_vec()),
        5 => ("visit:country_name", COUNTRY_NAMES.to_vec()),
        1 => ("visit:country", COUNTRIES.to_vec()),
        4 => {
            let mut cities: Vec<&str> = PLACES.iter().flatten().map(|p| p.2).filter(|c| !c.is_empty()).collect();
            cities.push("(not set)");
            ("visit:city", cities)
        }
        2 => ("event:props:plan", vec!["pro", "(none)"]),
        _ => ("visit:source", REFERRERS.iter().map(|r| r.1).collect()),
    };
    let op = *rng.pick(&["is", "is_not", "contains", "contains_not", "matches", "matches_not"]);
    let any_case = rng.below(3) == 0;
    let value = match op {
        "contains" | "contains_not" => (*rng.pick(&["o", "E", "/"])).to_owned(),
        "matches" | "matches_not" => {
            (*rng.pick(&["^/p", "[0-9]$", "^(DE|FR)$", "o.", "^$", "^(Germany|Canada)$"])).to_owned()
        }
        _ => (*rng.pick(&candidates)).to_owned(),
    };
    let value = if any_case && rng.below(2) == 0 { value.to_uppercase() } else { value };
    Cond::Leaf { op, dim, values: vec![value], any_case }
}

/// Asks 100 random funnels (2 to 4 of the goals in random order, the range and filters of a
/// random query) and compares each step's visitors with the brute force.
async fn run_funnels(base: &str, sites: &[OracleSite], rng: &mut Rng, client: &reqwest::Client, days: &[String]) {
    // Funnels where some visitor reached the second step, and the third; funnels whose scroll
    // step some visitor reached.
    let (mut second, mut third, mut scrolled) = (0, 0, 0);
    for round in 0..100 {
        let (site, zone, events, key) = &sites[round % sites.len()];
        let ask = random_ask(rng, days);
        let mut goals: Vec<&str> = GOALS.iter().map(|g| g.0).collect();
        let mut steps = Vec::new();
        for _ in 0..2 + rng.below(3) {
            steps.push(goals.remove(rng.below(goals.len() as u64) as usize));
        }
        let filters: Vec<Value> = ask.filters.iter().map(Cond::json).collect();
        let body = json!({"site_id": site, "date_range": [ask.first, ask.last], "filters": filters, "steps": steps});
        let response = client.post(format!("{base}/api/v2/funnel")).bearer_auth(key).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{body}");
        let answer: Value = response.json().await.unwrap();
        let got: Vec<u64> = answer["steps"].as_array().unwrap().iter().map(|s| s["visitors"].as_u64().unwrap()).collect();
        let (all, want) = brute_funnel(site, zone, events, &ask, &steps);
        assert_eq!((answer["all_visitors"].as_u64().unwrap(), got), (all, want.clone()), "site {site}, funnel {body}");
        second += usize::from(want[1] > 0);
        scrolled += usize::from(steps.iter().zip(&want).any(|(s, v)| s.starts_with("Scroll") && *v > 0));
        third += usize::from(want.get(2).is_some_and(|v| *v > 0));
    }
    eprintln!("oracle: 100 funnels compared ({second} reached a second step, {third} a third, {scrolled} a scroll step)");
    assert!(scrolled > 5, "too few funnels reached a scroll step: {scrolled}");
    assert!(second > 20 && third > 5, "too few funnels went anywhere: {second} to a second step, {third} to a third");
}

/// Asks 100 random queries over ranges to the second (two date-times that are not whole
/// hours: from a few seconds to a day and a half around a random event, so that the ends cut
/// through hours and visits) without time groupings, exit pages or comparisons, which such a
/// range cannot have, and compares each with the brute force.
async fn run_windows(base: &str, sites: &[OracleSite], rng: &mut Rng, client: &reqwest::Client, days: &[String]) {
    let mut rows = 0;
    for round in 0..100 {
        let (site, zone, events, key) = &sites[round % sites.len()];
        let mut ask = random_ask(rng, days);
        ask.groupings.retain(|g| !g.starts_with("time") && !EXIT_DIMENSIONS.contains(&g.as_str()));
        ask.compare = false;
        ask.subset = 0;
        let around = events[rng.below(events.len() as u64) as usize].at_ms.div_euclid(1000);
        let from = around - rng.below(3 * 3_600) as i64;
        let to = from + [5, 600, 7_200, 130_000][rng.below(4) as usize] + rng.below(600) as i64;
        // Not on whole hours of the zone (else the server counts whole hours, as it should).
        let on_hour = |s: i64| zone.to_datetime(Timestamp::from_second(s).unwrap()).strftime("%M:%S").to_string() == "00:00";
        if on_hour(from) || on_hour(to + 1) {
            continue;
        }
        ask.window = Some((from, to));
        let response = client.post(format!("{base}/api/v2/query")).bearer_auth(key).json(&ask.body(site)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{ask:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["meta"]["tier"], "segments", "{ask:?}");
        let got = rows_of(&answer);
        let want = brute(site, zone, events, &ask);
        rows += want.len();
        assert_eq!(got, want, "site {site}, query to the second {ask:?}");
    }
    eprintln!("oracle: {rows} answer rows over ranges to the second compared");
    assert!(rows > 100, "too few rows over ranges to the second: {rows}");
}

/// An answer's rows: dimensions → metrics.
fn rows_of(answer: &Value) -> BTreeMap<Vec<String>, Vec<Value>> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let dims = r["dimensions"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned());
            (dims.collect(), r["metrics"].as_array().unwrap().clone())
        })
        .collect()
}

/// A site of the oracle: its domain, time zone, raw events and an API key for it.
type OracleSite = (&'static str, TimeZone, Vec<Raw>, String);

/// Asks the Stats API at `base` 500 random queries over `sites` (in turn) and compares every
/// answer with the brute force; checks that the queries covered the surface (goals, `has_done`,
/// visits by their events, comparisons, revenue, both tiers).
async fn run_queries(base: &str, sites: &[OracleSite], rng: &mut Rng) {
    let client = reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(60)).build().unwrap();
    let days: Vec<String> = (-1..=DAYS)
        .map(|d| Timestamp::from_millisecond(START_MS + d * DAY_MS).unwrap())
        .map(|t| TimeZone::UTC.to_datetime(t).date().to_string())
        .collect();
    let mut tiers: BTreeMap<String, usize> = BTreeMap::new();
    let mut rows_compared = 0;
    let mut revenue_rows = 0;
    // Rows with a scroll depth or time on page measured.
    let mut engaged_rows = 0;
    let mut compared = 0;
    // Queries with a `has_done`, queries whose visits count by their events, queries by goal.
    let (mut behavioural, mut by_events, mut by_goal) = (0, 0, 0);
    // Queries that ask only some of the metrics their shape allows.
    let mut subsets = 0;
    // Answer rows that a scroll goal converted (by goal, or filtered by one).
    let mut scrolled = 0;
    for round in 0..500 {
        let (site, zone, events, key) = &sites[round % sites.len()];
        let ask = random_ask(rng, &days);
        let response = client
            .post(format!("{base}/api/v2/query"))
            .bearer_auth(key)
            .json(&ask.body(site))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{ask:?}");
        let answer: Value = response.json().await.unwrap();
        *tiers.entry(answer["meta"]["tier"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        let got = rows_of(&answer);
        let want = brute(site, zone, events, &ask);
        behavioural += usize::from(ask.filters.iter().any(|f| matches!(f, Cond::HasDone(..))));
        subsets += usize::from(ask.subset != 0);
        by_goal +=
            usize::from(ask.groupings == ["event:goal"] || ask.filters.iter().any(|f| matches!(f, Cond::Goal(..))));
        by_events += usize::from(
            ask.metrics().contains(&"visits")
                && (ask.filters.iter().any(Cond::reads_events)
                    || ask.groupings.iter().any(|g| g.starts_with("event:"))),
        );
        if ask.compare {
            let got_comparison: BTreeMap<Vec<String>, Value> = answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let dims = r["dimensions"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned());
                    (dims.collect(), r["comparison"].clone())
                })
                .collect();
            assert_eq!(
                got_comparison,
                brute_comparison(site, zone, events, &ask, &want),
                "comparison, site {site}, query {ask:?}"
            );
            compared += 1;
        }
        rows_compared += want.len();
        let by_scroll = !scroll_goals(&ask.filters).is_empty();
        scrolled += want
            .iter()
            .filter(|(k, m)| {
                (by_scroll || k.first().is_some_and(|g| g.starts_with("Scroll")))
                    && m.first().and_then(Value::as_f64).is_some_and(|v| v > 0.0)
            })
            .count();
        revenue_rows += want.values().filter(|m| m.iter().any(|v| v.get("by_currency").is_some())).count();
        let measured: Vec<usize> = (ask.metrics().iter().enumerate())
            .filter(|(_, m)| ["scroll_depth", "time_on_page"].contains(m))
            .map(|(i, _)| i)
            .collect();
        engaged_rows += want.values().filter(|m| measured.iter().any(|i| !m[*i].is_null())).count();
        assert_eq!(got, want, "site {site}, query {ask:?}, tier {}", answer["meta"]["tier"]);
    }
    eprintln!(
        "oracle: {rows_compared} answer rows compared ({revenue_rows} with revenue, {compared} queries with comparisons, \
         {behavioural} with has_done, {by_events} counting visits by their events, {by_goal} by goal, {subsets} asking some \
         of the metrics, {engaged_rows} with a scroll depth or time on page, {scrolled} converted by a scroll goal), by \
         tier {tiers:?}"
    );
    assert!(scrolled > 5, "too few rows converted by a scroll goal: {scrolled}");
    assert!(engaged_rows > 50, "too few rows with a scroll depth or time on page: {engaged_rows}");
    run_funnels(base, sites, rng, &client, &days).await;
    run_windows(base, sites, rng, &client, &days).await;
    assert!(by_goal > 40, "too few goal queries: {by_goal}");
    assert!(subsets > 100, "too few queries asking some of the metrics: {subsets}");
    assert!(behavioural > 20 && by_events > 50, "too few: {behavioural} has_done, {by_events} visits by events");
    assert!(compared > 20, "too few comparisons: {compared}");
    assert!(rows_compared > 1_000, "too few rows to be a test: {rows_compared}");
    assert!(revenue_rows > 200, "too few rows with revenue: {revenue_rows}");
    assert!(
        tiers.get("rollups").is_some_and(|n| *n > 50) && tiers.get("segments").is_some_and(|n| *n > 50),
        "{tiers:?}"
    );
}
