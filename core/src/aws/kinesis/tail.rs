//! The last 30 minutes of the stream, followed by `tally query` for realtime answers: every shard
//! read from 30 minutes ago on (shards listed again every 30 s, so children of a reshard join),
//! each event added once to the same in-memory window `tally serve` keeps
//! ([`RecentEvents`]). It reads what the edge put seconds ago, whether or not `tally ingest`
//! has aggregated it yet.

use super::api::{self, StartAt};
use super::shard_reader::{ReaderSettings, ShardBatch, read_shard};
use crate::embedded::recent::{MAX_EVENTS, RecentEvents, WINDOW_MS};
use aws_sdk_kinesis::Client;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tally_model::event::LogEntry;
use tally_model::record;
use tokio::sync::{mpsc, watch};

/// How often the shards are listed again.
const RELIST: Duration = Duration::from_secs(30);

/// The ids of the entries added over the window, so that an entry put twice (a producer's retry)
/// counts once: at most as many as the window holds events ([`MAX_EVENTS`]), the oldest
/// forgotten first.
struct SeenIds {
    ids: HashSet<u128>,
    order: VecDeque<(i64, u128)>,
    max: usize,
}

impl Default for SeenIds {
    fn default() -> SeenIds {
        SeenIds { ids: HashSet::new(), order: VecDeque::new(), max: MAX_EVENTS }
    }
}

impl SeenIds {
    /// Whether `entry` is an event not seen before (and remembers it).
    fn first_time(&mut self, entry: &LogEntry, now_ms: i64) -> bool {
        while self.order.front().is_some_and(|(at, _)| *at < now_ms - 2 * WINDOW_MS) || self.order.len() >= self.max {
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
        let LogEntry::Event(event) = entry else {
            return false;
        };
        let fresh = self.ids.insert(event.id.0);
        if fresh {
            self.order.push_back((event.received_ms.max(now_ms - WINDOW_MS), event.id.0));
        }
        fresh
    }
}

/// Follows `stream` into `recent` until the process ends.
pub async fn follow(client: Client, stream: String, recent: Arc<RecentEvents>) {
    let (batches, mut received) = mpsc::channel::<ShardBatch>(64);
    // Never fired: the readers run as long as the process.
    let (_keep, stop) = watch::channel(false);
    let mut started: HashSet<String> = HashSet::new();
    let mut seen = SeenIds::default();
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
                for one in &batch.records {
                    match record::unpack(&one.data) {
                        Ok(unpacked) => entries.extend(unpacked.into_iter().filter(|e| seen.first_time(e, now_ms))),
                        Err(error) => tracing::warn!(sequence = one.sequence_number, %error, "skipping an undecodable record"),
                    }
                }
                recent.add(&entries, now_ms);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::event::{Event, EventId, VisitorIds};

    fn event(id: u128, at_ms: i64) -> LogEntry {
        LogEntry::Event(Box::new(Event {
            id: EventId(id),
            received_ms: at_ms,
            site: "a.com".into(),
            name: "pageview".into(),
            url: "https://a.com/".into(),
            referrer: None,
            props: Vec::new(),
            revenue: None,
            interactive: true,
            user_agent: "UA".into(),
            country: None,
            visitor: VisitorIds { current: 1, previous: 1 },
            region: None,
            city: None,
            engagement: None,
        }))
    }

    #[test]
    fn an_event_put_twice_counts_once_and_old_ids_are_forgotten() {
        let mut seen = SeenIds::default();
        let now = 10 * WINDOW_MS;
        assert!(seen.first_time(&event(1, now), now));
        assert!(!seen.first_time(&event(1, now), now + 1_000), "a producer's retry");
        assert!(seen.first_time(&event(2, now), now + 1_000));
        // Two windows later the ids are gone (their events left the window long before).
        assert!(seen.first_time(&event(3, now), now + 2 * WINDOW_MS + 1));
        assert_eq!(seen.ids.len(), 1);
        // Never more ids than the bound: the oldest go first.
        let mut few = SeenIds { max: 2, ..SeenIds::default() };
        for id in 10..15 {
            assert!(few.first_time(&event(id, now), now));
        }
        assert_eq!(few.ids.len(), 2);
        assert!(!few.first_time(&event(14, now), now), "the newest are kept");
    }
}
