//! One held shard: recover the last logged flush, then read, aggregate and flush until the
//! shard ends, the lease is lost, or the worker is told to stop.
//!
//! Each flush: (1) log which records it covers, fenced by the lease; (2) apply it: its rollup
//! deltas as immutable items, idempotently; (3) commit the checkpoint and flush number, fenced.
//! A crash between any two steps is completed by the next holder's recovery, which rebuilds the
//! logged flush from the same records on the same state and applies it before reading on. The
//! worker's state (open visits, visitor sightings, days with unfolded deltas) is rebuilt from
//! the latest snapshot and a replay, without applying anything, of the records between that
//! snapshot and the checkpoint. Between flushes, the worker folds the deltas of its lineages'
//! days once they are a fold interval old (see `dynamo::folds`).

use super::recent_ids::RecentIds;
use crate::aws::dynamo::snapshots::{self, Snapshot, SnapshotOf, Unfolded};
use crate::aws::dynamo::{self, FlushRecord, StoreError, Tables};
use crate::aws::kinesis::api::{self, KinesisError, KinesisRecord, StartAt};
use crate::aws::kinesis::shard_reader::{ReaderSettings, ShardBatch, read_shard};
use crate::aws::lease::{Lease, LeaseError, LeaseTable};
use crate::aws::segments::{self, SegmentObjects};
use crate::embedded::state::sightings_kept;
use crate::pipeline::fact_cache::FactCache;
use crate::pipeline::flush::{Flush, SessionLookup};
use crate::registry::Registry;
use crate::telemetry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_model::breakdown::{Day, Sightings};
use tally_model::event::LogEntry;
use tally_model::limits::SESSION_TIMEOUT_MS;
use tally_model::record::unpack;
use tally_model::session::Session;
use tokio::sync::{mpsc, watch};

/// Days folded at once.
const FOLD_CONCURRENCY: usize = 16;
/// A lineage's day is folded once it has this many unfolded deltas: a reader of the day reads
/// at most about this many.
const FOLD_AFTER_DELTAS: u32 = 64;
/// A lineage's day is folded once its unfolded deltas hold this many encoded bytes: a reader of
/// the day reads at most about this much of deltas (16 read units).
const FOLD_AFTER_BYTES: u64 = 64 * 1024;

/// What takes each page of records a worker reads.
type RecordPages<'a> = dyn FnMut(&mut Worker, Vec<KinesisRecord>) -> Result<(), WorkerError> + Send + 'a;

/// Two accounts of a day's unfolded deltas, together.
fn merged_unfolded(a: Unfolded, b: Unfolded) -> Unfolded {
    Unfolded {
        oldest_s: a.oldest_s.min(b.oldest_s),
        newest_s: a.newest_s.max(b.newest_s),
        deltas: a.deltas.saturating_add(b.deltas),
        bytes: a.bytes.saturating_add(b.bytes),
    }
}

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
    /// Shortest time between two snapshots of the worker's state.
    pub snapshot_interval: Duration,
    /// How old a lineage's oldest unfolded delta of a day gets before the day is folded.
    pub fold_interval: Duration,
    /// Where snapshots go.
    pub objects: snapshots::Objects,
    /// Where segment objects go.
    pub segments: SegmentObjects,
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
    Kinesis(#[from] crate::aws::kinesis::api::KinesisError),
}

/// Runs one shard under `lease` until it ends, is lost, or `stop` turns true.
pub async fn run_shard(
    ctx: Arc<ShardContext>,
    lease: Lease,
    stop: watch::Receiver<bool>,
) -> Result<Outcome, WorkerError> {
    let mut worker = Worker {
        ctx,
        lease,
        sessions: HashMap::new(),
        sightings: HashMap::new(),
        unfolded: HashMap::new(),
        last_time_s: 0,
        recent: RecentIds::new(1_000_000),
        latest_ms: 0,
        last_snapshot: Instant::now(),
        facts: FactCache::default(),
    };
    match worker.run(stop).await {
        Err(WorkerError::Store(StoreError::LeaseLost)) | Err(WorkerError::Lease(LeaseError::Lost(_))) => {
            tracing::info!(shard_id = worker.lease.shard_id, "lease lost; stopped writing");
            telemetry::lease_change("lost");
            Ok(Outcome::Lost)
        }
        other => other,
    }
}

