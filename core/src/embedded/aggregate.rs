//! The aggregator: reads the log after the store's checkpoint, turns entries into rollup deltas,
//! segment rows and visit updates, and applies the rollups and segment rows with the new
//! checkpoint in one store transaction; between flushes it lets the store persist pending
//! segments when they are due.
//!
//! Building a flush and applying the one before it overlap (on two threads): flush N+1 is built
//! while flush N commits, reading visits and sightings from N where N holds them, then from the
//! changes committed since the last state snapshot, then from the store. Flushes still commit one
//! after the other, each with its log offset; if N fails, N+1 is dropped and the next attempt
//! starts again from the store's checkpoint.
//!
//! Open visits and sightings are not written with every flush: the changes of committed flushes
//! stay in memory and go to the store's state database every so often, on a thread of their own
//! while the next flushes build and commit (a state snapshot, `state.rs`); on start, the entries
//! between the last snapshot and the applied offset are replayed to rebuild them.
//!
//! The same code path will read Kinesis; here the source is the embedded log.

use crate::embedded::log::EventLog;
use crate::embedded::state::{Layers, StateDelta};
use crate::embedded::store::{Progress, Store};
use crate::pipeline::flush::{Flush, SessionLookup};
use crate::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_model::codec;
use tokio::sync::watch;

/// Most log entries one flush applies, unless set otherwise (`--flush-max-entries`).
pub const MAX_ENTRIES_PER_FLUSH: usize = 50_000;
/// Log entries applied between two state snapshots, unless set otherwise
/// (`--state-snapshot-entries`): at most this many are replayed after a crash.
pub const STATE_SNAPSHOT_ENTRIES: usize = 500_000;
/// Longest time between two state snapshots while entries are applied.
const STATE_SNAPSHOT_EVERY: Duration = Duration::from_secs(60);

/// How the aggregator batches its work (`--flush-max-entries`, `--state-snapshot-entries`).
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most log entries one flush applies.
    pub max_entries: usize,
    /// Log entries applied between two state snapshots.
    pub snapshot_entries: usize,
}

impl Default for Batching {
    fn default() -> Batching {
        Batching { max_entries: MAX_ENTRIES_PER_FLUSH, snapshot_entries: STATE_SNAPSHOT_ENTRIES }
    }
}

/// The aggregator's inputs.
pub struct Aggregator {
    /// The log to read.
    pub log: EventLog,
    /// The store to write.
    pub store: Arc<Store>,
    /// Sites, for their time zones.
    pub registry: Registry,
    /// Shortest time between two flushes.
    pub flush_interval: Duration,
    /// Flush and snapshot sizes.
    pub batching: Batching,
    /// On a clean stop, also persist every pending segment (while the visit state is written).
    pub persist_on_stop: bool,
}

/// What one flush hands to the next: the user agents and pages normalised so far, the visit state
/// committed since the last snapshot, the snapshot being written (if any), and the flush being
/// applied (with the log position it reaches).
#[derive(Default)]
struct Carry {
    facts: crate::pipeline::fact_cache::FactCache,
    delta: Arc<StateDelta>,
    snapshotting: Option<Snapshotting>,
    applying: Option<Applying>,
}

/// A flush committing on its own thread.
struct Applying {
    flush: Arc<Flush>,
    entries: usize,
    progress: Progress,
    done: std::thread::JoinHandle<anyhow::Result<()>>,
}

