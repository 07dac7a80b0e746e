//! Kinesis down: posts still get 202; events whose retries outlast the outage arrive by
//! themselves once it ends; messages that exhaust their retries are parked as dead letters, and
//! the replay command brings them home. In the end every accepted event is on the stream.

use crate::forwarding::{path_of, post_batches};
use crate::poll::wait_until;
use crate::proxy::Proxy;
use crate::stand_ins::Kinesalite;
use crate::stream;
use crate::worker::{ADMIN_TOKEN, Worker};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tally_model::event::LogEntry;

const SITE: &str = "shop.example";

async fn parked(worker: &Worker) -> u64 {
    let answer = reqwest::Client::new()
        .get(format!("{}/admin/dead-letters", worker.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json::<serde_json::Value>().await.unwrap()["parked"].as_u64().unwrap()
}

#[tokio::test]
async fn nothing_accepted_is_lost_while_kinesis_is_down() {
    let kinesalite = Kinesalite::start();
    let kinesis = stream::create(&kinesalite.url).await;
    // Every PutRecords through the proxy fails with Kinesis's throttling error until healed.
    let proxy = Proxy::start(&kinesalite.url, 1, &["PutRecords"], "ProvisionedThroughputExceededException").await;
    let worker = Worker::start(&proxy.url, &[(SITE, r#"{"rate_limit_per_minute": 60000}"#)]).await;

    // 1. Down for good: 4 requests are accepted, exhaust their retries and are parked.
    let first = post_batches(&worker.url, SITE, "a", 4).await;
    wait_until("the first messages are parked", Duration::from_secs(60), async || parked(&worker).await == 4).await;
    assert!(stream::read_all(&kinesis).await.is_empty(), "nothing got through the outage");

    // 2. Down briefly: once the first put of the next requests has failed, Kinesis comes back,
    //    and the queue's own redelivery brings them in.
    let throttled_before = proxy.counts().throttled.values().sum::<u64>();
    let second = post_batches(&worker.url, SITE, "b", 8).await;
    wait_until("a put of the second round failed", Duration::from_secs(30), async || {
        proxy.counts().throttled.values().sum::<u64>() > throttled_before
    })
    .await;
    proxy.set_every(0);
    wait_until("the second round arrived", Duration::from_secs(60), async || {
        stream::event_ids(&stream::read_all(&kinesis).await).len() == 8 * 25
    })
    .await;
    assert_eq!(parked(&worker).await, 4, "the second round needed no dead-letter replay");

    // 3. The replay command brings the parked messages home.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../edge/scripts/replay-dead-letters.mjs");
    let output =
        Command::new("node").arg(script).arg(&worker.url).env("TALLY_ADMIN_TOKEN", ADMIN_TOKEN).output().unwrap();
    assert!(output.status.success(), "replay failed: {}", String::from_utf8_lossy(&output.stderr));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("replayed 4"), "{said}");
    assert_eq!(parked(&worker).await, 0);
    let entries = stream::wait_for_events(&kinesis, 12 * 25, Duration::from_secs(60)).await;
    assert_eq!(stream::event_ids(&entries).len(), 12 * 25, "every accepted event arrived; log:\n{}", worker.log());
    let arrived: BTreeSet<String> = entries
        .iter()
        .filter_map(|(_, e)| match e {
            LogEntry::Event(event) => Some(path_of(&event.url)),
            LogEntry::Drop(_) | LogEntry::Drops(_) => None,
        })
        .collect();
    assert_eq!(arrived, first.union(&second).cloned().collect(), "both rounds, and nothing else");
}
