//! How many DynamoDB read units one 30-day dashboard load costs on `tally query`: a site made by
//! the query benchmark's generator (`benches/query/generate.py`) put on the stream with `tally
//! import --kinesis-stream`, counted by `tally ingest`, then the dashboard's unfiltered
//! questions (the query benchmark's) asked of `tally query` through the counting proxy (read
//! units as DynamoDB bills them: the stand-in's consumed capacity), and every answer compared
//! with `tally serve`'s after `tally import` of the same file; twice: right after `tally ingest`
//! counted the events (no day folded yet: a backfill's first minute), and once its folds ran.
//! A measurement, run it with
//! `cargo test -p tally-core --test aws read_units_per_dashboard_load -- --ignored --nocapture`
//! (`TALLY_READS_EVENTS` sets the events, default 100,000; `TALLY_READS_INTERVALS_MS=1000,60000`
//! the consumer's flush intervals, one run each; needs `python3`).

use crate::bed::{
    Bed, Consumer, DASHBOARD, DASHBOARD_LOAD, QueryServer, Serve, dashboard_answer, data_dir, stored_totals,
    unfolded_days,
};
use crate::proxy::Proxy;
use std::process::Command;
use std::time::{Duration, Instant};
use tally_core::aws::dynamo::Tables;

const SITE: &str = "shop.example";
const RANGE: [&str; 2] = ["2026-10-01", "2026-10-31"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes minutes; run it by name"]
async fn read_units_per_dashboard_load() {
    let events: u64 = std::env::var("TALLY_READS_EVENTS").map_or(100_000, |n| n.parse().expect("a number of events"));
    let intervals: Vec<u64> = std::env::var("TALLY_READS_INTERVALS_MS")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .map(|ms| ms.trim().parse().expect("flush intervals in ms, comma-separated"))
        .collect();
    let mut curve = Vec::new();
    for interval in intervals {
        let (fresh, folded) = measure(events, 86_400, interval).await;
        curve.push(format!("{interval:>8} ms | {fresh:.1} | {folded:.1}"));
        if events >= 1_000_000 {
            assert!(folded <= 1_000.0, "a dashboard load after folds read {folded} units (and {fresh} before)");
        }
    }
    eprintln!("flush interval | read units right after ingest | after folds\n{}", curve.join("\n"));
}

/// The benchmark on 3,000 events with a fold interval of a second, so it cannot rot: every
/// answer the same as `tally serve`'s, before and after folds, and folds never make a load
/// dearer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_benchmark_smoke() {
    let (fresh, folded) = measure(3_000, 1, 200).await;
    assert!(folded <= fresh, "{folded} read units after folds, {fresh} before");
}