/// A state snapshot being written on its own thread: the changes it writes, and the log time it
/// writes them at.
struct Snapshotting {
    state: Arc<StateDelta>,
    until_ms: i64,
    done: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Carry {
    /// Waits until the flush being applied is committed (or failed); once committed, its visit
    /// state joins the delta. Returns the progress it committed, if any.
    fn finish_applying(&mut self) -> anyhow::Result<Option<Progress>> {
        let Some(applying) = self.applying.take() else { return Ok(None) };
        applying.done.join().map_err(|_| anyhow::anyhow!("the store writer panicked"))??;
        let (sessions, sightings) = match Arc::try_unwrap(applying.flush) {
            Ok(flush) => (flush.sessions, flush.sightings),
            Err(shared) => (shared.sessions.clone(), shared.sightings.clone()),
        };
        Arc::make_mut(&mut self.delta).absorb(sessions, sightings, applying.entries, applying.progress.until_ms);
        Ok(Some(applying.progress))
    }

    /// Takes in the snapshot being written once it is done (or, with `wait`, waits for it): its
    /// layer goes, and if it failed its changes go back into the delta, for the next snapshot.
    fn collect_snapshot(&mut self, wait: bool) {
        let Some(snapshot) = self.snapshotting.take_if(|s| wait || s.done.is_finished()) else { return };
        let failed = match snapshot.done.join() {
            Ok(Ok(())) => return,
            Ok(Err(error)) => format!("{error:#}"),
            Err(_) => "the state snapshot writer panicked".to_owned(),
        };
        tracing::error!(error = failed, "writing the visit state failed; it stays in memory until the next snapshot");
        Arc::make_mut(&mut self.delta).absorb_older(&snapshot.state);
    }
}

impl Aggregator {
    /// Runs until `shutdown` turns true, then applies what the log holds and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let this = Arc::new(self);
        let mut head = this.log.head();
        let worker = this.clone();
        let delta = tokio::task::spawn_blocking(move || worker.restore_state()).await??;
        let mut carry = Carry { delta: Arc::new(delta), ..Carry::default() };
        loop {
            let started = Instant::now();
            // Whether stopping was asked before this flush looked at the log: only then does an
            // empty log mean everything asked for is applied (entries may be appended, and stopping
            // asked, while a flush waits for the one before it to commit).
            let stopping = *shutdown.borrow();
            let worker = this.clone();
            let (flushed, carried) = tokio::task::spawn_blocking(move || {
                let flushed = worker.flush_once(&mut carry);
                (flushed, carry)
            })
            .await?;
            carry = carried;
            let pause = match flushed {
                Ok(0) if stopping => {
                    // A clean stop leaves the whole visit state in the store: nothing to replay;
                    // and, if asked, the pending segments in files, written meanwhile.
                    let (store, persist) = (this.store.clone(), this.persist_on_stop);
                    return tokio::task::spawn_blocking(move || {
                        carry.collect_snapshot(true);
                        let progress = store.progress()?;
                        std::thread::scope(|scope| {
                            let persisting = persist.then(|| scope.spawn(|| store.persist_segments(true)));
                            let state = store.write_state(&carry.delta, progress);
                            if let Some(persisting) = persisting {
                                persisting.join().map_err(|_| anyhow::anyhow!("persisting segments panicked"))??;
                            }
                            state
                        })
                    })
                    .await?;
                }
                Ok(0) if *shutdown.borrow() => continue,
                Ok(0) => {
                    tokio::select! {
                        _ = head.changed() => {}
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
                // Shutting down: no pause, go on until the log is applied.
                Ok(_) if *shutdown.borrow() => continue,
                // Let the next batch gather for the rest of the interval.
                Ok(_) => this.flush_interval.saturating_sub(started.elapsed()),
                // This flush was not applied; the next attempt starts again from the checkpoint
                // (or after a flush still committing, if this one failed before waiting for it).
                Err(error) if *shutdown.borrow() => return Err(error),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "flush failed; retrying in 1 s");
                    Duration::from_secs(1)
                }
            };
            tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = shutdown.changed() => {} }
        }
    }

    /// Builds the next batch of log entries into a flush while the previous one commits, then
    /// starts committing it; returns how many entries it took (0 once the log is applied and
    /// nothing is committing).
    fn flush_once(&self, carry: &mut Carry) -> anyhow::Result<usize> {
        let progress = match &carry.applying {
            Some(applying) => applying.progress,
            None => self.store.progress()?,
        };
        let started = Instant::now();
        let entries = self.log.read_after(progress.offset, self.batching.max_entries.max(1))?;
        let Some(&(last_offset, _)) = entries.last() else {
            // Nothing new: wait for the flush in flight, so that 0 means "all applied".
            return self.finish_applying(carry).map(|()| 0);
        };
        let read = started.elapsed();
        let mut flush = Flush::default().with_facts(std::mem::take(&mut carry.facts));
        // A snapshot that is done is in the store now: the reader opened below sees it.
        carry.collect_snapshot(false);
        {
            let stored = self.store.state_reader()?;
            let state = Layers {
                applying: carry.applying.as_ref().map(|a| &*a.flush),
                delta: &carry.delta,
                snapshotting: carry.snapshotting.as_ref().map(|s| (&*s.state, s.until_ms)),
                stored: &stored,
            };
            self.build(&mut flush, &entries, &state)?;
        }
        let built = started.elapsed() - read;
        carry.facts = flush.take_facts();
        // The flush this one was built on must commit before this one may.
        let waiting = Instant::now();
        self.finish_applying(carry)?;
        let waited = waiting.elapsed();
        let until_ms = progress.until_ms.max(flush.latest_ms);
        let applied = entries.len();
        let progress = Progress { offset: last_offset, until_ms };
        let flush = Arc::new(flush);
        let (store, committing) = (self.store.clone(), flush.clone());
        let done = std::thread::Builder::new().name("store-apply".into()).spawn(move || {
            let started = Instant::now();
            store.apply(&committing, progress)?;
            tracing::debug!(
                entries = applied,
                offset = last_offset,
                read_ms = read.as_millis() as u64,
                build_ms = built.as_millis() as u64,
                wait_ms = waited.as_millis() as u64,
                apply_ms = started.elapsed().as_millis() as u64,
                "flushed"
            );
            if store.persist_due() {
                // In the background, so flushes (and freshness) go on while Parquet files are
                // written. An error leaves the rows pending (durable, visible); a later flush
                // tries again. A process that stops meanwhile leaves a file no commit lists,
                // deleted on open.
                let store = store.clone();
                let persisting = std::thread::Builder::new().name("segment-persist".into()).spawn(move || {
                    if let Err(error) = store.persist_segments(false) {
                        tracing::error!(error = format!("{error:#}"), "persisting segments failed; they stay pending");
                    }
                });
                if let Err(error) = persisting {
                    tracing::error!(%error, "cannot start persisting segments; they stay pending");
                }
            }
            Ok(())
        })?;
        carry.applying = Some(Applying { flush, entries: applied, progress, done });
        Ok(applied)
    }

    /// Waits for the flush being applied; once it is committed, starts a state snapshot on a
    /// thread of its own if one is due and none is being written.
    fn finish_applying(&self, carry: &mut Carry) -> anyhow::Result<()> {
        let Some(committed) = carry.finish_applying()? else { return Ok(()) };
        carry.collect_snapshot(false);
        let due = carry.delta.entries >= self.batching.snapshot_entries.max(1)
            || carry.delta.since.elapsed() >= STATE_SNAPSHOT_EVERY;
        if carry.snapshotting.is_some() || !due {
            return Ok(());
        }
        let fresh = Arc::new(StateDelta::sized_like(&carry.delta));
        let state = std::mem::replace(&mut carry.delta, fresh);
        let (store, writing) = (self.store.clone(), state.clone());
        let spawned = std::thread::Builder::new().name("state-snapshot".into()).spawn(move || {
            let started = Instant::now();
            store.write_state(&writing, committed)?;
            tracing::debug!(
                entries = writing.entries,
                offset = committed.offset,
                took_ms = started.elapsed().as_millis() as u64,
                "state snapshot written"
            );
            Ok(())
        });
        match spawned {
            Ok(done) => carry.snapshotting = Some(Snapshotting { state, until_ms: committed.until_ms, done }),
            Err(error) => {
                tracing::error!(%error, "cannot start a state snapshot; the visit state stays in memory");
                carry.delta = state;
            }
        }
        Ok(())
    }

    /// Adds `entries` to `flush`, finding the visit state it does not hold in `state`.
    fn build(&self, flush: &mut Flush, entries: &[(u64, Vec<u8>)], state: &dyn SessionLookup) -> anyhow::Result<()> {
        let registry = self.registry.snapshot();
        let zone_of = |site: &str| registry.site(site).map(|s| s.timezone.clone());
        for (offset, bytes) in entries {
            match codec::decode(bytes) {
                Ok(entry) => flush.add(&entry, 0, &zone_of, state)?,
                Err(error) => tracing::error!(offset, %error, "skipping an undecodable log entry"),
            }
        }
        Ok(())
    }

    /// The visit state that flushes applied after the store's last state snapshot made: their
    /// log entries replayed through the same flush code, keeping only the visits and sightings
    /// (their rollups and segment rows are in the store already).
    fn restore_state(&self) -> anyhow::Result<StateDelta> {
        let (mut at, applied) = (self.store.state_offset()?, self.store.progress()?);
        let mut delta = StateDelta::default();
        let started = Instant::now();
        // Their own log times are not kept; the applied one is later, so the replayed state is
        // kept at least as long as it would have been.
        let until_ms = applied.until_ms;
        while at < applied.offset {
            let mut entries = self.log.read_after(at, self.batching.max_entries.max(1))?;
            entries.retain(|(offset, _)| *offset <= applied.offset);
            let Some(&(last, _)) = entries.last() else { break };
            let mut flush = Flush::default();
            {
                let stored = self.store.state_reader()?;
                let layers = Layers { applying: None, delta: &delta, snapshotting: None, stored: &stored };
                self.build(&mut flush, &entries, &layers)?;
            }
            delta.absorb(flush.sessions, flush.sightings, entries.len(), until_ms);
            at = last;
        }
        if delta.entries > 0 {
            tracing::warn!(
                entries = delta.entries,
                took_ms = started.elapsed().as_millis() as u64,
                "the last run stopped without writing its visit state (a crash?): restored it by replaying the log \
                 entries applied after the last state snapshot"
            );
        }
        Ok(delta)
    }
}
