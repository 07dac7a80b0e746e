//! `tally serve --demo`: a fresh data directory filled with three sites' 30 days of traffic
//! through the import path, a key printed for the dashboard, live visits that keep arriving,
//! the same data (and a new key) on a restart, and a data directory with other sites refused.

use crate::harness::{ServerProcess, TempDir, eventually, http_client, is_api_key, run_cli, site_add};
use serde_json::{Value, json};
use std::time::Duration;

const SITES: [&str; 3] = ["blog.example", "docs.example", "shop.example"];

/// The key the demo printed, once it printed its lines.
async fn demo_key(server: &ServerProcess) -> String {
    // They come once the history is counted.
    let deadline = Duration::from_secs(120);
    let lines = eventually("the demo's lines", deadline, async || server.stdout_lines(), |l| l.len() >= 2).await;
    assert_eq!(lines[0], format!("demo dashboard: {}/", server.base()), "{lines:?}");
    let key = lines[1].strip_prefix("demo key: ").unwrap_or_else(|| panic!("no key line: {lines:?}")).to_owned();
    assert!(is_api_key(&key), "{key}");
    key
}

async fn post(server: &ServerProcess, key: &str, path: &str, body: &Value) -> Value {
    let response =
        http_client().post(format!("{}{path}", server.base())).bearer_auth(key).json(body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{path} {body}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn metrics(answer: &Value) -> Vec<i64> {
    answer["results"][0]["metrics"].as_array().unwrap().iter().map(|m| m.as_i64().unwrap_or(-1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_a_fresh_directory_and_keeps_visits_coming() {
    let dir = TempDir::new("demo");
    let mut server = ServerProcess::spawn(dir.path(), &["--demo"]);
    let key = demo_key(&server).await;

    // The key reads exactly the three demo sites.
    let sites = http_client().get(format!("{}/api/v1/sites", server.base())).bearer_auth(&key).send().await.unwrap();
    let sites: Value = sites.json().await.unwrap();
    let domains: Vec<&str> = sites["sites"].as_array().unwrap().iter().map(|s| s["domain"].as_str().unwrap()).collect();
    assert_eq!(domains, SITES);

    // Every site has traffic on each of the 30 days before today, of every kind.
    let mut last_month = Vec::new();
    for site in SITES {
        let by_day = json!({"site_id": site, "metrics": ["visitors", "pageviews"], "date_range": "30d",
            "dimensions": ["time:day"], "include": {"time_labels": true}});
        let answer = post(&server, &key, "/api/v2/query", &by_day).await;
        let days = answer["results"].as_array().unwrap();
        let busy = days.iter().filter(|row| row["metrics"][0].as_i64().unwrap() > 0).count();
        assert_eq!(busy, 30, "{site}: days with visitors: {answer}");
        let totals = json!({"site_id": site, "metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate"],
            "date_range": "30d"});
        let totals = metrics(&post(&server, &key, "/api/v2/query", &totals).await);
        assert!(totals[0] > 1_000 && totals[2] > totals[1] && (20..80).contains(&totals[4]), "{site}: {totals:?}");
        last_month.push(totals);
        for dimension in ["visit:source", "visit:country", "visit:device", "event:page", "visit:utm_campaign"] {
            let rows =
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "30d", "dimensions": [dimension]});
            let rows = post(&server, &key, "/api/v2/query", &rows).await;
            assert!(rows["results"].as_array().unwrap().len() >= 2, "{site} by {dimension}: {rows}");
        }
    }
    // The shop's goals convert, with revenue, and its funnel narrows step by step.
    let purchases = json!({"site_id": "shop.example", "metrics": ["visitors", "total_revenue"], "date_range": "30d",
        "filters": [["is", "event:goal", ["Purchase"]]]});
    let purchases = post(&server, &key, "/api/v2/query", &purchases).await;
    assert!(purchases["results"][0]["metrics"][0].as_i64().unwrap() > 0, "{purchases}");
    assert_eq!(purchases["results"][0]["metrics"][1]["currency"], "EUR", "{purchases}");
    let funnel = post(
        &server,
        &key,
        "/api/v2/funnel",
        &json!({"site_id": "shop.example", "date_range": "30d", "funnel": "Checkout"}),
    )
    .await;
    let steps: Vec<i64> = funnel["steps"].as_array().unwrap().iter().map(|s| s["visitors"].as_i64().unwrap()).collect();
    assert!(steps.len() == 4 && steps.windows(2).all(|w| w[0] >= w[1]) && steps[3] > 0, "{funnel}");

    // Live visits keep arriving through the ingest endpoint: the realtime count of events grows.
    let realtime = json!({"site_id": "shop.example", "metrics": ["events"], "date_range": "realtime"});
    let before = metrics(&post(&server, &key, "/api/v2/query", &realtime).await)[0];
    eventually(
        "live demo events",
        Duration::from_secs(30),
        async || metrics(&post(&server, &key, "/api/v2/query", &realtime).await)[0],
        |now| *now > before,
    )
    .await;

    // Started again on its own directory: the same history, and a new key.
    assert!(server.signal_and_wait("TERM").success());
    let server = ServerProcess::spawn(dir.path(), &["--demo"]);
    let again = demo_key(&server).await;
    assert_ne!(again, key);
    for (site, before) in SITES.iter().zip(&last_month) {
        let totals = json!({"site_id": site, "metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate"],
            "date_range": "30d"});
        assert_eq!(&metrics(&post(&server, &again, "/api/v2/query", &totals).await), before, "{site}");
    }
}

#[test]
fn the_demo_refuses_a_directory_with_other_sites() {
    let dir = TempDir::new("demo-refused");
    site_add(dir.path(), "mine.example", None);
    let out = run_cli(&["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("--demo fills a fresh data directory") && out.stderr.contains("mine.example"),
        "{}",
        out.stderr
    );
}
