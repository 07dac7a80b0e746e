//! The demo's visits: three sites in three time zones, pages chosen by a Zipf law, sources
//! (search, social, newsletters, ads, direct), countries, browsers and devices, custom events
//! with props and revenue, engagement events, and a share of bots that ingest drops. Each visit
//! is a list of events with their offsets; the history writes them as import lines, the live
//! trickle sends them as requests.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

/// One demo site.
#[derive(Debug)]
pub struct DemoSite {
    /// Its domain (the site id).
    pub domain: &'static str,
    /// Its time zone.
    pub timezone: &'static str,
    /// Visits on an average weekday.
    pub visits_per_day: u32,
    /// Its pages, most visited first.
    pub pages: &'static [&'static str],
    /// Countries (ISO code, region, city) and their weights.
    pub countries: &'static [((&'static str, &'static str, &'static str), u32)],
    /// What a visit may do besides viewing pages.
    pub kind: Kind,
}

/// What a site's visitors do besides viewing pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A shop: products added to the cart, purchases with revenue, sign-ups.
    Shop,
    /// A blog: newsletter sign-ups, outbound links.
    Blog,
    /// Documentation: downloads, searches.
    Docs,
}

/// The demo's sites.
pub const SITES: [DemoSite; 3] = [
    DemoSite {
        domain: "shop.example",
        timezone: "Europe/Berlin",
        visits_per_day: 400,
        pages: &[
            "/",
            "/products",
            "/products/espresso-machine",
            "/products/grinder",
            "/cart",
            "/products/kettle",
            "/products/beans-ethiopia",
            "/checkout",
            "/products/scale",
            "/products/beans-colombia",
            "/blog/brewing-guide",
            "/about",
            "/products/milk-jug",
            "/faq",
            "/shipping",
            "/blog/latte-art",
            "/products/filter-papers",
            "/returns",
            "/contact",
            "/account",
            "/blog",
            "/imprint",
        ],
        countries: &[
            (("DE", "BE", "Berlin"), 30),
            (("DE", "BY", "Munich"), 14),
            (("AT", "9", "Vienna"), 8),
            (("CH", "ZH", "Zurich"), 6),
            (("NL", "NH", "Amsterdam"), 6),
            (("FR", "IDF", "Paris"), 6),
            (("GB", "ENG", "London"), 6),
            (("US", "NY", "New York"), 8),
            (("US", "CA", "San Francisco"), 4),
            (("PL", "MZ", "Warsaw"), 4),
            (("IT", "25", "Milan"), 4),
            (("ES", "MD", "Madrid"), 4),
        ],
        kind: Kind::Shop,
    },
    DemoSite {
        domain: "blog.example",
        timezone: "America/New_York",
        visits_per_day: 260,
        pages: &[
            "/",
            "/posts/async-rust-in-depth",
            "/posts/zero-copy-parsing",
            "/posts/exact-distinct-counts",
            "/posts/columnar-storage-101",
            "/archive",
            "/posts/time-zones-are-hard",
            "/about",
            "/posts/why-we-left-cookies",
            "/tags/rust",
            "/posts/benchmarking-honestly",
            "/tags/databases",
            "/newsletter",
            "/posts/edge-computing-notes",
            "/posts/parquet-tricks",
            "/posts/a-year-of-on-call",
        ],
        countries: &[
            (("US", "NY", "New York"), 18),
            (("US", "CA", "San Francisco"), 14),
            (("US", "TX", "Austin"), 8),
            (("CA", "ON", "Toronto"), 8),
            (("GB", "ENG", "London"), 10),
            (("DE", "BE", "Berlin"), 7),
            (("IN", "KA", "Bengaluru"), 9),
            (("BR", "SP", "São Paulo"), 5),
            (("AU", "NSW", "Sydney"), 5),
            (("JP", "13", "Tokyo"), 4),
            (("FR", "IDF", "Paris"), 4),
        ],
        kind: Kind::Blog,
    },
    DemoSite {
        domain: "docs.example",
        timezone: "Asia/Kolkata",
        visits_per_day: 160,
        pages: &[
            "/",
            "/getting-started",
            "/install",
            "/guides/configuration",
            "/api/query",
            "/guides/deploying",
            "/api/ingest",
            "/downloads",
            "/changelog",
            "/guides/time-zones",
            "/api/errors",
            "/faq",
            "/guides/migrating",
        ],
        countries: &[
            (("IN", "KA", "Bengaluru"), 20),
            (("IN", "MH", "Mumbai"), 12),
            (("IN", "DL", "Delhi"), 8),
            (("US", "CA", "San Francisco"), 12),
            (("US", "WA", "Seattle"), 6),
            (("SG", "01", "Singapore"), 6),
            (("DE", "BE", "Berlin"), 6),
            (("GB", "ENG", "London"), 6),
            (("JP", "13", "Tokyo"), 5),
            (("ID", "JK", "Jakarta"), 4),
        ],
        kind: Kind::Docs,
    },
];

