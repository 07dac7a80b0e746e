//! One held shard: recover the last logged flush, then read, aggregate and flush until the
//! shard ends, the lease is lost, or the worker is told to stop.
//!
//! Each flush: (1) log it, fenced by the lease; (2) apply it, idempotently; (3) commit the
//! checkpoint and flush number, fenced. A crash between any two steps is completed by the next
//! holder's recovery, which re-applies the logged flush before reading on.

use super::recent_ids::RecentIds;
use crate::dynamo::{self, FlushRecord, StoreError, Tables};
use crate::flush::{Flush, SessionLookup};
use crate::kinesis::api::StartAt;
use crate::kinesis::shard_reader::{ReaderSettings, ShardBatch, read_shard};
use crate::lease::{Lease, LeaseError, LeaseTable};
use crate::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tally_model::event::LogEntry;
use tally_model::limits::SESSION_TIMEOUT_MS;
use tally_model::record::unpack;
use tally_model::session::Session;
use tokio::sync::{mpsc, watch};

/// What every shard worker of a consumer shares.
pub struct ShardContext {
    /// Kinesis client.
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB client.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// The stream.
    pub stream: String,
    /// The region id, part of every item's writer lineage.
    pub region: String,
    /// Table names.
    pub tables: Tables,
    /// The lease table.
    pub leases: LeaseTable,
    /// Sites, for their time zones.
    pub registry: Registry,
    /// Longest time records wait before they are flushed.
    pub flush_interval: Duration,
    /// Most Kinesis records in one flush.
    pub max_records_per_flush: usize,
    /// How the shard is read.
    pub reader: ReaderSettings,
}

/// How a shard worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The shard was read to its end and checkpointed there.
    Finished,
    /// Told to stop; everything read is flushed and checkpointed.
    Stopped,
    /// Another worker took the lease; this one wrote nothing after that.
    Lost,
}

/// A shard worker failed (it is restarted, and recovers from the flush log).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The lease table failed.
    #[error(transparent)]
    Lease(LeaseError),
    /// Kinesis failed.
    #[error(transparent)]
    Kinesis(#[from] crate::kinesis::api::KinesisError),
}

/// Runs one shard under `lease` until it ends, is lost, or `stop` turns true.
pub async fn run_shard(
    ctx: Arc<ShardContext>,
    lease: Lease,
    stop: watch::Receiver<bool>,
) -> Result<Outcome, WorkerError> {
    let mut worker = Worker { ctx, lease, sessions: HashMap::new(), recent: RecentIds::new(1_000_000) };
    match worker.run(stop).await {
        Err(WorkerError::Store(StoreError::LeaseLost)) | Err(WorkerError::Lease(LeaseError::Lost(_))) => {
            tracing::info!(shard_id = worker.lease.shard_id, "lease lost; stopped writing");
            Ok(Outcome::Lost)
        }
        other => other,
    }
}

struct Worker {
    ctx: Arc<ShardContext>,
    lease: Lease,
    /// Open visits known to this worker (`None`: known to have none).
    sessions: HashMap<(String, u64), Option<Session>>,
    recent: RecentIds,
}

impl Worker {
    async fn run(&mut self, stop: watch::Receiver<bool>) -> Result<Outcome, WorkerError> {
        if self.recover().await? {
            return Ok(Outcome::Finished);
        }
        let start = match self.lease.checkpoint.as_str() {
            Lease::SHARD_END => return Ok(Outcome::Finished),
            Lease::TRIM_HORIZON => StartAt::TrimHorizon,
            sequence => StartAt::AfterSequenceNumber(sequence.to_owned()),
        };
        let (out, mut batches) = mpsc::channel(4);
        let ctx = &self.ctx;
        let reader = tokio::spawn(read_shard(
            ctx.kinesis.clone(),
            ctx.stream.clone(),
            self.lease.shard_id.clone(),
            start,
            ctx.reader.clone(),
            out,
            stop.clone(),
        ));
        let outcome = self.flush_loop(&mut batches, stop).await;
        reader.abort();
        outcome
    }

    /// Completes a flush that was logged but not committed. Returns whether the shard is done.
    async fn recover(&mut self) -> Result<bool, WorkerError> {
        let ctx = &self.ctx;
        let next = self.lease.flush_seq + 1;
        let Some(record) = dynamo::flush_log::read(&ctx.dynamo, &ctx.tables, &self.lease.shard_id, next).await? else {
            return Ok(false);
        };
        let applied = dynamo::apply::apply(&ctx.dynamo, &ctx.tables, &ctx.region, &record).await?;
        tracing::info!(shard_id = self.lease.shard_id, seq = next, ?applied, "re-applied a logged flush");
        self.commit(&record).await?;
        Ok(record.shard_end)
    }

