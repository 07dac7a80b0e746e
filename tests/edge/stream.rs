//! Reading everything on the test stream back, decoded with the model's record codec.

use crate::poll::poll;
use aws_sdk_kinesis::Client;
use std::collections::BTreeMap;
use std::time::Duration;
use tally_core::aws::kinesis::api::{self, StartAt};
use tally_model::event::{EventId, LogEntry};
use tally_model::record::unpack;

/// The stream the Worker's test environment writes to.
pub const STREAM: &str = "tally-events";

/// A Kinesis client for kinesalite (or a proxy in front of it), with a 2-shard stream made.
pub async fn create(url: &str) -> Client {
    let client = tally_core::aws::clients::kinesis(&crate::stand_ins::settings(Some(url), None)).await;
    api::create_stream(&client, STREAM, 2).await.unwrap();
    client
}

/// Every entry on the stream, with its record's partition key, from the start of every shard.
pub async fn read_all(client: &Client) -> Vec<(String, LogEntry)> {
    let mut out = Vec::new();
    for shard in api::list_shards(client, STREAM).await.unwrap() {
        let mut iterator = api::shard_iterator(client, STREAM, &shard.shard_id, &StartAt::TrimHorizon).await.unwrap();
        loop {
            let page = api::get_records(client, &iterator, 10_000).await.unwrap();
            for record in &page.records {
                for entry in unpack(&record.data).expect("every record decodes") {
                    out.push((record.partition_key.clone(), entry));
                }
            }
            match page.next_iterator {
                Some(next) if !page.records.is_empty() => iterator = next,
                _ => break,
            }
        }
    }
    out
}

/// Event ids on the stream, each with how many times it appears.
pub fn event_ids(entries: &[(String, LogEntry)]) -> BTreeMap<EventId, usize> {
    let mut ids = BTreeMap::new();
    for (_, entry) in entries {
        if let LogEntry::Event(event) = entry {
            *ids.entry(event.id).or_default() += 1;
        }
    }
    ids
}

/// Reads until `distinct` distinct events are on the stream, or `timeout` passes.
pub async fn wait_for_events(client: &Client, distinct: usize, timeout: Duration) -> Vec<(String, LogEntry)> {
    poll(timeout, async || read_all(client).await, |entries| event_ids(entries).len() >= distinct).await
}

/// How many records the stream holds.
pub async fn record_count(client: &Client) -> usize {
    let mut count = 0;
    for shard in api::list_shards(client, STREAM).await.unwrap() {
        let iterator = api::shard_iterator(client, STREAM, &shard.shard_id, &StartAt::TrimHorizon).await.unwrap();
        count += api::get_records(client, &iterator, 10_000).await.unwrap().records.len();
    }
    count
}
