//! Ingest then query: 1,000 pageviews from 100 visitors sent concurrently are counted exactly
//! within 5 s, break down by page, filter by country; visits and bounce rate of a known case;
//! malformed queries are answered 400.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, eventually, join_all, pageview, query_body, rows, totals};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SITE: &str = "example.com";
const PAGES: [&str; 5] = ["/", "/pricing", "/docs/getting-started", "/blog/hello-world", "/about"];
const VISITORS: u32 = 100;
const VIEWS_EACH: usize = 10;
const TASKS: u32 = 8;
/// The longest an acknowledged event may take to show in query results.
const FRESHNESS: Duration = Duration::from_secs(5);

/// A quarter of the visitors come from Germany, a quarter from France, the rest from nowhere known.
fn country_of(visitor: u32) -> Option<&'static str> {
    match visitor % 4 {
        0 => Some("DE"),
        1 => Some("FR"),
        _ => None,
    }
}

/// How many visitors have `country`.
fn visitors_from(countries: &[&str]) -> f64 {
    f64::from(
        u32::try_from((0..VISITORS).filter(|&n| country_of(n).is_some_and(|c| countries.contains(&c))).count())
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_and_query() {
    let server = Arc::new(TestServer::start("ingest", &[SITE]));

    // 100 visitors, 10 pageviews each, every visitor seeing each of the 5 pages twice; 8 tasks.
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let mut last_ack = None;
            for n in (task..VISITORS).step_by(TASKS as usize) {
                let mut visitor = Visitor::new(n);
                if let Some(country) = country_of(n) {
                    visitor = visitor.in_country(country);
                }
                for view in 0..VIEWS_EACH {
                    let page = PAGES[(n as usize + view) % PAGES.len()];
                    let answer = server.post_event(pageview(SITE, page).to_string(), &visitor.headers()).await;
                    let seen = (answer.status, answer.body.as_str(), answer.accepted, answer.dropped_header.as_deref());
                    assert_eq!(seen, (202, "ok", Some(1), None), "visitor {n}, pageview {view} of {page}: {answer:?}");
                    last_ack = Some(Instant::now());
                }
            }
            last_ack
        }));
    }
    let last_ack = join_all(tasks).await.into_iter().flatten().max().unwrap();

    // Exact totals within FRESHNESS of the last 202.
    let body = query_body(SITE, &["visitors", "pageviews"], json!({}));
    let exact = [f64::from(VISITORS), 1000.0];
    let got = eventually(
        "visitors and pageviews of today",
        POLL_DEADLINE,
        || server.totals(&body),
        |t| t.as_ref().is_ok_and(|t| *t == exact),
    )
    .await;
    let elapsed = last_ack.elapsed();
    eprintln!("ingest_and_query: exact totals {got:?} answered {elapsed:?} after the last 202");
    assert!(elapsed <= FRESHNESS, "exact totals took {elapsed:?} after the last 202 (limit {FRESHNESS:?})");

    // Breakdown by page: every page 200 pageviews from all 100 visitors; they sum to 1,000.
    let body = query_body(SITE, &["pageviews", "visitors"], json!({"dimensions": ["event:page"]}));
    let answer = server.query(&body).await.unwrap();
    let by_page: BTreeMap<String, Vec<f64>> =
        rows(&answer).into_iter().map(|(dims, metrics)| (dims.join("|"), metrics)).collect();
    let want: BTreeMap<String, Vec<f64>> =
        PAGES.iter().map(|p| ((*p).to_owned(), vec![200.0, f64::from(VISITORS)])).collect();
    assert_eq!(by_page, want, "breakdown by event:page; answer {answer}");
    let sum: f64 = by_page.values().map(|m| m[0]).sum();
    assert!((sum - 1000.0).abs() < f64::EPSILON, "pageviews by page sum to {sum}");

    // Filters.
    let cases: [(Value, f64); 5] = [
        (json!([["is", "visit:country", ["DE"]]]), visitors_from(&["DE"])),
        (json!([["is", "visit:country", ["DE", "FR"]]]), visitors_from(&["DE", "FR"])),
        (json!([["is_not", "visit:country", ["DE"]]]), f64::from(VISITORS) - visitors_from(&["DE"])),
        (json!([["is", "visit:country", ["JP"]]]), 0.0),
        (json!([["contains", "event:page", ["blog"]]]), f64::from(VISITORS)),
    ];
    for (filters, visitors) in cases {
        let body = query_body(SITE, &["visitors", "pageviews"], json!({"filters": filters}));
        let answer = server.query(&body).await.unwrap();
        // A visitor's pageviews all carry the visit's country; each visitor saw /blog/… twice.
        let pageviews = if filters[0][0] == "contains" { 200.0 } else { visitors * 10.0 };
        let got = totals(&answer);
        let want = [visitors, pageviews];
        // No matching row may be answered as zeros or as no row at all.
        let ok = got == want || (visitors == 0.0 && got.is_empty());
        assert!(ok, "filters {filters}: want visitors, pageviews = {want:?}, got {got:?}; answer {answer}");
    }

    // Breakdown by country: the German and French rows.
    let body = query_body(SITE, &["visitors"], json!({"dimensions": ["visit:country"]}));
    let answer = server.query(&body).await.unwrap();
    let by_country: BTreeMap<String, f64> =
        rows(&answer).into_iter().map(|(dims, metrics)| (dims.join("|"), metrics[0])).collect();
    for country in ["DE", "FR"] {
        assert_eq!(
            by_country.get(country),
            Some(&visitors_from(&[country])),
            "visit:country row {country}; answer {answer}"
        );
    }
    let total: f64 = by_country.values().sum();
    assert!((total - f64::from(VISITORS)).abs() < f64::EPSILON, "visitors by country sum to {total}; answer {answer}");
}