    async fn flush_loop(
        &mut self,
        batches: &mut mpsc::Receiver<ShardBatch>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Outcome, WorkerError> {
        loop {
            let first = tokio::select! {
                batch = batches.recv() => batch,
                _ = stop.wait_for(|s| *s) => None,
            };
            let Some(first) = first else { return Ok(Outcome::Stopped) };
            let mut gathered = vec![first];
            let deadline = tokio::time::sleep(self.ctx.flush_interval);
            tokio::pin!(deadline);
            while !gathered.last().is_some_and(|b| b.shard_end) && records(&gathered) < self.ctx.max_records_per_flush {
                tokio::select! {
                    batch = batches.recv() => match batch { Some(b) => gathered.push(b), None => break },
                    () = &mut deadline => break,
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            let shard_end = gathered.last().is_some_and(|b| b.shard_end);
            self.flush(gathered).await?;
            if shard_end {
                return Ok(Outcome::Finished);
            }
        }
    }

    async fn flush(&mut self, gathered: Vec<ShardBatch>) -> Result<(), WorkerError> {
        let shard_end = gathered.last().is_some_and(|b| b.shard_end);
        let last_sequence = gathered.iter().rev().find_map(|b| b.records.last()).map(|r| r.sequence_number.clone());
        let mut entries = Vec::new();
        for record in gathered.iter().flat_map(|b| &b.records) {
            let sub = record.partition_key.rsplit('#').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            match unpack(&record.data) {
                Ok(unpacked) => entries.extend(unpacked.into_iter().map(|e| (e, sub))),
                Err(error) => {
                    tracing::error!(sequence = record.sequence_number, %error, "skipping an undecodable record")
                }
            }
        }
        entries.retain(|(entry, _)| match entry {
            LogEntry::Event(event) => self.recent.first_time(event.id),
            LogEntry::Drop(_) => true,
        });
        self.load_sessions(&entries).await?;
        let registry = self.ctx.registry.snapshot();
        let zone_of = |site: &str| registry.site(site).map(|s| s.timezone.clone());
        let mut flush = Flush::default();
        for (entry, sub) in &entries {
            flush.add(entry, *sub, &zone_of, &*self).map_err(|e| StoreError::Other(format!("{e:#}")))?;
        }
        let end_sequence = match (last_sequence, shard_end) {
            (Some(sequence), false) => sequence,
            (_, true) => Lease::SHARD_END.to_owned(),
            (None, false) => return Ok(()),
        };
        let record = FlushRecord {
            shard_id: self.lease.shard_id.clone(),
            seq: self.lease.flush_seq + 1,
            end_sequence,
            shard_end,
            updates: dynamo::items::updates(&flush),
        };
        let ctx = &self.ctx;
        let now_s = jiff::Timestamp::now().as_second();
        dynamo::flush_log::write(&ctx.dynamo, &ctx.tables, &self.lease, &record, now_s).await?;
        let applied = dynamo::apply::apply(&ctx.dynamo, &ctx.tables, &ctx.region, &record).await?;
        self.commit(&record).await?;
        tracing::debug!(shard_id = record.shard_id, seq = record.seq, entries = entries.len(), ?applied, "flushed");
        self.sessions.extend(flush.sessions);
        self.forget_ended_visits(flush.latest_ms);
        Ok(())
    }

    async fn commit(&mut self, record: &FlushRecord) -> Result<(), WorkerError> {
        let ctx = &self.ctx;
        let lease = ctx.leases.commit_flush(&self.lease, &record.end_sequence, record.seq).await;
        self.lease = lease.map_err(WorkerError::Lease)?;
        Ok(())
    }

    /// Loads from the store the visits of the entries' visitors that this worker does not know.
    async fn load_sessions(&mut self, entries: &[(LogEntry, u16)]) -> Result<(), WorkerError> {
        let mut wanted = Vec::new();
        for (entry, _) in entries {
            if let LogEntry::Event(event) = entry {
                for visitor in [event.visitor.current, event.visitor.previous] {
                    let key = (event.site.clone(), visitor);
                    if !self.sessions.contains_key(&key) {
                        self.sessions.insert(key.clone(), None);
                        wanted.push(key);
                    }
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let ctx = &self.ctx;
        let found = dynamo::sessions::load(&ctx.dynamo, &ctx.tables, &ctx.region, &wanted).await?;
        for (key, session) in found {
            self.sessions.insert(key, Some(session));
        }
        Ok(())
    }

    fn forget_ended_visits(&mut self, now_ms: i64) {
        if self.sessions.len() > 100_000 {
            self.sessions.retain(|_, s| s.as_ref().is_some_and(|s| s.last_ms + SESSION_TIMEOUT_MS >= now_ms));
        }
    }
}

fn records(gathered: &[ShardBatch]) -> usize {
    gathered.iter().map(|b| b.records.len()).sum()
}

impl SessionLookup for Worker {
    fn session(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Session>> {
        Ok(self.sessions.get(&(site.to_owned(), visitor)).cloned().flatten())
    }
}
