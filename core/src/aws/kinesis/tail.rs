//! The last 30 minutes of the stream, followed by `tally query` for realtime answers: every shard
//! read from 30 minutes ago on (shards listed again every 30 s, so children of a reshard join),
//! each event added once to the same in-memory window `tally serve` keeps
//! ([`RecentEvents`]), each event once ([`RecentIds`], as the consumer drops repeats). It reads what the edge put seconds ago, whether or not `tally ingest`
//! has aggregated it yet.

use super::api::{self, StartAt};
use super::shard_reader::{ReaderSettings, ShardBatch, read_shard};
use crate::aws::consumer::recent_ids::RecentIds;
use crate::embedded::recent::{MAX_EVENTS, RecentEvents, WINDOW_MS};
use aws_sdk_kinesis::Client;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tally_model::event::LogEntry;
use tally_model::record;
use tokio::sync::{mpsc, watch};

/// How often the shards are listed again.
const RELIST: Duration = Duration::from_secs(30);

/// Follows `stream` into `recent` until the process ends.
pub async fn follow(client: Client, stream: String, recent: Arc<RecentEvents>) {
    let (batches, mut received) = mpsc::channel::<ShardBatch>(64);
    // Never fired: the readers run as long as the process.
    let (_keep, stop) = watch::channel(false);
    let mut started: HashSet<String> = HashSet::new();
    // An event put twice (a producer's retry) counts once; the window holds at most as many.
    let mut seen = RecentIds::new(MAX_EVENTS);
    let mut relist = tokio::time::interval(RELIST);
    loop {
        tokio::select! {
            _ = relist.tick() => {
                let shards = match api::list_shards(&client, &stream).await {
                    Ok(shards) => shards,
                    Err(error) => {
                        tracing::warn!(stream, %error, "listing the stream's shards for realtime answers failed");
                        continue;
                    }
                };
                let since = jiff::Timestamp::now().as_millisecond() - WINDOW_MS;
                for shard in shards {
                    if !started.insert(shard.shard_id.clone()) {
                        continue;
                    }
                    let reader = read_shard(
                        client.clone(),
                        stream.clone(),
                        shard.shard_id.clone(),
                        StartAt::AtTimestamp(since),
                        ReaderSettings::default(),
                        batches.clone(),
                        stop.clone(),
                    );
                    let shard_id = shard.shard_id;
                    tokio::spawn(async move {
                        if let Err(error) = reader.await {
                            tracing::warn!(shard_id, %error, "a shard followed for realtime answers stopped");
                        }
                    });
                }
            }
            Some(batch) = received.recv() => {
                let now_ms = jiff::Timestamp::now().as_millisecond();
                let mut entries = Vec::new();
                let first_time = |e: &LogEntry, seen: &mut RecentIds| matches!(e, LogEntry::Event(event) if seen.first_time(event.id));
                for one in &batch.records {
                    match record::unpack(&one.data) {
                        Ok(unpacked) => entries.extend(unpacked.into_iter().filter(|e| first_time(e, &mut seen))),
                        Err(error) => tracing::warn!(sequence = one.sequence_number, %error, "skipping an undecodable record"),
                    }
                }
                recent.add(&entries, now_ms);
            }
        }
    }
}
