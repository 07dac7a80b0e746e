//! The Kinesis source against kinesalite: records put are read back exactly once, a checkpoint
//! resumes just after its record, a split ends the parent at SHARD_END and hands over to its
//! children, and failures come back as typed errors.

use crate::stand_ins::{Kinesalite, settings};
use aws_sdk_kinesis::Client;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tally_core::aws::kinesis::api::{self, KinesisError, KinesisRecord, StartAt};
use tally_core::aws::kinesis::shard_reader::{ReaderSettings, ShardBatch, read_shard};
use tally_model::event::{Event, EventId, LogEntry, VisitorIds};
use tally_model::record::{Record, pack, unpack};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const STREAM: &str = "tally-events";

async fn client(kinesalite: &Kinesalite) -> Client {
    tally_core::aws::clients::kinesis(&settings(Some(&kinesalite.url), None)).await
}

/// Events with ids in `ids`, two per site, so that every record holds two entries.
fn entries(ids: std::ops::Range<u128>) -> Vec<LogEntry> {
    ids.map(|id| {
        let site = format!("site{}.com", id / 2);
        LogEntry::Event(Box::new(Event {
            id: EventId(id),
            received_ms: 1_000,
            url: format!("https://{site}/"),
            site,
            name: "pageview".into(),
            referrer: None,
            props: vec![],
            revenue: None,
            interactive: true,
            user_agent: "UA".into(),
            country: None,
            visitor: VisitorIds { current: 7, previous: 7 },
            region: None,
            city: None,
            engagement: None,
            hash_mode: false,
        }))
    })
    .collect()
}

fn records(ids: std::ops::Range<u128>) -> Vec<Record> {
    pack(&entries(ids), |_| 0)
}

async fn put(client: &Client, records: &[Record]) {
    for chunk in records.chunks(api::MAX_PUT_RECORDS) {
        let failed = api::put_records(client, STREAM, chunk).await.unwrap();
        assert!(failed.is_empty(), "kinesalite never fails single records: {failed:?}");
    }
}

/// The event ids packed in `records`.
fn ids(records: &[KinesisRecord]) -> Vec<u128> {
    let id = |entry: LogEntry| match entry {
        LogEntry::Event(event) => event.id.0,
        LogEntry::Drop(_) | LogEntry::Drops(_) => panic!("only events were put"),
    };
    records.iter().flat_map(|r| unpack(&r.data).unwrap()).map(id).collect()
}

/// How often each id was seen; panics on any id seen twice.
fn once(ids: impl IntoIterator<Item = u128>) -> BTreeMap<u128, usize> {
    let mut seen = BTreeMap::new();
    for id in ids {
        *seen.entry(id).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}");
    seen
}

fn fast(batch_limit: i32) -> ReaderSettings {
    ReaderSettings {
        batch_limit,
        idle_poll: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        busy_poll: Duration::ZERO,
    }
}

/// Readers of some shards, all sending into one channel.
struct Readers {
    batches: mpsc::Receiver<ShardBatch>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), KinesisError>>>,
}

impl Readers {
    fn start(client: &Client, shards: &[&str], settings: &ReaderSettings) -> Readers {
        let (out, batches) = mpsc::channel(4);
        let (stop, stopped) = watch::channel(false);
        let tasks = shards
            .iter()
            .map(|shard| {
                let reader = read_shard(
                    client.clone(),
                    STREAM.into(),
                    (*shard).into(),
                    StartAt::TrimHorizon,
                    settings.clone(),
                    out.clone(),
                    stopped.clone(),
                );
                tokio::spawn(reader)
            })
            .collect();
        Readers { batches, stop, tasks }
    }

    /// Batches until `want` entries have arrived, then any that come within a short grace period
    /// (there should be none).
    async fn collect(&mut self, want: usize) -> Vec<ShardBatch> {
        let mut got = Vec::new();
        let mut count = 0;
        while count < want {
            let batch = tokio::time::timeout(Duration::from_secs(5), self.batches.recv())
                .await
                .unwrap_or_else(|_| panic!("only {count} of {want} entries read"))
                .unwrap();
            count += ids(&batch.records).len();
            got.push(batch);
        }
        while let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(300), self.batches.recv()).await {
            got.push(batch);
        }
        got
    }

    async fn stop(self) {
        // Readers that reached SHARD_END have already dropped their receiver.
        self.stop.send_replace(true);
        for task in self.tasks {
            task.await.unwrap().unwrap();
        }
    }
}

