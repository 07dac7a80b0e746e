//! The event log's retention: under steady traffic with a short retention the log file stops
//! growing, while the aggregates keep every counted event (totals unchanged, also after a
//! restart, which replays only what the log still holds).

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, pageview, query_body, settle};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SITE: &str = "kept.example";
const PER_REQUEST: u64 = 25;

fn log_bytes(server: &TestServer) -> u64 {
    std::fs::metadata(server.data_dir().join("log.redb")).map(|m| m.len()).unwrap()
}

async fn pageviews(server: &TestServer, expected: f64) -> Result<Vec<f64>, String> {
    let body = query_body(SITE, &["pageviews"], json!({}));
    settle(POLL_DEADLINE, || server.totals(&body), |t| t.as_ref().is_ok_and(|t| t.first() == Some(&expected)))
        .await
        .unwrap_or_else(|last| last)
}

#[tokio::test]
async fn a_short_retention_levels_the_log_off_and_keeps_the_totals() {
    let args = ["--log-retention", "2s", "--state-snapshot-entries", "500", "--ingest-rate-per-client", "0"];
    let mut server = TestServer::start_with("retention", &[SITE], &args);
    let started = Instant::now();
    let (mut sent, mut n) = (0u64, 0u32);
    let mut at_middle = None;
    while started.elapsed() < Duration::from_secs(18) {
        let visitor = Visitor::new(n % 60_000);
        let batch: Vec<Value> =
            (0..PER_REQUEST).map(|i| pageview(SITE, &format!("/p/{n}/{i}/{}", "x".repeat(100)))).collect();
        let answer = server.post_event(Value::Array(batch).to_string(), &visitor.headers()).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        sent += PER_REQUEST;
        n += 1;
        if at_middle.is_none() && started.elapsed() >= Duration::from_secs(8) {
            at_middle = Some((sent, log_bytes(&server)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (sent_middle, bytes_middle) = at_middle.expect("a sample at 8 s");
    let bytes_end = log_bytes(&server);
    assert!(sent >= 2 * sent_middle, "traffic went on: {sent_middle} then {sent} events");
    assert!(
        bytes_end * 10 <= bytes_middle * 13,
        "the log levels off: {bytes_middle} bytes after {sent_middle} events, {bytes_end} after {sent}"
    );

    assert_eq!(pageviews(&server, sent as f64).await, Ok(vec![sent as f64]), "every event still counted");
    let (status, _) = server.stop_with("TERM");
    assert!(status.success());
    server.start_again(&args);
    assert_eq!(pageviews(&server, sent as f64).await, Ok(vec![sent as f64]), "and after a restart");
}
