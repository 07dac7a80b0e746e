//! Realtime answers: the last 5 (or 30) minutes of live events, counted the moment they are
//! acknowledged, by minute if asked, and still there after a restart (read back from the log).

use crate::harness::{TestServer, Visitor, pageview};
use serde_json::{Value, json};

const SITE: &str = "live.example";

fn body(range: &str, dimensions: &[&str]) -> Value {
    json!({"site_id": SITE, "metrics": ["visitors", "pageviews", "events"], "date_range": range, "dimensions": dimensions})
}

#[tokio::test]
async fn current_visitors_are_counted_at_once_and_survive_a_restart() {
    let mut server = TestServer::start("realtime", &[SITE]);
    for n in 0..3u32 {
        for _ in 0..2 {
            let answer = server.post_event(pageview(SITE, "/").to_string(), &Visitor::new(n).headers()).await;
            assert_eq!(answer.status, 202);
        }
    }
    let signup = json!({"name": "Signup", "url": format!("https://{SITE}/"), "domain": SITE});
    assert_eq!(server.post_event(signup.to_string(), &Visitor::new(0).headers()).await.status, 202);

    // No flush to wait for: the answer counts what was just acknowledged.
    let now = server.query(&body("realtime", &[])).await.unwrap();
    assert_eq!(now["results"][0]["metrics"], json!([3, 6, 7]), "{now}");
    assert_eq!(now["meta"]["realtime"], true);
    let by_minute = server.query(&body("30m", &["time:minute"])).await.unwrap();
    let rows = by_minute["results"].as_array().unwrap();
    let events: u64 = rows.iter().map(|r| r["metrics"][2].as_u64().unwrap()).sum();
    assert_eq!(events, 7, "{by_minute}");
    assert!(rows.iter().all(|r| r["dimensions"][0].as_str().unwrap().ends_with(":00")), "{by_minute}");

    let (status, text) = server
        .query_raw(server.key(SITE), &json!({"site_id": SITE, "metrics": ["bounce_rate"], "date_range": "realtime"}))
        .await;
    assert_eq!(status, 400, "{text}");

    // Every minute of the half hour, with `include.time_labels`; the rows' minutes among them.
    let mut labelled = body("30m", &["time:minute"]);
    labelled["include"] = json!({"time_labels": true, "total_rows": true});
    let labelled = server.query(&labelled).await.unwrap();
    let labels: Vec<&str> =
        labelled["meta"]["time_labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(labels.len(), 31, "{labelled}");
    assert!(labels.windows(2).all(|w| w[0] < w[1]), "{labels:?}");
    assert!(rows.iter().all(|r| labels.contains(&r["dimensions"][0].as_str().unwrap())), "{labelled}");
    assert_eq!(labelled["meta"]["total_rows"], rows.len(), "{labelled}");
    // What realtime cannot do is a 400, never ignored.
    for refused in [json!({"comparisons": {"mode": "previous_period"}}), json!({"time_labels": true, "nonsense": true})]
    {
        let mut asked = body("30m", &["time:minute"]);
        asked["include"] = refused;
        let (status, text) = server.query_raw(server.key(SITE), &asked).await;
        assert_eq!(status, 400, "{asked}: {text}");
    }
    let mut unlabelled = body("realtime", &[]);
    unlabelled["include"] = json!({"time_labels": true});
    assert_eq!(server.query_raw(server.key(SITE), &unlabelled).await.0, 400);
    let mut paged = body("realtime", &[]);
    paged["pagination"] = json!({"limit": 5});
    assert_eq!(server.query_raw(server.key(SITE), &paged).await.0, 400);

    let (exit, _) = server.stop_with("TERM");
    assert!(exit.success());
    server.start_again(&[]);
    let after = server.query(&body("realtime", &[])).await.unwrap();
    assert_eq!(after["results"][0]["metrics"], json!([3, 6, 7]), "read back from the log: {after}");
}