fn all_ids(batches: &[ShardBatch]) -> Vec<u128> {
    batches.iter().flat_map(|b| ids(&b.records)).collect()
}

#[tokio::test]
async fn every_record_put_is_read_exactly_once() {
    let kinesalite = Kinesalite::start();
    let client = client(&kinesalite).await;
    api::create_stream(&client, STREAM, 2).await.unwrap();
    let put_records = records(0..600);
    assert_eq!(put_records.len(), 300);
    put(&client, &put_records).await;

    let shards = api::list_shards(&client, STREAM).await.unwrap();
    assert_eq!(shards.len(), 2);
    assert!(shards.iter().all(|s| s.ending_sequence_number.is_none() && s.parent_shard_id.is_none()));
    let shard_ids: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    let mut readers = Readers::start(&client, &shard_ids, &fast(100));
    let batches = readers.collect(600).await;
    readers.stop().await;

    let seen = once(all_ids(&batches));
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (0..600).collect::<Vec<_>>());
    let from: HashSet<&str> = batches.iter().map(|b| b.shard_id.as_str()).collect();
    assert_eq!(from.len(), 2, "300 partition keys land on both shards");
    assert!(batches.iter().all(|b| !b.records.is_empty() && !b.shard_end));
    assert!(batches.iter().all(|b| b.records.len() <= 100), "the batch limit holds");
    for batch in &batches {
        assert!(batch.records.iter().all(|r| r.sequence_number.len() >= 56 && r.arrival_ms.is_some()));
    }
}

#[tokio::test]
async fn after_sequence_number_resumes_just_after_its_record() {
    let kinesalite = Kinesalite::start();
    let client = client(&kinesalite).await;
    api::create_stream(&client, STREAM, 1).await.unwrap();
    put(&client, &records(0..20)).await;
    let shard = api::list_shards(&client, STREAM).await.unwrap().remove(0).shard_id;

    let iterator = api::shard_iterator(&client, STREAM, &shard, &StartAt::TrimHorizon).await.unwrap();
    let all = api::get_records(&client, &iterator, 100).await.unwrap().records;
    assert_eq!(all.len(), 10);
    let checkpoint = StartAt::AfterSequenceNumber(all[3].sequence_number.clone());
    let iterator = api::shard_iterator(&client, STREAM, &shard, &checkpoint).await.unwrap();
    let rest = api::get_records(&client, &iterator, 100).await.unwrap();
    assert_eq!(rest.records, all[4..]);
    assert!(rest.next_iterator.is_some(), "an open shard never ends");

    // The reader too, from the last record: nothing is left until more is put.
    let last = StartAt::AfterSequenceNumber(all[9].sequence_number.clone());
    let (out, mut batches) = mpsc::channel(4);
    let (stop, stopped) = watch::channel(false);
    let reader = tokio::spawn(read_shard(client.clone(), STREAM.into(), shard, last, fast(100), out, stopped));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(batches.try_recv().is_err(), "nothing after the last record");
    put(&client, &records(20..22)).await;
    let batch = tokio::time::timeout(Duration::from_secs(5), batches.recv()).await.unwrap().unwrap();
    assert_eq!(ids(&batch.records), [20, 21]);
    stop.send(true).unwrap();
    reader.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_split_ends_the_parent_and_its_children_take_over() {
    let kinesalite = Kinesalite::start();
    let client = client(&kinesalite).await;
    api::create_stream(&client, STREAM, 1).await.unwrap();
    let parent = api::list_shards(&client, STREAM).await.unwrap().remove(0);
    put(&client, &records(0..400)).await;

    // Small pages, so that the split lands while the parent is being read.
    let mut readers = Readers::start(&client, &[parent.shard_id.as_str()], &fast(20));
    let first = tokio::time::timeout(Duration::from_secs(5), readers.batches.recv()).await.unwrap().unwrap();
    let start: u128 = parent.starting_hash_key.parse().unwrap();
    let end: u128 = parent.ending_hash_key.parse().unwrap();
    let middle = (start + (end - start) / 2).to_string();
    api::split_shard(&client, STREAM, &parent.shard_id, &middle).await.unwrap();
    put(&client, &records(400..600)).await;

    let mut parent_batches = vec![first];
    while !parent_batches.last().unwrap().shard_end {
        let batch = tokio::time::timeout(Duration::from_secs(5), readers.batches.recv()).await;
        parent_batches.push(batch.expect("the parent reaches SHARD_END").unwrap());
    }
    let last = parent_batches.last().unwrap();
    assert!(last.records.is_empty(), "the SHARD_END batch is empty: {last:?}");
    readers.stop().await;
    assert_eq!(once(all_ids(&parent_batches)).len(), 400, "the parent holds what was put before the split");

    let shards = api::list_shards(&client, STREAM).await.unwrap();
    assert_eq!(shards.len(), 3);
    let closed = shards.iter().find(|s| s.shard_id == parent.shard_id).unwrap();
    assert!(closed.ending_sequence_number.is_some());
    let children: Vec<_> = shards.iter().filter(|s| s.parent_shard_id.as_ref() == Some(&parent.shard_id)).collect();
    assert_eq!(children.len(), 2);
    let ranges: HashSet<(String, String)> =
        children.iter().map(|c| (c.starting_hash_key.clone(), c.ending_hash_key.clone())).collect();
    let below = (start + (end - start) / 2 - 1).to_string();
    let halves = [(parent.starting_hash_key.clone(), below), (middle.clone(), parent.ending_hash_key.clone())];
    assert_eq!(ranges, HashSet::from(halves));

    let child_ids: Vec<&str> = children.iter().map(|s| s.shard_id.as_str()).collect();
    let mut readers = Readers::start(&client, &child_ids, &fast(100));
    let child_batches = readers.collect(200).await;
    readers.stop().await;
    assert!(child_batches.iter().all(|b| !b.shard_end), "open children never end");
    let seen = once(all_ids(&parent_batches).into_iter().chain(all_ids(&child_batches)));
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (0..600).collect::<Vec<_>>());
    assert_eq!(once(all_ids(&child_batches)).keys().copied().collect::<Vec<_>>(), (400..600).collect::<Vec<_>>());
}

