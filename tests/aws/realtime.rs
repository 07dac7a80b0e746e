//! Realtime on `tally query`: it follows the Kinesis stream from 30 minutes ago
//! (`--stream`), so the last 5 and 30 minutes are answered from what the edge put seconds ago,
//! with no consumer running at all; engagement events count as nothing, as in `tally serve`.

use crate::bed::{Bed, QueryServer, ask, data_dir, import_to_stream};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SITE: &str = "live.example";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

fn lines(events: &[(&str, &str, i64)]) -> String {
    let now = jiff::Timestamp::now().as_millisecond();
    let mut out = String::new();
    for (i, (visitor, name, minutes_ago)) in events.iter().enumerate() {
        let mut line = json!({"n": name, "u": format!("https://{SITE}/"), "d": SITE, "visitor": visitor,
                              "timestamp": now - minutes_ago * 60_000, "user_agent": UA,
                              "id": format!("{visitor}-{name}-{i}")});
        if *name == "engagement" {
            line["sd"] = json!(50);
            line["e"] = json!(3_000);
        }
        out += &line.to_string();
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tally_query_answers_realtime_from_the_stream() {
    let bed = Bed::start(2).await;
    let dir = data_dir("realtime", 0);
    tally_core::registry::add_site(&dir, SITE, None).unwrap();
    let key = tally_core::registry::create_key(&dir, &[SITE.to_owned()]).unwrap();
    // Before `tally query` starts: a visit 20 minutes ago, and one an hour ago (out of reach).
    let before = dir.join("before.ndjson");
    std::fs::write(&before, lines(&[("a", "pageview", 20), ("c", "pageview", 60)])).unwrap();
    import_to_stream(&bed.kinesalite.url, &before, &dir, 1);

    // Without `--stream`, a 400 that names it.
    let plain = QueryServer::start(&bed.dynamo.url, &dir, "us-east-1", 1);
    let body = json!({"site_id": SITE, "metrics": ["visitors"], "date_range": "realtime"});
    let refused = ask(&plain.url, &key, &body).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("--stream"), "{error}");
    drop(plain);
    // A stream that is not there: `tally query` says so and stops.
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["query", "--listen", "127.0.0.1:0", "--region", "us-east-1", "--app", "t", "--stand-in-credentials"])
        .args(["--dynamodb-endpoint", &bed.dynamo.url, "--stream", "nope", "--kinesis-endpoint", &bed.kinesalite.url])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--stream nope: no such Kinesis stream"), "{stderr}");

    let server = QueryServer::start_with(
        &bed.dynamo.url,
        &dir,
        "us-east-1",
        1,
        &["--stream", "events", "--kinesis-endpoint", &bed.kinesalite.url],
    );
    // After: b now, with a custom event and an engagement event (which counts as nothing).
    let after = dir.join("after.ndjson");
    std::fs::write(&after, lines(&[("b", "pageview", 1), ("b", "Signup", 1), ("b", "engagement", 0)])).unwrap();
    import_to_stream(&bed.kinesalite.url, &after, &dir, 1);

    let realtime = |range: &str, dimensions: Value| {
        let body = json!({"site_id": SITE, "metrics": ["visitors", "pageviews", "events"], "date_range": range,
                          "dimensions": dimensions});
        let (url, key) = (server.url.clone(), key.clone());
        async move {
            let response = ask(&url, &key, &body).await;
            assert_eq!(response.status(), 200);
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["meta"]["realtime"], json!(true), "{answer}");
            answer["results"].clone()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let half_hour = realtime("30m", json!([])).await;
        if half_hour[0]["metrics"] == json!([2, 2, 3]) {
            break;
        }
        assert!(Instant::now() < deadline, "the last 30 minutes after 60 s: {half_hour}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The last 5 minutes: b alone.
    assert_eq!(realtime("realtime", json!([])).await[0]["metrics"], json!([1, 1, 2]));
    // By minute: a's and b's minutes.
    let by_minute = realtime("30m", json!(["time:minute"])).await;
    let counts: Vec<Value> = by_minute.as_array().unwrap().iter().map(|r| r["metrics"].clone()).collect();
    assert_eq!(counts, vec![json!([1, 1, 1]), json!([1, 1, 2])], "{by_minute}");
}
