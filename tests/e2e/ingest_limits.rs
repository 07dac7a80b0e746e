//! Ingest rate limits of `tally serve`: a client or a site over its budget gets 429 with
//! `Retry-After`, each refused event is counted as a `rate_limited` drop of its site, and other
//! clients and sites are unaffected.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, pageview, query_body, settle};
use serde_json::json;

const SITE: &str = "limited.example";
const OTHER: &str = "other.example";

/// POSTs one pageview of `site` from `visitor`; the status and the `Retry-After` header.
async fn send(server: &TestServer, site: &str, visitor: &Visitor) -> (u16, Option<String>) {
    let mut request = server.client().post(server.url("/api/event")).body(pageview(site, "/").to_string());
    for (name, value) in visitor.headers() {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("an answer");
    let retry = response.headers().get("retry-after").map(|v| v.to_str().expect("ascii").to_owned());
    (response.status().as_u16(), retry)
}

async fn rate_limited_drops(server: &TestServer, site: &str, expected: u64) -> u64 {
    let drops = settle(
        POLL_DEADLINE,
        || server.drops(site),
        |d| d.as_ref().is_ok_and(|d| d.get("rate_limited") == Some(&expected)),
    )
    .await;
    match drops {
        Ok(Ok(d)) | Err(Ok(d)) => d.get("rate_limited").copied().unwrap_or(0),
        Ok(Err(e)) | Err(Err(e)) => panic!("drops: {e}"),
    }
}

#[tokio::test]
async fn a_burst_from_one_client_is_refused_and_counted_while_another_client_is_not() {
    let server = TestServer::start_with("ingest-limit-client", &[SITE], &["--ingest-rate-per-client", "5"]);
    let burst = Visitor::new(1);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let (status, retry) = send(&server, SITE, &burst).await;
        if status == 429 {
            let seconds: u64 = retry.expect("a 429 says when to retry").parse().expect("whole seconds");
            assert!((1..=60).contains(&seconds), "one request of 5 per minute refills in 12 s: {seconds}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 5, "the budget, then refusals: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7, "{statuses:?}");
    // The same IP with another browser is another client; so is another IP.
    let mut same_ip = Visitor::new(2);
    same_ip.ip = burst.ip.clone();
    assert_eq!(send(&server, SITE, &same_ip).await.0, 202);
    assert_eq!(send(&server, SITE, &Visitor::new(3)).await.0, 202);

    assert_eq!(rate_limited_drops(&server, SITE, 7).await, 7, "each refused event is one rate_limited drop");
    let body = query_body(SITE, &["pageviews"], json!({}));
    let totals =
        settle(POLL_DEADLINE, || server.totals(&body), |t| t.as_ref().is_ok_and(|t| t.first() == Some(&7.0))).await;
    assert_eq!(totals.map(Result::ok), Ok(Some(vec![7.0])), "only accepted events count");
}

#[tokio::test]
async fn a_site_over_its_budget_is_refused_for_every_client_and_other_sites_are_not() {
    let mut server = TestServer::start_with("ingest-limit-site", &[SITE, OTHER], &["--ingest-rate-per-site", "10"]);
    let mut accepted = 0;
    for n in 0..15 {
        let (status, retry) = send(&server, SITE, &Visitor::new(n)).await;
        match status {
            202 => accepted += 1,
            429 => assert!(retry.is_some(), "a 429 says when to retry"),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(accepted, 10, "the site's budget of 10 a minute, all at once");
    assert_eq!(send(&server, OTHER, &Visitor::new(1)).await.0, 202, "another site is unaffected");
    assert_eq!(rate_limited_drops(&server, SITE, 5).await, 5);

    // Refusals counted just before a shutdown are logged before the server exits.
    for n in 20..23 {
        assert_eq!(send(&server, SITE, &Visitor::new(n)).await.0, 429);
    }
    let (status, _) = server.stop_with("TERM");
    assert!(status.success(), "clean exit on SIGTERM");
    server.start_again(&["--ingest-rate-per-site", "10"]);
    assert_eq!(rate_limited_drops(&server, SITE, 8).await, 8, "the last refusals survived the shutdown");
}