#[tokio::test]
async fn failures_are_typed() {
    let kinesalite = Kinesalite::start();
    let client = client(&kinesalite).await;
    // A garbage iterator: kinesalite (as Kinesis) answers InvalidArgumentException, not
    // ExpiredIteratorException, so it is `Other`. A real expiry takes 5 minutes in kinesalite
    // (its iterators are encrypted and carry their creation time, so one cannot be forged here);
    // the mapping of ExpiredIteratorException is by error code, as for the others.
    let garbage = api::get_records(&client, "AAAAAAAAAAE=", 10).await;
    assert!(
        matches!(garbage, Err(KinesisError::Other(ref m)) if m.contains("InvalidArgumentException")),
        "{garbage:?}"
    );

    // A stream that does not exist.
    let missing = api::list_shards(&client, "no-such-stream").await;
    assert!(matches!(missing, Err(KinesisError::NotFound(_))), "{missing:?}");
    let missing = api::shard_iterator(&client, "no-such-stream", "shardId-000000000000", &StartAt::Latest).await;
    assert!(matches!(missing, Err(KinesisError::NotFound(_))), "{missing:?}");

    // A reader of a shard that does not exist stops at once with NotFound.
    api::create_stream(&client, STREAM, 1).await.unwrap();
    let (out, _batches) = mpsc::channel(1);
    let (_stop, stopped) = watch::channel(false);
    let reader = read_shard(
        client.clone(),
        STREAM.into(),
        "shardId-000000000009".into(),
        StartAt::TrimHorizon,
        fast(10),
        out,
        stopped,
    );
    let result = tokio::time::timeout(Duration::from_secs(5), reader).await.unwrap();
    assert!(matches!(result, Err(KinesisError::NotFound(_))), "{result:?}");

    // A reader whose receiver is gone stops with OutputClosed once it has something to send.
    put(&client, &records(0..2)).await;
    let (out, batches) = mpsc::channel(1);
    drop(batches);
    let (_stop, stopped) = watch::channel(false);
    let reader = read_shard(
        client.clone(),
        STREAM.into(),
        "shardId-000000000000".into(),
        StartAt::TrimHorizon,
        fast(10),
        out,
        stopped,
    );
    let result = tokio::time::timeout(Duration::from_secs(5), reader).await.unwrap();
    assert!(matches!(result, Err(KinesisError::OutputClosed)), "{result:?}");

    // Creating a stream twice is refused (ResourceInUseException): `Other`.
    let again = api::create_stream(&client, STREAM, 1).await;
    assert!(matches!(again, Err(KinesisError::Other(_))), "{again:?}");
}