struct Worker {
    ctx: Arc<ShardContext>,
    lease: Lease,
    /// The open visits of the shard's visitors.
    sessions: HashMap<(String, u64), Session>,
    /// Where each visitor id was seen, with the arrival time (ms) that last changed it.
    sightings: HashMap<(String, u64), (i64, Sightings)>,
    /// Per (site, sub-partition, local day) with deltas not folded yet: what is known of them.
    unfolded: HashMap<(String, u16, Day), Unfolded>,
    /// The latest flush time logged or seen (s): flush times never go back.
    last_time_s: i64,
    recent: RecentIds,
    /// The latest arrival time seen, ms since the epoch.
    latest_ms: i64,
    last_snapshot: Instant,
    /// User agents and pages normalised by earlier flushes.
    facts: FactCache,
}

impl Worker {
    async fn run(&mut self, stop: watch::Receiver<bool>) -> Result<Outcome, WorkerError> {
        self.restore().await?;
        let finished = self.recover().await?;
        if finished {
            // The last flush of the shard was completed here: leave its children the final state.
            self.snapshot().await?;
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
        if matches!(outcome, Ok(Outcome::Stopped | Outcome::Finished)) {
            self.snapshot().await?;
        }
        outcome
    }

    /// Rebuilds the open visits as of the checkpoint: the latest snapshot (for a new child shard
    /// with none, its parents' last ones), then a replay of the records after it.
    async fn restore(&mut self) -> Result<(), WorkerError> {
        let ctx = self.ctx.clone();
        let shard = self.lease.shard_id.clone();
        let store = (&ctx.dynamo, &ctx.objects);
        let newest = snapshots::latest_flush(&ctx.dynamo, &ctx.tables, &shard, self.lease.flush_seq).await?;
        // Start from the snapshot before the newest: the replay then also refills the window of
        // seen event ids with at least one snapshot interval of events, so that producer
        // duplicates straddling this restart are still dropped.
        let older = match newest {
            Some(seq) if seq > 0 => snapshots::latest(store, &ctx.tables, &shard, seq - 1).await?,
            _ => None,
        };
        let snapshot = match (older, newest) {
            (Some(older), _) => Some(older),
            (None, Some(seq)) => snapshots::latest(store, &ctx.tables, &shard, seq).await?,
            (None, None) => None,
        };
        let from = match snapshot {
            Some(snapshot) => {
                let end_sequence = snapshot.end_sequence.clone();
                self.take_snapshot(snapshot);
                StartAt::AfterSequenceNumber(end_sequence)
            }
            None => {
                for parent in self.lease.parents.clone() {
                    self.inherit(&parent).await?;
                }
                self.keep_own_unfolded().await?;
                StartAt::TrimHorizon
            }
        };
        let until = match self.lease.checkpoint.as_str() {
            Lease::TRIM_HORIZON => return Ok(()),
            Lease::SHARD_END => None,
            sequence if matches!(&from, StartAt::AfterSequenceNumber(s) if s == sequence) => return Ok(()),
            sequence => Some(sequence.to_owned()),
        };
        let replayed = self.replay(from, until.as_deref()).await?;
        tracing::info!(shard_id = shard, replayed, sessions = self.sessions.len(), "state restored");
        Ok(())
    }

    /// Reads the shard from `from` up to and including the record `until` (`None`: to the
    /// shard's end), updating the state only. Returns how many entries it replayed.
    async fn replay(&mut self, from: StartAt, until: Option<&str>) -> Result<usize, WorkerError> {
        let shard = self.lease.shard_id.clone();
        self.replay_shard(&shard, from, until).await
    }

    /// Takes over the final state of a parent shard: its last snapshot, and a replay of what
    /// the parent read after it (its final snapshot may be missing if its last holder died
    /// between the final commit and the snapshot).
    async fn inherit(&mut self, parent: &str) -> Result<(), WorkerError> {
        let ctx = self.ctx.clone();
        let from = match snapshots::latest((&ctx.dynamo, &ctx.objects), &ctx.tables, parent, u64::MAX).await? {
            Some(last) if last.end_sequence == Lease::SHARD_END => {
                self.take_snapshot(last);
                return Ok(());
            }
            Some(last) => {
                let end_sequence = last.end_sequence.clone();
                self.take_snapshot(last);
                StartAt::AfterSequenceNumber(end_sequence)
            }
            None => StartAt::TrimHorizon,
        };
        let replayed = self.replay_shard(parent, from, None).await?;
        tracing::info!(shard_id = self.lease.shard_id, parent, replayed, "inherited the parent's visits");
        Ok(())
    }

    async fn replay_shard(&mut self, shard: &str, from: StartAt, until: Option<&str>) -> Result<usize, WorkerError> {
        let mut replayed = 0;
        let now_s = jiff::Timestamp::now().as_second();
        self.read_records(shard, from, until, &mut |worker, records| {
            let entries = worker.decode(&records);
            replayed += entries.len();
            let flush = worker.build(&entries)?;
            // The holder that applied these records wrote their deltas at some time before now:
            // they are folded once a fold interval has passed from now.
            for ((site, sub), breakdown) in &flush.breakdowns {
                for (day, _) in crate::aws::dynamo::rows::rows_by_day(breakdown) {
                    worker.note_unfolded((site.clone(), *sub, day), now_s, 0);
                }
            }
            worker.keep_state(flush);
            Ok(())
        })
        .await?;
        Ok(replayed)
    }

    /// Reads `shard` from `from` up to and including the record `until` (`None`: to the
    /// shard's end), handing each page of records to `page`.
    async fn read_records(
        &mut self,
        shard: &str,
        from: StartAt,
        until: Option<&str>,
        page_of: &mut RecordPages<'_>,
    ) -> Result<(), WorkerError> {
        let ctx = self.ctx.clone();
        let mut iterator = Some(api::shard_iterator(&ctx.kinesis, &ctx.stream, shard, &from).await?);
        while let Some(current) = iterator.take() {
            let page = match api::get_records(&ctx.kinesis, &current, 1000).await {
                Err(KinesisError::Throttled(_)) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    iterator = Some(current);
                    continue;
                }
                other => other?,
            };
            let before_end = |r: &&KinesisRecord| until.is_none_or(|u| !is_after(&r.sequence_number, u));
            let wanted: Vec<KinesisRecord> = page.records.iter().take_while(before_end).cloned().collect();
            let reached = wanted.len() < page.records.len()
                || until.is_some_and(|u| wanted.last().is_some_and(|r| r.sequence_number == u));
            page_of(self, wanted)?;
            // An empty page before `until` means the reader caught up with the shard (kinesalite
            // ends closed shards with one); past the end there is nothing more to read.
            let caught_up = page.records.is_empty() && page.millis_behind_latest.unwrap_or(0) == 0;
            if reached || (caught_up && until.is_some()) {
                break;
            }
            iterator = page.next_iterator;
        }
        Ok(())
    }