/// Browsers and devices, by share.
const AGENTS: &[(&str, u32)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        30,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        14,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 7),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        6,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 3),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        20,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        13,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        4,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        3,
    ),
];

/// Crawlers and scripts: ingest drops their events as bots.
const BOTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.5.0",
    "python-requests/2.32.3",
];

/// Where visits come from: a referrer, a query string, and a share.
const SOURCES: &[((Option<&str>, &str), u32)] = &[
    ((None, ""), 34),
    ((Some("https://www.google.com/"), ""), 28),
    ((Some("https://www.bing.com/"), ""), 4),
    ((Some("https://duckduckgo.com/"), ""), 4),
    ((Some("https://t.co/x8Ks2"), ""), 4),
    ((Some("https://www.facebook.com/"), ""), 3),
    ((Some("https://news.ycombinator.com/"), ""), 3),
    ((Some("https://www.reddit.com/r/programming/"), ""), 3),
    ((Some("https://www.linkedin.com/feed/"), ""), 2),
    ((Some("https://github.com/tally/tally"), ""), 3),
    ((None, "?utm_source=newsletter&utm_medium=email&utm_campaign=december-digest"), 5),
    ((None, "?utm_source=google&utm_medium=cpc&utm_campaign=winter-sale&utm_term=coffee+grinder&gclid=Cj0demo"), 3),
    ((Some("https://www.instagram.com/"), "?utm_source=instagram&utm_medium=social&utm_campaign=launch"), 2),
    ((Some("https://chatgpt.com/"), ""), 2),
];

/// Visit starts per local hour of the day, relative.
const HOURS: [u32; 24] = [2, 1, 1, 1, 1, 2, 4, 7, 10, 12, 13, 13, 12, 12, 12, 12, 11, 11, 12, 13, 12, 9, 6, 4];

/// One event of a visit.
#[derive(Debug, Clone)]
pub struct Step {
    /// Milliseconds after the visit's first event.
    pub at_ms: i64,
    /// The event as a tracker sends it (`POST /api/event`'s body).
    pub event: Value,
}

/// One visit: who and where from, and its events in order.
#[derive(Debug, Clone)]
pub struct Visit {
    /// The browser's User-Agent (a bot's for a crawler).
    pub user_agent: &'static str,
    /// Country, region and city.
    pub place: (&'static str, &'static str, &'static str),
    /// Its events.
    pub steps: Vec<Step>,
}

/// Picks an item by weight.
fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut at = rng.u32(0..total);
    for (item, weight) in items {
        if at < *weight {
            return item;
        }
        at -= weight;
    }
    &items[items.len() - 1].0
}

/// An index under `n` by a Zipf law of exponent 1.1: the first is the most likely.
fn zipf(rng: &mut fastrand::Rng, n: usize) -> usize {
    let weight = |i: usize| 1.0 / ((i + 1) as f64).powf(1.1);
    let total: f64 = (0..n).map(weight).sum();
    let mut at = rng.f64() * total;
    for i in 0..n {
        at -= weight(i);
        if at <= 0.0 {
            return i;
        }
    }
    n - 1
}

