//! Queries as an abusive key holder would send them: each gets the documented 4xx naming its
//! limit (`core/src/query/limits.rs`, README "Query limits"), and the server's resident memory
//! stays bounded. Random query shapes never get a 5xx.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, pageview, query_body, settle};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const SITE: &str = "limits.example";

/// The server's resident memory may grow by at most this much over the abusive queries.
const MEMORY_GROWTH_BOUND_KIB: u64 = 256 * 1024;

async fn expect(server: &TestServer, name: &str, body: &[u8], status: u16, says: &str) {
    let key = format!("Bearer {}", server.key(SITE));
    let (got, text) = server.query_with_auth(Some(&key), body).await;
    assert_eq!(got, status, "{name}: {text}");
    assert!(text.contains(says), "{name}: the error should say `{says}`: {text}");
}

#[tokio::test]
async fn abusive_queries_get_a_4xx_naming_the_limit_and_memory_stays_bounded() {
    let server = TestServer::start("query-limits", &[SITE]);
    for i in 0..50 {
        let visitor = Visitor::new(i);
        let answer = server.post_event(pageview(SITE, &format!("/p/{i}")).to_string(), &visitor.headers()).await;
        assert_eq!(answer.status, 202);
    }
    let events = query_body(SITE, &["events"], json!({}));
    let counted = settle(POLL_DEADLINE, || server.totals(&events), |t| t.as_ref().is_ok_and(|t| t == &[50.0])).await;
    assert!(counted.is_ok(), "{counted:?}");
    let (before, _) = server.memory_kib();

    let many = |n: usize, item: Value| Value::Array(vec![item; n]);
    let ask = |extra: Value| query_body(SITE, &["visitors"], extra).to_string().into_bytes();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a dimension 10,000 times",
            ask(json!({"dimensions": many(10_000, json!("event:page"))})),
            413,
            "at most 65536 bytes",
        ),
        (
            "a dimension 1,000 times",
            ask(json!({"dimensions": many(1_000, json!("event:page"))})),
            400,
            "at most 4 dimensions",
        ),
        (
            "a metric 1,000 times",
            query_body(SITE, &vec!["visitors"; 1_000], json!({})).to_string().into_bytes(),
            400,
            "at most 16 metrics",
        ),
        ("a dimension twice", ask(json!({"dimensions": ["event:page", "event:page"]})), 400, "given twice"),
        (
            "a metric 20,000 times",
            query_body(SITE, &vec!["visitors"; 20_000], json!({})).to_string().into_bytes(),
            413,
            "at most 65536 bytes",
        ),
        (
            "a metric twice",
            query_body(SITE, &["visitors", "visitors"], json!({})).to_string().into_bytes(),
            400,
            "given twice",
        ),
        (
            "1,000 filters",
            ask(
                json!({"filters": (0..1_000).map(|i| json!(["is", "event:page", [format!("/p/{i}")]])).collect::<Vec<_>>()}),
            ),
            400,
            "at most 20 filters",
        ),
        (
            "30 filters",
            ask(
                json!({"filters": (0..30).map(|i| json!(["is", "event:page", [format!("/{i}")]])).collect::<Vec<_>>()}),
            ),
            400,
            "at most 20 filters",
        ),
        (
            "a filter twice",
            ask(json!({"filters": [["is", "event:page", ["/a"]], ["is", "event:page", ["/a"]]]})),
            400,
            "given twice",
        ),
        (
            "a 2 MB filter list",
            ask(json!({"filters": [["is", "event:page", many(200_000, json!("/0123456"))]]})),
            413,
            "at most 65536 bytes",
        ),
        (
            "a filter of 500 values",
            ask(json!({"filters": [["is", "event:page", many(500, json!("/a"))]]})),
            400,
            "at most 100 values",
        ),
        ("a 10,000-year range", ask(json!({"date_range": ["0001-01-01", "9999-12-31"]})), 400, "at most 36525"),
        (
            "a huge offset",
            ask(json!({"pagination": {"limit": 10, "offset": 1_000_000_000u64}})),
            400,
            "pagination.offset",
        ),
    ];
    for (name, body, status, says) in &cases {
        expect(&server, name, body, *status, says).await;
    }
    // A query inside the limits still answers.
    let fine = ask(json!({"dimensions": ["event:page"], "date_range": ["2000-01-01", "2099-12-31"]}));
    expect(&server, "a long but allowed range", &fine, 200, "results").await;

    let (after, peak) = server.memory_kib();
    eprintln!("resident memory: {before} KiB before the abusive queries, {after} KiB after, peak {peak} KiB");
    assert!(
        after.saturating_sub(before) < MEMORY_GROWTH_BOUND_KIB,
        "resident memory grew from {before} to {after} KiB"
    );
}

