//! `tally query` and `tally ingest` as an operator meets them: neither starts on a data
//! directory without a registry (an empty one would answer every key 401 and drop every event),
//! and `tally query`'s health says whether DynamoDB answers; one started without a segment
//! bucket says so to the questions only the segments answer.

use crate::bed::{QueryServer, data_dir};
use crate::stand_ins::{Dynoxide, settings};
use std::process::Command;
use tally_core::aws::dynamo::Tables;

#[test]
fn query_and_ingest_refuse_a_data_directory_without_a_registry() {
    let dir = data_dir("no-registry", 0);
    std::fs::create_dir_all(&dir).unwrap();
    for args in [
        vec!["query", "--region", "us-east-1", "--listen", "127.0.0.1:0"],
        vec![
            "ingest",
            "--stream",
            "events",
            "--region",
            "us-east-1",
            "--snapshot-bucket",
            "b",
            "--segment-bucket",
            "s",
        ],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(&args)
            .arg("--data-dir")
            .arg(&dir)
            .args(["--dynamodb-endpoint", "http://127.0.0.1:9", "--stand-in-credentials"])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "tally {} started without a registry", args[0]);
        assert!(stderr.contains("registry.json") && stderr.contains("tally site add"), "tally {}: {stderr}", args[0]);
    }
    assert!(!dir.join("registry.json").exists(), "no empty registry was created");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_segment_bucket_funnels_and_filters_are_a_400_that_names_it() {
    let dynamo = Dynoxide::start();
    let dir = data_dir("no-segments", 2);
    tally_core::registry::add_site(&dir, "a.example", None).unwrap();
    for goal in ["Signup", "Purchase"] {
        let goal = tally_core::registry::Goal::Event { event_name: goal.into(), currency: None };
        tally_core::registry::add_goal(&dir, "a.example", goal).unwrap();
    }
    let key = tally_core::registry::create_key(&dir, &["a.example".to_owned()]).unwrap();
    let client = tally_core::aws::clients::dynamodb(&settings(None, Some(&dynamo.url))).await;
    Tables::named("t", "us-east-1").create_if_missing(&client).await.unwrap();
    let server = QueryServer::start_without_segments(&dynamo.url, &dir);
    let http = reqwest::Client::new();
    for (path, body) in [
        (
            "/api/v2/funnel",
            serde_json::json!({"site_id": "a.example", "date_range": "7d", "steps": ["Signup", "Purchase"]}),
        ),
        (
            "/api/v2/query",
            serde_json::json!({"site_id": "a.example", "metrics": ["visitors"], "date_range": "7d",
                "filters": [["is", "event:page", ["/"]]]}),
        ),
    ] {
        let response = http.post(format!("{}{path}", server.url)).bearer_auth(&key).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("--segment-bucket"), "{path}: {text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_health_says_whether_dynamodb_answers_and_the_public_files_are_served() {
    let dynamo = Dynoxide::start();
    let dir = data_dir("query-health", 1);
    let health = |url: String| async move {
        let response = reqwest::get(format!("{url}/api/health")).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };

    // Before the tables exist, and with DynamoDB unreachable: failing.
    let server = QueryServer::start(&dynamo.url, &dir, "us-east-1", 1);
    let (status, body) = health(server.url.clone()).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("failing")), "{body}");
    let unreachable = QueryServer::start("http://127.0.0.1:9", &dir, "us-east-1", 1);
    let (status, body) = health(unreachable.url.clone()).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("failing")), "{body}");

    // Once the tables exist: ok.
    let client = tally_core::aws::clients::dynamodb(&settings(None, Some(&dynamo.url))).await;
    Tables::named("t", "us-east-1").create_if_missing(&client).await.unwrap();
    let (status, body) = health(server.url.clone()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");

    // The public files: the tracking script (the same bytes as everywhere) and the dashboard.
    let script = reqwest::get(format!("{}/js/tally.js", server.url)).await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.text().await.unwrap(), tally_model::tracker::SCRIPT);
    let page = reqwest::get(format!("{}/", server.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/dashboard/app.js"));
    let _ = std::fs::remove_dir_all(dir);
}