/// One visit to `site`: a crawler's now and then, otherwise a person's.
pub fn visit(rng: &mut fastrand::Rng, site: &DemoSite) -> Visit {
    let place = *pick(rng, site.countries);
    let url = |path: &str, query: &str| format!("https://{}{path}{query}", site.domain);
    let domain = site.domain;
    if rng.u32(0..100) < 3 {
        let user_agent = BOTS[rng.usize(0..BOTS.len())];
        let steps = (0..rng.i64(1..6))
            .map(|i| Step {
                at_ms: i * 2_000,
                event: json!({"n": "pageview", "u": url(site.pages[rng.usize(0..site.pages.len())], ""), "d": domain}),
            })
            .collect();
        return Visit { user_agent, place, steps };
    }
    let user_agent = *pick(rng, AGENTS);
    let (referrer, query) = *pick(rng, SOURCES);
    let mut steps = Vec::new();
    let mut at_ms = 0;
    let mut page = site.pages[zipf(rng, site.pages.len())];
    let mut first = json!({"n": "pageview", "u": url(page, query), "d": domain});
    if let Some(referrer) = referrer {
        first["r"] = json!(referrer);
    }
    steps.push(Step { at_ms, event: first });
    let pages = if rng.u32(0..100) < 42 { 1 } else { rng.u32(2..7) };
    let mut in_cart = false;
    for n in 0..pages {
        // Time on the page, then (most of the time) the tracker's engagement event.
        let read_ms = rng.i64(8_000..150_000);
        if rng.u32(0..100) < 70 {
            let engagement = json!({"n": "engagement", "u": url(page, ""), "d": domain,
                "sd": rng.u32(15..101), "e": read_ms - rng.i64(0..5_000)});
            steps.push(Step { at_ms: at_ms + read_ms, event: engagement });
        }
        let event = |name: &str, props: Value| json!({"n": name, "u": url(page, ""), "d": domain, "p": props});
        let action_ms = at_ms + read_ms / 2;
        match site.kind {
            Kind::Shop if page.starts_with("/products/") && rng.u32(0..100) < 25 => {
                let product = page.trim_start_matches("/products/");
                steps.push(Step { at_ms: action_ms, event: event("Add to Cart", json!({"product": product})) });
                in_cart = true;
            }
            Kind::Shop if page == "/checkout" && in_cart && rng.u32(0..100) < 60 => {
                let payment = ["card", "paypal", "invoice"][rng.usize(0..3)];
                let mut purchase = event("Purchase", json!({ "payment": payment }));
                let cents = rng.u32(1_900..24_900);
                purchase["$"] = json!({"amount": format!("{}.{:02}", cents / 100, cents % 100), "currency": "EUR"});
                steps.push(Step { at_ms: action_ms, event: purchase });
            }
            Kind::Shop if rng.u32(0..100) < 2 => {
                let plan = ["free", "pro", "team"][zipf(rng, 3)];
                steps.push(Step { at_ms: action_ms, event: event("Signup", json!({"plan": plan})) });
            }
            Kind::Blog if page.starts_with("/posts/") && rng.u32(0..100) < 10 => {
                let link = [
                    "https://github.com/tally/tally",
                    "https://docs.rs/",
                    "https://en.wikipedia.org/wiki/Zipf%27s_law",
                ][zipf(rng, 3)];
                steps.push(Step { at_ms: action_ms, event: event("Outbound Link: Click", json!({"url": link})) });
            }
            Kind::Blog if rng.u32(0..100) < 3 => {
                steps.push(Step { at_ms: action_ms, event: event("Newsletter Signup", json!({"position": "footer"})) });
            }
            Kind::Docs if page == "/downloads" && rng.u32(0..100) < 55 => {
                let file = ["tally-1.4.2-x86_64-linux.tar.gz", "tally-1.4.2-aarch64-macos.tar.gz", "tally-1.4.2.zip"]
                    [zipf(rng, 3)];
                let link = format!("https://docs.example/downloads/{file}");
                steps.push(Step { at_ms: action_ms, event: event("File Download", json!({"url": link})) });
            }
            Kind::Docs if rng.u32(0..100) < 12 => {
                let query = ["timezone", "api key", "retention", "funnel", "import"][zipf(rng, 5)];
                steps.push(Step { at_ms: action_ms, event: event("Search", json!({"query": query})) });
            }
            _ => {}
        }
        at_ms += read_ms + rng.i64(500..3_000);
        if n + 1 == pages {
            break;
        }
        page = match site.kind {
            Kind::Shop if in_cart && rng.bool() => {
                if page == "/cart" {
                    "/checkout"
                } else {
                    "/cart"
                }
            }
            _ => site.pages[zipf(rng, site.pages.len())],
        };
        steps.push(Step { at_ms, event: json!({"n": "pageview", "u": url(page, ""), "d": domain}) });
    }
    steps.sort_by_key(|step| step.at_ms);
    Visit { user_agent, place, steps }
}

