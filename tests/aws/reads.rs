//! How many DynamoDB read units one 30-day dashboard load costs on `tally query`: a site made by
//! the query benchmark's generator (`benches/query/generate.py`) put on the stream with `tally
//! import --kinesis-stream`, counted by `tally ingest`, then the dashboard's unfiltered
//! questions asked of `tally query` through the counting proxy (read units as DynamoDB bills
//! them: the stand-in's consumed capacity). A measurement, not a check: run it with
//! `cargo test -p tally-core --test aws read_units_per_dashboard_load -- --ignored --nocapture`
//! (`TALLY_READS_EVENTS` sets the events, default 100,000; needs `python3`).

use crate::bed::{Bed, Consumer, QueryServer, ask, data_dir, stored_totals};
use crate::proxy::Proxy;
use std::process::Command;
use std::time::{Duration, Instant};
use tally_core::aws::dynamo::Tables;

const SITE: &str = "shop.example";
const RANGE: [&str; 2] = ["2026-10-01", "2026-10-31"];

/// The dashboard's unfiltered questions that `tally query` answers today: `visitors` only by
/// time, no exit pages (the query benchmark asks for visitors by every dimension).
const QUERIES: [(&str, &[&str], &[&str]); 10] = [
    ("totals", &["visitors", "pageviews"], &[]),
    ("by day", &["visitors", "pageviews"], &["time:day"]),
    ("by hour", &["visitors", "pageviews"], &["time:hour"]),
    ("top pages", &["pageviews"], &["event:page"]),
    ("top entry pages", &["visits"], &["visit:entry_page"]),
    ("top sources", &["visits"], &["visit:source"]),
    ("top countries", &["visits"], &["visit:country"]),
    ("top devices", &["visits"], &["visit:device"]),
    ("top browsers", &["visits"], &["visit:browser"]),
    ("top OS", &["visits"], &["visit:os"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes minutes; run it by name"]
async fn read_units_per_dashboard_load() {
    let events: u64 = std::env::var("TALLY_READS_EVENTS").map_or(100_000, |n| n.parse().expect("a number of events"));
    let dir = data_dir("reads", 0);
    tally_core::registry::add_site(&dir, SITE, None).unwrap();
    let generated = dir.join("generated");
    std::fs::create_dir_all(&generated).unwrap();
    let generator = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/query/generate.py");
    let status = Command::new("python3")
        .arg(generator)
        .args(["--events", &events.to_string(), "--out"])
        .arg(&generated)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the generator failed");

    let bed = Bed::start(2).await;
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["import", "--no-progress", "--kinesis-stream", "events", "--region", "us-east-1"])
        .args(["--kinesis-endpoint", &bed.kinesalite.url, "--stand-in-credentials"])
        .arg(generated.join("events.ndjson"))
        .arg("--data-dir")
        .arg(&dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stdout);
    let accepted: i64 = summary.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("imported N events");
    eprintln!("{accepted} events put on the stream in {:.1} s", started.elapsed().as_secs_f64());

    let consumer = Consumer::start(&bed.kinesalite.url, &bed.dynamo.url, "events", &dir, "w1");
    let table = Tables::named("t", "any").aggregates;
    let deadline = Instant::now() + Duration::from_secs(1_800);
    loop {
        let counted = stored_totals(&bed.dynamodb, &table).await.get(SITE).map_or(0, |c| c.events);
        if counted == accepted {
            break;
        }
        assert!(Instant::now() < deadline, "only {counted} of {accepted} events counted after 30 minutes");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!("counted by tally ingest after {:.1} s", started.elapsed().as_secs_f64());
    assert!(consumer.terminate().success());

    let proxy = Proxy::start(&bed.dynamo.url, 0, &[], "").await;
    let key = tally_core::registry::create_key(&dir, &[SITE.to_owned()]).unwrap();
    let server = QueryServer::start(&proxy.url, &dir, "us-east-1", 1);
    eprintln!("query | read units | answer rows");
    let mut total = 0.0;
    for (name, metrics, dimensions) in QUERIES {
        let before = proxy.counts().read_units();
        let body =
            serde_json::json!({ "site_id": SITE, "metrics": metrics, "dimensions": dimensions, "date_range": RANGE });
        let response = ask(&server.url, &key, &body).await;
        assert_eq!(response.status(), 200, "{name}");
        let rows = response.json::<serde_json::Value>().await.unwrap()["results"].as_array().map_or(0, Vec::len);
        let units = proxy.counts().read_units() - before;
        total += units;
        eprintln!("{name} | {units:.1} | {rows}");
    }
    eprintln!(
        "one dashboard load of {accepted} events over 30 days: {total:.1} read units ({:.1} per 1,000 events); requests {:?}",
        total * 1_000.0 / accepted as f64,
        proxy.counts().forwarded
    );
    let _ = std::fs::remove_dir_all(dir);
}