    /// Writes a snapshot of the state, if the interval has passed (or `force`).
    async fn snapshot(&mut self) -> Result<(), WorkerError> {
        let ctx = self.ctx.clone();
        let cutoff = self.latest_ms - SESSION_TIMEOUT_MS;
        self.sessions.retain(|_, s| s.last_ms >= cutoff);
        let latest = self.latest_ms;
        self.sightings.retain(|_, (touched, _)| sightings_kept(*touched, latest));
        let started = Instant::now();
        let payload = snapshots::encode(&SnapshotOf {
            flush_seq: self.lease.flush_seq,
            end_sequence: &self.lease.checkpoint,
            sessions: self.sessions.iter().collect(),
            sightings: self.sightings.iter().collect(),
            unfolded: self.unfolded.iter().collect(),
        })?;
        let now_s = jiff::Timestamp::now().as_second();
        let store = (&ctx.dynamo, &ctx.objects);
        let writer = (self.lease.shard_id.as_str(), self.lease.epoch);
        let bytes = snapshots::write(store, &ctx.tables, writer, self.lease.flush_seq, payload, now_s).await?;
        tracing::info!(
            shard_id = self.lease.shard_id,
            sessions = self.sessions.len(),
            sightings = self.sightings.len(),
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        self.last_snapshot = Instant::now();
        Ok(())
    }

    /// Keeps, of the unfolded days inherited from parents, those of the lineages this shard
    /// carries (whose partition key hashes into its range): only a lineage's writer may fold it,
    /// between its own flushes, so that no delta of it is in flight during a fold.
    async fn keep_own_unfolded(&mut self) -> Result<(), WorkerError> {
        let ctx = self.ctx.clone();
        let shards = api::list_shards(&ctx.kinesis, &ctx.stream).await?;
        let Some(own) = shards.iter().find(|s| s.shard_id == self.lease.shard_id) else { return Ok(()) };
        let range =
            own.starting_hash_key.parse::<u128>().unwrap_or(0)..=own.ending_hash_key.parse().unwrap_or(u128::MAX);
        self.unfolded.retain(|(site, sub, _), _| range.contains(&hash_key(&format!("{site}#{sub}"))));
        Ok(())
    }

    /// Takes in the state of a snapshot.
    fn take_snapshot(&mut self, snapshot: Snapshot) {
        self.sessions.extend(snapshot.sessions);
        self.sightings.extend(snapshot.sightings);
        for (key, known) in snapshot.unfolded {
            let held = self.unfolded.entry(key).or_insert(known);
            *held = merged_unfolded(*held, known);
        }
    }

    /// Completes a flush that was logged but not committed: rebuilds it from the records it
    /// covers, on the state as of the checkpoint, and applies it. Returns whether the shard is
    /// done.
    async fn recover(&mut self) -> Result<bool, WorkerError> {
        let ctx = self.ctx.clone();
        let next = self.lease.flush_seq + 1;
        if let Some(previous) =
            dynamo::flush_log::read(&ctx.dynamo, &ctx.tables, &self.lease.shard_id, next - 1).await?
        {
            self.last_time_s = self.last_time_s.max(previous.time_s);
        }
        let Some(record) = dynamo::flush_log::read(&ctx.dynamo, &ctx.tables, &self.lease.shard_id, next).await? else {
            return Ok(false);
        };
        let from = match self.lease.checkpoint.as_str() {
            Lease::TRIM_HORIZON => StartAt::TrimHorizon,
            sequence => StartAt::AfterSequenceNumber(sequence.to_owned()),
        };
        let until = (!record.shard_end).then(|| record.end_sequence.clone());
        let mut records = Vec::new();
        let shard = self.lease.shard_id.clone();
        self.read_records(&shard, from, until.as_deref(), &mut |_, page| {
            records.extend(page);
            Ok(())
        })
        .await?;
        let entries = self.decode(&records);
        let mut flush = self.build(&entries)?;
        let applied = self.apply(&record, &mut flush).await?;
        tracing::info!(
            shard_id = self.lease.shard_id,
            seq = next,
            entries = entries.len(),
            written = applied.written,
            "re-applied a logged flush"
        );
        self.commit(&record).await?;
        self.after_apply(&record, &applied, flush);
        Ok(record.shard_end)
    }

    async fn flush_loop(
        &mut self,
        batches: &mut mpsc::Receiver<ShardBatch>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Outcome, WorkerError> {
        loop {
            let first = tokio::select! {
                batch = batches.recv() => Some(batch),
                _ = stop.wait_for(|s| *s) => Some(None),
                () = tokio::time::sleep(self.fold_tick()) => None,
            };
            let Some(first) = first else {
                self.fold_due().await;
                continue;
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
        let started = Instant::now();
        let shard_end = gathered.last().is_some_and(|b| b.shard_end);
        let last_sequence = gathered.iter().rev().find_map(|b| b.records.last()).map(|r| r.sequence_number.clone());
        for batch in &gathered {
            telemetry::batch_read(&batch.shard_id, batch.records.len(), batch.millis_behind_latest);
        }
        let records: Vec<KinesisRecord> = gathered.into_iter().flat_map(|b| b.records).collect();
        let entries = self.decode(&records);
        let mut flush = self.build(&entries)?;
        let end_sequence = match (last_sequence, shard_end) {
            (Some(sequence), false) => sequence,
            (_, true) => Lease::SHARD_END.to_owned(),
            (None, false) => return Ok(()),
        };
        let now_s = jiff::Timestamp::now().as_second();
        let record = FlushRecord {
            shard_id: self.lease.shard_id.clone(),
            seq: self.lease.flush_seq + 1,
            end_sequence,
            shard_end,
            time_s: now_s.max(self.last_time_s),
        };
        let ctx = self.ctx.clone();
        dynamo::flush_log::write(&ctx.dynamo, &ctx.tables, &self.lease, &record, now_s).await?;
        let applied = self.apply(&record, &mut flush).await?;
        self.commit(&record).await?;
        tracing::debug!(shard_id = record.shard_id, seq = record.seq, entries = entries.len(), ?applied, "flushed");
        telemetry::flushed(started.elapsed().as_secs_f64(), applied.written + applied.already, applied.throttled);
        for ((_, reason), count) in &flush.drops {
            metrics::counter!(telemetry::DROPPED, "reason" => reason.as_str()).increment(*count);
        }
        self.after_apply(&record, &applied, flush);
        if self.last_snapshot.elapsed() >= ctx.snapshot_interval {
            self.snapshot().await?;
        }
        self.fold_due().await;
        Ok(())
    }

    /// Applies a logged flush: its rollup deltas and drop counts to DynamoDB, its segment rows
    /// (taken out of it) to S3, both idempotently. The lineage days it wrote segments for count
    /// as unfolded too (they are the days of its deltas).
    async fn apply(&self, record: &FlushRecord, flush: &mut Flush) -> Result<dynamo::apply::Applied, WorkerError> {
        let ctx = &self.ctx;
        let rows = std::mem::take(&mut flush.segments);
        let (applied, written) = tokio::try_join!(
            dynamo::apply::apply(&ctx.dynamo, &ctx.tables, &ctx.region, record, flush),
            segments::write::write_flush(&ctx.segments, &ctx.region, record, rows),
        )?;
        let mut applied = applied;
        let known: std::collections::HashSet<(String, u16, Day)> =
            applied.days.iter().map(|(site, sub, day, _)| (site.clone(), *sub, *day)).collect();
        for (site, sub, day, _) in written.days {
            if !known.contains(&(site.clone(), sub, day)) {
                applied.days.push((site, sub, day, 0));
            }
        }
        Ok(applied)
    }

    /// Takes an applied flush into the state: its visits and sightings, its unfolded days.
    fn after_apply(&mut self, record: &FlushRecord, applied: &dynamo::apply::Applied, flush: Flush) {
        self.last_time_s = self.last_time_s.max(record.time_s);
        for (site, sub, day, bytes) in &applied.days {
            self.note_unfolded((site.clone(), *sub, *day), record.time_s, *bytes);
        }
        self.keep_state(flush);
    }

    /// Notes a delta of `bytes` written at `time_s` for a lineage's day.
    fn note_unfolded(&mut self, key: (String, u16, Day), time_s: i64, bytes: usize) {
        let one = Unfolded { oldest_s: time_s, newest_s: time_s, deltas: 1, bytes: bytes as u64 };
        let held = self.unfolded.entry(key).or_insert(Unfolded { deltas: 0, bytes: 0, ..one });
        *held = merged_unfolded(*held, one);
    }

    /// How long the fold margin is: deltas are folded up to this long before now, so that a
    /// later holder whose clock is behind by less still writes after the fold.
    fn fold_margin_s(&self) -> i64 {
        i64::try_from((self.ctx.fold_interval / 4).as_secs()).unwrap_or(60).clamp(1, 60)
    }

    /// How often an idle worker looks for days to fold.
    fn fold_tick(&self) -> Duration {
        (self.ctx.fold_interval / 4).clamp(Duration::from_millis(200), Duration::from_secs(60))
    }

    /// Folds every day whose unfolded deltas are many ([`FOLD_AFTER_DELTAS`]), large
    /// ([`FOLD_AFTER_BYTES`]) or a fold interval old, if the worker still holds the shard: it
    /// folds up to a time before it confirmed that, so every flush of a later holder comes after
    /// what it folds. A failed fold is logged and tried again later (its deltas stay readable
    /// meanwhile).
    async fn fold_due(&mut self) {
        let now_s = jiff::Timestamp::now().as_second();
        let interval = i64::try_from(self.ctx.fold_interval.as_secs()).unwrap_or(i64::MAX);
        let upto = now_s - self.fold_margin_s();
        let is_due = |u: &Unfolded| {
            u.oldest_s <= upto
                && (u.deltas >= FOLD_AFTER_DELTAS
                    || u.bytes >= FOLD_AFTER_BYTES
                    || u.oldest_s <= now_s.saturating_sub(interval))
        };
        if !self.unfolded.values().any(is_due) {
            return;
        }
        if let Err(error) = self.ctx.leases.confirm(&self.lease).await {
            tracing::info!(shard_id = self.lease.shard_id, %error, "not folding: the lease is not confirmed");
            return;
        }
        let due: Vec<(String, u16, Day)> =
            self.unfolded.iter().filter(|(_, u)| is_due(u)).map(|(key, _)| key.clone()).collect();
        let started = Instant::now();
        let ctx = self.ctx.clone();
        let mut running = tokio::task::JoinSet::new();
        let mut done = Vec::new();
        for key in due {
            if running.len() >= FOLD_CONCURRENCY
                && let Some(Ok(result)) = running.join_next().await
            {
                done.push(result);
            }
            let ctx = ctx.clone();
            running.spawn(async move {
                let (site, sub, day) = &key;
                let lineage = (site.as_str(), ctx.region.as_str(), *sub);
                let result = dynamo::folds::fold(&ctx.dynamo, &ctx.tables.aggregates, lineage, *day, upto).await;
                let result = match result {
                    Ok(folded) => segments::fold::fold(&ctx.segments, lineage, *day, upto).await.map(|_| folded),
                    Err(error) => Err(error),
                };
                (key, result)
            });
        }
        while let Some(joined) = running.join_next().await {
            if let Ok(result) = joined {
                done.push(result);
            }
        }
        let (mut days, mut deltas) = (0, 0);
        for (key, result) in done {
            match result {
                Ok(folded) => {
                    days += 1;
                    deltas += folded.deltas;
                    match self.unfolded.get_mut(&key) {
                        Some(held) if held.newest_s <= upto => {
                            self.unfolded.remove(&key);
                        }
                        // Deltas written after `upto` stay: at least one, of unknown size.
                        Some(held) => *held = Unfolded { oldest_s: upto + 1, deltas: 1, bytes: 0, ..*held },
                        None => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(site = key.0, sub = key.1, day = key.2, %error, "fold failed; retried later")
                }
            }
        }
        tracing::debug!(
            shard_id = self.lease.shard_id,
            days,
            deltas,
            ms = started.elapsed().as_millis() as u64,
            "folded"
        );
    }

    /// The entries of records, with their lineage sub-partition, duplicates dropped.
    fn decode(&mut self, records: &[KinesisRecord]) -> Vec<(LogEntry, u16)> {
        let mut entries = Vec::new();
        for record in records {
            let sub = record.partition_key.rsplit('#').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            match unpack(&record.data) {
                Ok(unpacked) => entries.extend(unpacked.into_iter().map(|e| (e, sub))),
                Err(error) => {
                    tracing::error!(sequence = record.sequence_number, %error, "skipping an undecodable record")
                }
            }
        }
        let decoded = entries.len();
        entries.retain(|(entry, _)| match entry {
            LogEntry::Event(event) => self.recent.first_time(event.id),
            // Drops of codec version 1 have no id and cannot be told apart: each counts.
            LogEntry::Drop(drop) => drop.id.is_none_or(|id| self.recent.first_time(id)),
            LogEntry::Drops(drops) => self.recent.first_time(drops.id),
        });
        metrics::counter!(telemetry::ENTRIES).increment(decoded as u64);
        metrics::counter!(telemetry::DUPLICATES).increment((decoded - entries.len()) as u64);
        entries
    }

    /// The flush of `entries` on top of the current state.
    fn build(&mut self, entries: &[(LogEntry, u16)]) -> Result<Flush, WorkerError> {
        let registry = self.ctx.registry.snapshot();
        let zone_of = |site: &str| registry.site(site).map(|s| s.timezone.clone());
        let mut flush = Flush::default().with_facts(std::mem::take(&mut self.facts));
        for (entry, sub) in entries {
            flush.add(entry, *sub, &zone_of, &*self).map_err(|e| StoreError::Other(format!("{e:#}")))?;
        }
        self.latest_ms = self.latest_ms.max(flush.latest_ms);
        self.facts = flush.take_facts();
        Ok(flush)
    }

    /// Takes a flush's visit and sighting changes into the state.
    fn keep_state(&mut self, flush: Flush) {
        for (key, session) in flush.sessions {
            match session {
                Some(session) => self.sessions.insert(key, session),
                None => self.sessions.remove(&key),
            };
        }
        let touched = self.latest_ms;
        self.sightings.extend(flush.sightings.into_iter().map(|(key, seen)| (key, (touched, seen))));
    }

    async fn commit(&mut self, record: &FlushRecord) -> Result<(), WorkerError> {
        let ctx = &self.ctx;
        let lease = ctx.leases.commit_flush(&self.lease, &record.end_sequence, record.seq).await;
        self.lease = lease.map_err(WorkerError::Lease)?;
        Ok(())
    }
}

fn records(gathered: &[ShardBatch]) -> usize {
    gathered.iter().map(|b| b.records.len()).sum()
}

impl SessionLookup for Worker {
    fn session(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Session>> {
        Ok(self.sessions.get(&(site.to_owned(), visitor)).cloned())
    }

    fn sightings(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Sightings>> {
        Ok(self.sightings.get(&(site.to_owned(), visitor)).map(|(_, seen)| seen.clone()))
    }
}

/// The hash key Kinesis routes a partition key by: its MD5 as a 128-bit number.
fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(md5::compute(partition_key.as_bytes()).0)
}

/// Whether sequence number `a` comes after `b` in a shard (decimal strings of any length).
fn is_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::is_after;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(is_after(
            "49590338271490256608559692538361571095921575989136588899",
            "49590338271490256608559692538361571095921575989136588898"
        ));
        assert!(is_after("100", "99"));
        assert!(!is_after("99", "99"));
    }
}
