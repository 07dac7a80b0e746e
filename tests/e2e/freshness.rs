//! `meta.data_complete_until`: up to when the numbers include every accepted event. It never
//! claims an event that is not counted yet, and once everything in the log is counted it moves
//! on with the clock, so an idle site's data reads as complete up to now.

use crate::harness::{TestServer, Visitor, eventually, pageview};
use serde_json::{Value, json};
use std::time::Duration;

const SITE: &str = "fresh.example";

/// The answer's `data_complete_until` in ms (0 while nothing is counted yet).
fn until_ms(answer: &Value) -> i64 {
    answer["meta"]["data_complete_until"].as_str().map_or(0, |t| t.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_never_runs_ahead_of_the_counts_and_follows_the_clock_when_idle() {
    // Flushes at least 3 s apart: an event posted right after one stays uncounted a while.
    let server = TestServer::start_with("freshness", &[SITE], &["--flush-interval-ms", "3000"]);
    let totals = json!({"site_id": SITE, "metrics": ["pageviews"], "date_range": "day"});
    let posted = now_ms();
    assert_eq!(server.post_event(pageview(SITE, "/a").to_string(), &Visitor::new(1).headers()).await.status, 202);
    let counted = eventually(
        "the first page view counted",
        Duration::from_secs(15),
        async || server.query(&totals).await.unwrap(),
        |a| a["results"][0]["metrics"][0] == 1,
    )
    .await;
    assert!(until_ms(&counted) >= posted, "{counted}");

    // Idle, with everything counted: the freshness follows the clock.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (before, idle, after) = (now_ms(), server.query(&totals).await.unwrap(), now_ms());
    assert!(until_ms(&idle) >= before && until_ms(&idle) <= after, "{idle} not between {before} and {after}");

    // A page view not counted yet: the freshness stays before its arrival until it is counted.
    // (The freshness is read before the answer is computed, so an answer may count more than
    // its freshness says, never less.)
    let second = now_ms();
    assert_eq!(server.post_event(pageview(SITE, "/b").to_string(), &Visitor::new(2).headers()).await.status, 202);
    let mut saw_pending = false;
    for round in 0.. {
        assert!(round < 150, "the second page view was not counted within 15 s");
        let answer = server.query(&totals).await.unwrap();
        let counted = answer["results"][0]["metrics"][0] == 2;
        if until_ms(&answer) >= second {
            assert!(counted, "claims a page view it does not count yet: {answer}");
            break;
        }
        saw_pending |= !counted;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_pending, "the second page view was counted before the first query (flush interval 3 s)");
}