/// The start times of one local day's visits to `site`, in ms since the epoch: its weekday's
/// share of the site's visits, a slow growth over the `days_ago`, spread over the hours of its
/// time zone's day.
pub fn visit_starts(rng: &mut fastrand::Rng, site: &DemoSite, day: jiff::civil::Date, days_ago: i64) -> Vec<i64> {
    let Ok(zone) = TimeZone::get(site.timezone) else {
        return Vec::new();
    };
    let weekday = match day.weekday() {
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday => 0.65,
        _ => 1.0,
    };
    let growth = 1.0 - 0.008 * days_ago as f64;
    let noise = 0.85 + 0.3 * rng.f64();
    let visits = (f64::from(site.visits_per_day) * weekday * growth * noise).round() as u32;
    let hours: Vec<(i8, u32)> = HOURS.iter().enumerate().map(|(h, w)| (h as i8, *w)).collect();
    (0..visits)
        .filter_map(|_| {
            let hour = *pick(rng, &hours);
            let time = jiff::civil::time(hour, rng.i8(0..60), rng.i8(0..60), 0);
            let start = zone.to_ambiguous_timestamp(day.to_datetime(time)).compatible().ok()?;
            Some(start.as_millisecond() + rng.i64(0..1_000))
        })
        .collect()
}

/// The import lines of every demo site's `days` full days before today and today up to `now`,
/// in time order:
/// each event with its timestamp, User-Agent, visitor and place, as `tally import` reads them.
pub fn history(seed: u64, days: i64, now: Timestamp) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut lines: Vec<(i64, String)> = Vec::new();
    let now_ms = now.as_millisecond();
    for site in &SITES {
        let Ok(zone) = TimeZone::get(site.timezone) else { continue };
        let today = zone.to_datetime(now).date();
        // Visitors come back: each visit is one of a pool about twenty days' visits large.
        let pool = u64::from(site.visits_per_day) * 20;
        for days_ago in (0..=days).rev() {
            let Ok(day) = today.checked_sub(jiff::Span::new().days(days_ago)) else { continue };
            for start in visit_starts(&mut rng, site, day, days_ago) {
                let visit = visit(&mut rng, site);
                let visitor = format!("demo-{}", rng.u64(0..pool));
                for step in visit.steps {
                    let at = start + step.at_ms;
                    if at > now_ms {
                        break;
                    }
                    let mut line = step.event;
                    line["timestamp"] = json!(at);
                    line["user_agent"] = json!(visit.user_agent);
                    line["visitor"] = json!(visitor);
                    line["country"] = json!(visit.place.0);
                    line["region"] = json!(visit.place.1);
                    line["city"] = json!(visit.place.2);
                    lines.push((at, line.to_string()));
                }
            }
        }
    }
    lines.sort_by_key(|(at, _)| *at);
    let mut out = Vec::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
    for (_, line) in lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}
