//! A measurement, not a check (ignored by default): the CPU time workerd spends per 25-event
//! request, against the Workers free plan's 10 ms per request. It reads workerd's own CPU
//! counters (/proc) around 400 sequential requests, and subtracts the same number of
//! `GET /api/health` requests, which cost the HTTP handling but none of our work. The queue
//! consumer's forwarding to kinesalite runs in the same process and is included.
//!
//! Run: `cargo test -p tally-core --test edge cpu_per_batch -- --ignored --nocapture`

use crate::stand_ins::Kinesalite;
use crate::stream;
use crate::worker::Worker;
use serde_json::json;
use std::time::Duration;

const REQUESTS: usize = 400;

/// CPU seconds (user + system) used so far by every workerd process of the Worker.
fn workerd_cpu_seconds(worker: &Worker) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for pid in worker.workerd_pids() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses: utime is the 12th, stime the 13th.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        total += (field(11) + field(12)) / ticks_per_second;
    }
    total
}

#[tokio::test]
#[ignore = "a measurement: run it on purpose"]
async fn cpu_per_batch() {
    let kinesalite = Kinesalite::start();
    let kinesis = stream::create(&kinesalite.url).await;
    let worker = Worker::start(&kinesalite.url, &[("shop.example", r#"{"rate_limit_per_minute": 6000000}"#)]).await;
    let client = reqwest::Client::new();
    let batch: Vec<_> = (0..25)
        .map(|i| json!({ "name": "pageview", "domain": "shop.example", "url": format!("https://shop.example/p/{i}?utm_source=news"), "referrer": "https://www.google.com/" }))
        .collect();
    let post = async |client: &reqwest::Client| {
        let answer = client
            .post(format!("{}/api/event", worker.url))
            .header("content-type", "application/json")
            .header("user-agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15")
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
    };
    // Warm up: salts fetched, settings cached, code compiled.
    for _ in 0..50 {
        post(&client).await;
    }
    stream::wait_for_events(&kinesis, 50 * 25, Duration::from_secs(30)).await;

    let before = workerd_cpu_seconds(&worker);
    for _ in 0..REQUESTS {
        client.get(format!("{}/api/health", worker.url)).send().await.unwrap();
    }
    let health = workerd_cpu_seconds(&worker) - before;

    let before = workerd_cpu_seconds(&worker);
    for _ in 0..REQUESTS {
        post(&client).await;
    }
    let arrived = stream::wait_for_events(&kinesis, (50 + REQUESTS) * 25, Duration::from_secs(60)).await;
    let ingest = workerd_cpu_seconds(&worker) - before;
    assert_eq!(stream::event_ids(&arrived).len(), (50 + REQUESTS) * 25);

    let per_request_ms = |seconds: f64| seconds * 1000.0 / REQUESTS as f64;
    let ours = per_request_ms(ingest - health);
    println!(
        "workerd CPU per request: 25-event POST {:.2} ms, health GET {:.2} ms; ours (difference) {ours:.2} ms \
         = {:.2} of the free plan's 10 ms",
        per_request_ms(ingest),
        per_request_ms(health),
        ours / 10.0
    );
}
