//! The answer cache under live ingest: answers over closed days stay cached while events keep
//! arriving for today, today's answers follow every new event, and a cached answer equals a fresh
//! computation of the same question.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, chrome_ua, pageview, query_body, settle, tally_ok};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const SITE: &str = "cached.example";

#[tokio::test]
async fn closed_days_stay_cached_while_today_follows_live_events() {
    let server = TestServer::start_with("cache", &[SITE], &["--ingest-rate-per-client", "0"]);
    // History: 40 events a day for the 5 days before today, through the running server.
    let now = Timestamp::now();
    let mut lines = String::new();
    for day in 1..=5i64 {
        for i in 0..40 {
            let at = now - SignedDuration::from_hours(24 * day) - SignedDuration::from_secs(i);
            lines += &json!({"name": "pageview", "url": format!("https://{SITE}/h{i}"), "domain": SITE,
                "timestamp": at.to_string(), "user_agent": chrome_ua(1), "visitor": format!("v{day}-{i}")})
            .to_string();
            lines.push('\n');
        }
    }
    let file = server.data_dir().join("history.ndjson");
    std::fs::write(&file, lines).unwrap();
    let data = server.data_dir().to_str().unwrap().to_owned();
    let out = tally_ok(&["import", file.to_str().unwrap(), "--data-dir", &data, "--no-progress"]);
    assert!(out.contains("imported 200 events"), "{out}");

    let week = query_body(SITE, &["visitors", "pageviews"], json!({"date_range": "7d", "dimensions": ["event:page"]}));
    let today = query_body(SITE, &["pageviews"], json!({}));
    let first = server.query(&week).await.unwrap();
    assert_eq!(first["meta"]["cache"], "miss");
    let mut sent = 0u32;
    let mut hits = 0;
    for round in 0..8u32 {
        // Live traffic for today, then the dashboard's two questions.
        for _ in 0..5 {
            let answer = server.post_event(pageview(SITE, "/live").to_string(), &Visitor::new(sent).headers()).await;
            assert_eq!(answer.status, 202);
            sent += 1;
        }
        let again = server.query(&week).await.unwrap();
        assert_eq!(again["results"], first["results"], "round {round}: the closed days did not change");
        hits += usize::from(again["meta"]["cache"] == "hit");
        let expected = f64::from(sent);
        let live =
            settle(POLL_DEADLINE, || server.totals(&today), |t| t.as_ref().is_ok_and(|t| t.first() == Some(&expected)))
                .await;
        assert!(live.is_ok(), "round {round}: today follows every event: {live:?}");
    }
    assert_eq!(hits, 8, "every repeat over closed days came from the cache");
    // A cached answer equals a fresh computation (another page size is another cache key).
    let mut fresh_body = week.clone();
    fresh_body["pagination"] = json!({"limit": 9999});
    let fresh = server.query(&fresh_body).await.unwrap();
    assert_eq!(fresh["meta"]["cache"], "miss");
    assert_eq!(fresh["results"], first["results"]);
    let (status, health) = server.get("/api/health", None).await;
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(status, 200);
    assert!(health["query_cache"]["hits"].as_u64().unwrap() >= 8, "{health}");
    assert!(health["query_cache"]["bytes"].as_u64().unwrap() > 0, "{health}");
    // One load per miss here (no two identical misses at once), each timed.
    let cache = &health["query_cache"];
    assert_eq!(cache["loads"], cache["misses"], "{health}");
    let (mean, max) = (cache["load_ms_mean"].as_f64().unwrap(), cache["load_ms_max"].as_f64().unwrap());
    assert!(mean > 0.0 && max >= mean, "{health}");
}

/// A flush of engagement events alone changes segment rows only: an answer that reads them
/// (`scroll_depth`, `time_on_page`), cached before, is computed again after it.
#[tokio::test]
async fn an_engagement_event_refreshes_cached_engagement_answers() {
    let server = TestServer::start("cache-engagement", &[SITE]);
    let visitor = Visitor::new(7);
    let send = async |event: Value| {
        assert_eq!(server.post_event(event.to_string(), &visitor.headers()).await.status, 202);
        let head = server.get("/api/health", None).await.1;
        let head = serde_json::from_str::<Value>(&head).unwrap()["log_head"].as_u64().unwrap();
        settle(
            POLL_DEADLINE,
            async || {
                let health: Value = serde_json::from_str(&server.get("/api/health", None).await.1).unwrap();
                health["log_offset_applied"].as_u64().unwrap()
            },
            |applied| *applied >= head,
        )
        .await
        .unwrap();
    };
    let engaged = query_body(SITE, &["scroll_depth", "time_on_page"], json!({"dimensions": ["event:page"]}));
    let metrics = |answer: &Value| answer["results"][0]["metrics"].clone();
    send(pageview(SITE, "/")).await;
    let before = server.query(&engaged).await.unwrap();
    assert_eq!(metrics(&before), json!([null, null]), "{before}");
    assert_eq!(server.query(&engaged).await.unwrap()["meta"]["cache"], "hit");
    send(json!({"n": "engagement", "u": format!("https://{SITE}/"), "d": SITE, "sd": 50, "e": 5000})).await;
    let after = server.query(&engaged).await.unwrap();
    assert_eq!(metrics(&after), json!([50, 5]), "{after}");
    assert_eq!(after["meta"]["cache"], "miss", "{after}");
}