/// A single-page app that routes by the fragment, with Plausible's script in hash mode (`h: 1`):
/// its pages are the fragments' routes; without `h`, the same URLs are one page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_mode_pages_keep_their_fragment() {
    const APP: &str = "hash.example";
    let server = TestServer::start("hash", &[APP]);
    let visitor = Visitor::new(7);
    for (route, h) in [("#/inbox", 1), ("#/settings", 1), ("#/settings", 1), ("#/ignored", 0)] {
        let body = json!({"n": "pageview", "u": format!("https://{APP}/app{route}"), "d": APP, "h": h});
        let answer = server.post_event(body.to_string(), &visitor.headers()).await;
        assert_eq!((answer.status, answer.accepted), (202, Some(1)), "{answer:?}");
    }
    let by_page = query_body(APP, &["pageviews"], json!({"dimensions": ["event:page"]}));
    let answer = eventually(
        "pages of a hash-routed app",
        POLL_DEADLINE,
        || server.query(&by_page),
        |a| a.as_ref().is_ok_and(|a| rows(a).len() == 3),
    )
    .await
    .unwrap();
    let mut got: Vec<(String, f64)> = rows(&answer).into_iter().map(|(d, m)| (d.join("|"), m[0])).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let want = [("/app", 1.0), ("/app#/inbox", 1.0), ("/app#/settings", 2.0)];
    assert_eq!(got, want.map(|(p, n)| (p.to_owned(), n)), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn visits_and_bounce_rate() {
    const BOUNCY: &str = "bounce.example";
    let server = TestServer::start("bounce", &[BOUNCY]);
    // 10 visitors from the Netherlands see one page; 10 from Sweden see two.
    for n in 0..10 {
        let one = Visitor::new(1000 + n).in_country("NL").in_place("NH", "Amsterdam");
        let answer = server.post_event(pageview(BOUNCY, "/landing").to_string(), &one.headers()).await;
        assert_eq!((answer.status, answer.accepted), (202, Some(1)), "{answer:?}");
        let two = Visitor::new(2000 + n).in_country("SE").in_place("AB", "Stockholm");
        for page in ["/landing", "/signup"] {
            // The visit's place is its first event's: the second one's city changes nothing.
            let two = if page == "/signup" { two.clone().in_place("AB", "Solna") } else { two.clone() };
            let answer = server.post_event(pageview(BOUNCY, page).to_string(), &two.headers()).await;
            assert_eq!((answer.status, answer.accepted), (202, Some(1)), "{answer:?}");
        }
    }
    let metrics = ["visitors", "visits", "pageviews", "events", "bounce_rate", "views_per_visit"];
    let overall = query_body(BOUNCY, &metrics, json!({}));
    let want = vec![20.0, 20.0, 30.0, 30.0, 50.0, 1.5];
    eventually(
        "visits and bounce rate",
        POLL_DEADLINE,
        || server.totals(&overall),
        |t| t.as_ref().is_ok_and(|t| *t == want),
    )
    .await
    .unwrap();
    for (country, want) in [("NL", [10.0, 10.0, 10.0, 10.0, 100.0, 1.0]), ("SE", [10.0, 10.0, 20.0, 20.0, 0.0, 2.0])] {
        let body = query_body(BOUNCY, &metrics, json!({"filters": [["is", "visit:country", [country]]]}));
        let answer = server.query(&body).await.unwrap();
        assert_eq!(totals(&answer), want, "{metrics:?} for visitors from {country}; answer {answer}");
    }
    // Regions come as ISO 3166-2 codes, cities by name; both filter and group like the country.
    for (dimension, want) in [
        ("visit:region", [("NL-NH", 10.0), ("SE-AB", 20.0)]),
        ("visit:city", [("Amsterdam", 10.0), ("Stockholm", 20.0)]),
    ] {
        let body = query_body(BOUNCY, &["pageviews"], json!({"dimensions": [dimension]}));
        let answer = server.query(&body).await.unwrap();
        let got: Vec<(String, f64)> =
            rows(&answer).into_iter().map(|(dims, metrics)| (dims.join("|"), metrics[0])).collect();
        let mut got = got;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<(String, f64)> = want.iter().map(|(v, n)| ((*v).to_owned(), *n)).collect();
        assert_eq!(got, want, "pageviews by {dimension}; answer {answer}");
    }
    let body = query_body(BOUNCY, &metrics, json!({"filters": [["is", "visit:city", ["Stockholm"]]]}));
    let answer = server.query(&body).await.unwrap();
    assert_eq!(totals(&answer), [10.0, 10.0, 20.0, 20.0, 0.0, 2.0], "{metrics:?} in Stockholm; answer {answer}");

    // One-page visits last no time.
    let body = query_body(BOUNCY, &["visit_duration"], json!({"filters": [["is", "visit:country", ["NL"]]]}));
    let answer = server.query(&body).await.unwrap();
    assert_eq!(totals(&answer), [0.0], "visit_duration of single-page visits; answer {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_400() {
    const SITE: &str = "queries.example";
    let server = TestServer::start("queries", &[SITE]);
    let auth = format!("Bearer {}", server.key(SITE));
    let day = |extra: Value| query_body(SITE, &["visitors"], extra).to_string();
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "{\"site_id\": \"queries.example\",".to_owned()),
        ("JSON but not an object", "[1, 2]".to_owned()),
        ("unknown metric", query_body(SITE, &["visitorz"], json!({})).to_string()),
        ("metrics not a list", day(json!({"metrics": "visitors"}))),
        ("no metrics", json!({"site_id": SITE, "date_range": "day"}).to_string()),
        ("unknown dimension", day(json!({"dimensions": ["event:nonsense"]}))),
        ("unknown filter operator", day(json!({"filters": [["resembles", "visit:country", ["DE"]]]}))),
        ("filter without values", day(json!({"filters": [["is", "visit:country"]]}))),
        ("filter on an unknown dimension", day(json!({"filters": [["is", "visit:shoe_size", ["42"]]]}))),
        ("unknown date_range", day(json!({"date_range": "fortnight"}))),
        ("impossible date", day(json!({"date_range": ["2026-13-01", "2026-11-28"]}))),
        ("order_by an unknown metric", day(json!({"order_by": [["nonsense", "desc"]]}))),
        ("negative limit", day(json!({"pagination": {"limit": -1, "offset": 0}}))),
    ];
    let mut failures = Vec::new();
    for (what, body) in &cases {
        let (status, text) = server.query_with_auth(Some(&auth), body.as_bytes()).await;
        let error = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
        if status != 400 || error.is_none() {
            failures
                .push(format!("{what}: POST /api/v2/query {body} → want 400 {{\"error\": …}}, got {status} {text}"));
        }
    }
    assert!(failures.is_empty(), "bad queries not answered 400:\n{}", failures.join("\n"));
    // And a good one still works.
    let (status, text) = server.query_with_auth(Some(&auth), day(json!({})).as_bytes()).await;
    assert_eq!(status, 200, "{text}");
}