/// Generates `events`, puts them through the pipeline with the given fold and flush intervals,
/// and returns the read units of a dashboard load right after counting and after folds.
async fn measure(events: u64, fold_interval_s: u64, flush_interval_ms: u64) -> (f64, f64) {
    let dir = data_dir(&format!("reads-{events}-{flush_interval_ms}"), 0);
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
    let summary = crate::bed::import_to_stream(&bed.kinesalite.url, &generated.join("events.ndjson"), &dir, 1);
    let accepted: i64 = summary.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("imported N events");
    eprintln!("{accepted} events put on the stream in {:.1} s", started.elapsed().as_secs_f64());

    // The production fold settings: a day folds once it has 64 deltas or 64 KiB of them (or a
    // day), so some of the last deltas stay unfolded, as they would in production.
    let fold = fold_interval_s.to_string();
    let args = ["--fold-interval-s", fold.as_str()];
    let consumer =
        Consumer::with_args_at(&bed.kinesalite.url, &bed.dynamo.url, "events", &dir, "w1", flush_interval_ms, &args);
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

    // The same file imported into the embedded backend, for the answers to compare with.
    let embedded = data_dir(&format!("reads-embedded-{events}-{flush_interval_ms}"), 0);
    tally_core::registry::add_site(&embedded, SITE, None).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["import", "--no-progress"])
        .arg(generated.join("events.ndjson"))
        .arg("--data-dir")
        .arg(&embedded)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the embedded import failed");
    let serve_key = tally_core::registry::create_key(&embedded, &[SITE.to_owned()]).unwrap();
    let serve = Serve::start(&embedded);

    let proxy = Proxy::start(&bed.dynamo.url, 0, &[], "").await;
    let key = tally_core::registry::create_key(&dir, &[SITE.to_owned()]).unwrap();
    let server = QueryServer::start(&proxy.url, &dir, "us-east-1", 1);
    let unfolded = unfolded_days(&bed.dynamodb, &table).await;
    eprintln!("right after counting ({unfolded} days with unfolded deltas):");
    let fresh = dashboard_load(&proxy, (&server.url, &key), (&serve.url, &serve_key), accepted).await;

    // Folds run once a day's deltas are older than the fold margin (60 s at the default fold
    // interval): the load a dashboard sees from then on.
    let consumer =
        Consumer::with_args_at(&bed.kinesalite.url, &bed.dynamo.url, "events", &dir, "w1", flush_interval_ms, &args);
    // A day whose deltas are fewer than 64 and smaller than 64 KiB stays unfolded until the fold
    // interval: wait past the margin, then until the count holds still.
    let started_folding = Instant::now();
    let settle = Duration::from_secs(fold_interval_s.div_ceil(4).clamp(1, 60) + 30);
    let mut counts = vec![unfolded_days(&bed.dynamodb, &table).await];
    while counts.last() != Some(&0)
        && !(started_folding.elapsed() > settle && counts.iter().rev().take(4).all(|n| Some(n) == counts.last()))
    {
        assert!(started_folding.elapsed() < Duration::from_secs(600), "folds did not settle: {counts:?}");
        tokio::time::sleep(Duration::from_secs(5)).await;
        counts.push(unfolded_days(&bed.dynamodb, &table).await);
    }
    let status = consumer.terminate();
    assert!(status.success(), "tally ingest ended with {status:?} on SIGTERM (see its log above)");
    let unfolded = counts.last().copied().unwrap_or_default();
    eprintln!("after folds ({unfolded} days with unfolded deltas: fewer than 64 and under 64 KiB):");
    // A new `tally query`: the first one's answers are cached for up to 5 s.
    drop(server);
    let server = QueryServer::start(&proxy.url, &dir, "us-east-1", 1);
    let folded = dashboard_load(&proxy, (&server.url, &key), (&serve.url, &serve_key), accepted).await;
    eprintln!(
        "one dashboard load ({DASHBOARD_LOAD} questions) of {accepted} events over 30 days: {fresh:.1} read units \
         right after ingest, {folded:.1} after folds"
    );
    let _ = std::fs::remove_dir_all(embedded);
    let _ = std::fs::remove_dir_all(dir);
    (fresh, folded)
}

/// Asks the dashboard's questions of `tally query` through the proxy and of `tally serve`,
/// asserts the answers are the same, prints each question's read units and returns those of
/// one dashboard load (the first `DASHBOARD_LOAD` questions).
async fn dashboard_load(proxy: &Proxy, query: (&str, &str), serve: (&str, &str), events: i64) -> f64 {
    eprintln!("query | read units | answer rows | same answer as tally serve");
    let mut total = 0.0;
    let requests_before = proxy.counts().forwarded.get("Query").copied().unwrap_or(0);
    for (i, (name, metrics, dimensions, limit)) in DASHBOARD.into_iter().enumerate() {
        let question = (metrics, dimensions, limit);
        let before = proxy.counts().read_units();
        let answer = dashboard_answer(query.0, query.1, SITE, RANGE, question).await;
        let units = proxy.counts().read_units() - before;
        let same = answer == dashboard_answer(serve.0, serve.1, SITE, RANGE, question).await;
        let rows = answer.as_array().map_or(0, Vec::len);
        eprintln!("{name} | {units:.1} | {rows} | {}", if same { "yes" } else { "NO" });
        assert!(same, "{name}: tally query and tally serve differ");
        if i < DASHBOARD_LOAD {
            total += units;
        }
    }
    let requests = proxy.counts().forwarded.get("Query").copied().unwrap_or(0) - requests_before;
    eprintln!(
        "one dashboard load ({DASHBOARD_LOAD} questions): {total:.1} read units ({:.2} per 1,000 events); \
         {requests} Query requests for all {} questions",
        total * 1_000.0 / events as f64,
        DASHBOARD.len()
    );
    total
}
