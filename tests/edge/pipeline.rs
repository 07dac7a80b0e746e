//! The whole cloud pipeline behind the Worker: tracking requests → Worker → Queue → Kinesis →
//! `tally ingest` → DynamoDB → `tally query`. A proxy in front of kinesalite loses the answer to
//! some `PutRecords` calls after kinesalite stored their records, so the Worker puts them again:
//! real duplicates on the stream. Every accepted event still counts once.

use crate::bed::{Bed, Consumer, QueryServer, data_dir, expected_metrics, ground_truth, settle};
use crate::forwarding::post_batches;
use crate::poll::poll;
use crate::proxy::Proxy;
use crate::stream::{self, STREAM};
use crate::worker::Worker;
use std::collections::BTreeSet;
use std::time::Duration;
use tally_core::aws::kinesis::api;
use tally_model::event::LogEntry;

const SITE: &str = "site0.example";
/// The Worker's test environment's SUB_PARTITIONS.
const SUB_PARTITIONS: u16 = 4;
/// Bots' requests per round.
const BOTS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_to_dynamodb_counts_every_event_once_despite_duplicates() {
    let bed = Bed::start(0).await;
    api::create_stream(&bed.kinesis, STREAM, 2).await.unwrap();
    let proxy = Proxy::start(&bed.kinesalite.url, 0, &["PutRecords"], "-").await;
    proxy.set_lose_every(2);
    let worker = Worker::start(&proxy.url, &[(SITE, r#"{"rate_limit_per_minute": 60000}"#)]).await;

    // Two rounds, more than a queue batch apart, so that the Worker makes several calls, each
    // with some bots' requests, which are dropped and counted, also once each.
    let mut posted = post_batches(&worker.url, SITE, "a", 10).await;
    post_bots(&worker.url, "a").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    posted.extend(post_batches(&worker.url, SITE, "b", 10).await);
    post_bots(&worker.url, "b").await;
    // Every event, and the copies the Worker's retry of a lost answer puts (a little later).
    let copied = |entries: &Vec<(String, LogEntry)>| {
        let events = entries.iter().filter(|(_, e)| matches!(e, LogEntry::Event(_))).count();
        stream::event_ids(entries).len() == posted.len() && events > posted.len()
    };
    let on_stream = poll(Duration::from_secs(60), async || stream::read_all(&bed.kinesis).await, copied).await;
    let ids = stream::event_ids(&on_stream);
    assert_eq!(ids.len(), posted.len(), "log:\n{}", worker.log());
    let drop_copies = on_stream.iter().filter(|(_, e)| matches!(e, LogEntry::Drop(_))).count();
    let duplicates = on_stream.len() - drop_copies - ids.len();
    assert!(proxy.counts().lost.values().sum::<u64>() > 0 && duplicates > 0, "the test must produce duplicates");

    // What the events must add up to: each event once (the first copy of each id).
    let mut seen = BTreeSet::new();
    let distinct: Vec<LogEntry> = on_stream
        .into_iter()
        .filter_map(|(_, entry)| match &entry {
            LogEntry::Event(event) => seen.insert(event.id).then_some(entry),
            LogEntry::Drop(_) | LogEntry::Drops(_) => Some(entry),
        })
        .collect();
    let expected = ground_truth(&distinct);
    assert_eq!(expected[SITE].events, 500);

    let dir = data_dir("edge-pipeline", 1);
    let consumer = Consumer::start(&bed.kinesalite.url, &bed.dynamo.url, STREAM, &dir, "w");
    settle(&bed.dynamodb, &expected, Duration::from_secs(60)).await;
    let key = tally_core::registry::create_key(&dir, &[SITE.to_owned()]).unwrap();
    let query = QueryServer::start(&bed.dynamo.url, &dir, "us-east-1", SUB_PARTITIONS);
    let received_ms = distinct
        .iter()
        .find_map(|entry| match entry {
            LogEntry::Event(event) => Some(event.received_ms),
            LogEntry::Drop(_) | LogEntry::Drops(_) => None,
        })
        .unwrap();
    let day = jiff::Timestamp::from_millisecond(received_ms).unwrap().to_string()[..10].to_owned();
    assert_eq!(query.totals(&key, SITE, &day).await, expected_metrics(&expected[SITE]));
    let has_any = |drops: &serde_json::Value| drops.as_object().is_some_and(|d| !d.is_empty());
    let drops = poll(Duration::from_secs(30), async || query.drops(&key, SITE).await, has_any).await;
    assert_eq!(drops, serde_json::json!({ "bot": 2 * BOTS }), "each drop counted once");
    println!(
        "{} events with {duplicates} duplicate copies and {} drops in {drop_copies} copies on the stream, \
         each counted once",
        ids.len(),
        2 * BOTS
    );
    assert!(consumer.terminate().success());
    let _ = std::fs::remove_dir_all(dir);
}

/// Posts the single pageviews of `BOTS` bots: each is answered 202 and dropped as `bot`.
async fn post_bots(url: &str, round: &str) {
    let client = reqwest::Client::new();
    for i in 0..BOTS {
        let answer = client
            .post(format!("{url}/api/event"))
            .header("content-type", "application/json")
            .header("user-agent", "curl/8.5.0")
            .body(format!(r#"{{"n":"pageview","u":"https://{SITE}/bot/{round}/{i}","d":"{SITE}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["x-tally-dropped"], "bot");
    }
}