#[test]
fn random_query_shapes_never_get_a_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = TestServer::start("query-shapes", &[SITE]);
    let names = prop::sample::select(vec![
        "visitors",
        "events",
        "bogus",
        "event:page",
        "visit:source",
        "time:day",
        "time:hour",
        "event:props:plan",
        "visit:exit_page",
        "",
    ]);
    let dates = prop::sample::select(vec!["day", "7d", "year", "0001-01-01", "2026-01-01", "9999-12-31", "x"]);
    let shape = (
        prop::collection::vec(names.clone(), 0..6),
        prop::collection::vec(names.clone(), 0..6),
        prop::collection::vec((prop::sample::select(vec!["is", "is_not", "contains", "nope"]), names, ".{0,8}"), 0..4),
        dates.clone(),
        dates,
        0usize..20_000,
    );
    let mut runner = TestRunner::new(Config { cases: 64, ..Config::default() });
    runner
        .run(&shape, |(metrics, dimensions, filters, from, to, limit)| {
            let filters: Vec<Value> = filters.iter().map(|(op, name, value)| json!([op, name, [value]])).collect();
            let range = if from.len() == 10 && to.len() == 10 { json!([from, to]) } else { json!(from) };
            let body = json!({
                "site_id": SITE, "metrics": metrics, "dimensions": dimensions, "filters": filters,
                "date_range": range, "pagination": {"limit": limit},
            });
            let (status, text) = runtime.block_on(server.query_raw(server.key(SITE), &body));
            prop_assert!(status < 500, "{body} answered {status}: {text}");
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_another_key_does_not() {
    let mut server = TestServer::start_with("query-rate", &[SITE, "other.example"], &["--query-rate-per-hour", "3"]);
    let body = query_body(SITE, &["events"], json!({}));
    for _ in 0..3 {
        assert_eq!(server.query_raw(server.key(SITE), &body).await.0, 200);
    }
    let response = server
        .client()
        .post(server.url("/api/v2/query"))
        .bearer_auth(server.key(SITE))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1_200).contains(&retry), "Retry-After {retry}");
    // Another key, even of the same site, has its own rate.
    let other = crate::harness::key_create(server.data_dir(), SITE);
    server.set_key(SITE, other);
    assert!(settle(POLL_DEADLINE, || server.query(&body), |a| a.is_ok()).await.is_ok(), "a fresh key is not limited");
    let other_site = query_body("other.example", &["events"], json!({}));
    assert_eq!(server.query_raw(server.key("other.example"), &other_site).await.0, 200);
}

#[tokio::test]
async fn a_breakdown_past_the_group_budget_is_a_422_naming_it_in_both_tiers() {
    let server = TestServer::start_with("query-groups", &[SITE], &["--query-max-groups", "10"]);
    for i in 0..30 {
        let answer =
            server.post_event(pageview(SITE, &format!("/p/{i}")).to_string(), &Visitor::new(i).headers()).await;
        assert_eq!(answer.status, 202);
    }
    let events = query_body(SITE, &["events"], json!({}));
    let counted = settle(POLL_DEADLINE, || server.totals(&events), |t| t.as_ref().is_ok_and(|t| t == &[30.0])).await;
    assert!(counted.is_ok(), "{counted:?}");
    let by_page = |extra: Value| {
        let mut body = query_body(SITE, &["visitors"], json!({"dimensions": ["event:page"]}));
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body.to_string().into_bytes()
    };
    // 30 pages: past the budget of 10 groups, from the rollups and from the segments (a filter).
    expect(&server, "30 pages from the rollups", &by_page(json!({})), 422, "more than 10 groups").await;
    let everyone = json!({"filters": [["is_not", "visit:country", ["ZZ"]]]});
    expect(&server, "30 pages from the segments", &by_page(everyone), 422, "more than 10 groups").await;
    // Inside the budget, both answer.
    let few: Vec<String> = (0..5).map(|i| format!("/p/{i}")).collect();
    expect(&server, "5 pages", &by_page(json!({"filters": [["is", "event:page", few]]})), 200, "results").await;
    let by_time = query_body(SITE, &["visitors"], json!({"dimensions": ["time:day"]})).to_string().into_bytes();
    expect(&server, "one day", &by_time, 200, "results").await;
}
