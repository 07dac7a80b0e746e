//! Retention: under steady traffic with a short log retention the log file stops growing,
//! while the aggregates keep every counted event (totals unchanged, also after a restart, which
//! replays only what the log still holds); with an aggregate retention, days past it are
//! deleted from both tiers and their files, and later days answer as before.

use crate::harness::{
    POLL_DEADLINE, ServerProcess, TempDir, TestServer, Visitor, chrome_ua, http_client, key_create, pageview,
    query_body, settle, site_add, tally_ok,
};
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

#[tokio::test]
async fn aggregates_past_their_retention_are_deleted_and_later_days_answer_as_before() {
    let dir = TempDir::new("aggregate-retention");
    site_add(dir.path(), SITE, None);
    let key = key_create(dir.path(), SITE);
    let now = jiff::Timestamp::now();
    let old = now - jiff::SignedDuration::from_hours(10 * 24);
    let recent = now - jiff::SignedDuration::from_mins(5);
    let mut lines = String::new();
    for (at, n) in [(old, 20), (recent, 15)] {
        for i in 0..n {
            lines += &json!({
                "name": "pageview", "url": format!("https://{SITE}/p{i}"), "domain": SITE,
                "timestamp": at.to_string(), "user_agent": chrome_ua(1), "visitor": format!("v{i}"),
            })
            .to_string();
            lines.push('\n');
        }
    }
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, lines).unwrap();
    let data = dir.path().to_str().unwrap();
    let out = tally_ok(&["import", file.to_str().unwrap(), "--data-dir", data, "--no-progress"]);
    assert!(out.contains("imported 35 events"), "{out}");
    let old_day = old.to_string()[..10].to_owned();
    let files_of_old_day = || {
        let mut found = 0;
        for site_dir in std::fs::read_dir(dir.path().join("store.segments")).unwrap() {
            for generation in std::fs::read_dir(site_dir.unwrap().path()).unwrap() {
                for file in std::fs::read_dir(generation.unwrap().path()).unwrap() {
                    found += usize::from(file.unwrap().file_name().to_string_lossy().starts_with(&old_day));
                }
            }
        }
        found
    };
    assert!(files_of_old_day() > 0, "the import persisted the old day's segments");

    let server = ServerProcess::spawn(dir.path(), &["--aggregate-retention", "3d"]);
    let client = http_client();
    let ask = |range: Value, filtered: bool| {
        let mut body = json!({"site_id": SITE, "metrics": ["pageviews"], "date_range": range});
        if filtered {
            // A filter every event passes: answered by the segments.
            body["filters"] = json!([["is_not", "visit:country", ["ZZ"]]]);
        }
        let request = client.post(format!("{}/api/v2/query", server.base())).bearer_auth(&key).json(&body);
        async move {
            let answer: Value = request.send().await.unwrap().json().await.unwrap();
            answer["results"][0]["metrics"][0].as_f64()
        }
    };
    let old_range = json!([old_day, old_day]);
    let gone = settle(POLL_DEADLINE, || ask(old_range.clone(), false), |v| *v == Some(0.0)).await;
    assert_eq!(gone, Ok(Some(0.0)), "the old day's rollups are deleted; stderr:\n{}", server.stderr());
    assert_eq!(ask(old_range.clone(), true).await, Some(0.0), "and its segments");
    assert_eq!(files_of_old_day(), 0, "and their files");
    let today = json!([recent.to_string()[..10].to_owned(), now.to_string()[..10].to_owned()]);
    assert_eq!(ask(today.clone(), false).await, Some(15.0), "recent days answer as before (rollups)");
    assert_eq!(ask(today, true).await, Some(15.0), "and (segments)");
}
