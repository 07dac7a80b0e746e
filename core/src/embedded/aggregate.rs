//! The aggregator: reads the log after the store's checkpoint, turns entries into rollup deltas,
//! segment rows and visit updates, and applies them with the new checkpoint in one store
//! transaction; between flushes it lets the store persist pending segments when they are due.
//!
//! Building a flush and applying the one before it overlap (on two threads): flush N+1 is built
//! while flush N commits, reading visits and sightings from N where N holds them (N is what the
//! store will hold once it commits) and from the store otherwise. Flushes still commit one after
//! the other, each with its log offset; if N fails, N+1 is dropped and the next attempt starts
//! again from the store's checkpoint.
//!
//! The same code path will read Kinesis; here the source is the embedded log.

use crate::embedded::log::EventLog;
use crate::embedded::store::{Progress, StateReader, Store};
use crate::pipeline::flush::{Flush, SessionLookup, SiteVisitor};
use crate::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_model::breakdown::Sightings;
use tally_model::codec;
use tally_model::limits::SESSION_TIMEOUT_MS;
use tally_model::session::Session;
use tokio::sync::watch;

/// Most log entries one flush applies, unless set otherwise (`--flush-max-entries`).
pub const MAX_ENTRIES_PER_FLUSH: usize = 50_000;
/// How often (in event time) ended visits and old sightings are deleted from the store…
const EXPIRE_EVERY_MS: i64 = 60_000;
/// …and at most this often in wall time (an import moves event time by hours per flush; each
/// expiry scans both tables).
const EXPIRE_AT_MOST_EVERY: Duration = Duration::from_secs(10);

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
    /// Most log entries one flush applies.
    pub max_entries: usize,
}

/// What one flush hands to the next: when it last expired state, the user agents classified so
/// far, and the flush being applied (with the log position it reaches).
#[derive(Default)]
struct Carry {
    expired_at_ms: i64,
    expired_at: Option<Instant>,
    agents: std::collections::HashMap<String, tally_model::agent::Agent>,
    applying: Option<Applying>,
}

/// A flush committing on its own thread.
struct Applying {
    flush: Arc<Flush>,
    progress: Progress,
    done: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Applying {
    /// Waits until it is committed (or failed).
    fn finish(self) -> anyhow::Result<()> {
        self.done.join().map_err(|_| anyhow::anyhow!("the store writer panicked"))?
    }
}

/// Visits and sightings as they will be once the flush being applied commits: that flush's
/// where it holds them, the store's otherwise.
struct Overlay<'a> {
    applying: Option<&'a Flush>,
    stored: &'a StateReader,
}

impl SessionLookup for Overlay<'_> {
    fn session(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Session>> {
        if let Some(held) = self.applying.and_then(|f| f.sessions.get(&SiteVisitor(site, visitor))) {
            return Ok(held.clone());
        }
        self.stored.session(site, visitor)
    }

    fn sightings(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Sightings>> {
        if let Some(held) = self.applying.and_then(|f| f.sightings.get(&SiteVisitor(site, visitor))) {
            return Ok(Some(held.clone()));
        }
        self.stored.sightings(site, visitor)
    }
}

impl Aggregator {
    /// Runs until `shutdown` turns true, then applies what the log holds and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let this = Arc::new(self);
        let mut head = this.log.head();
        let mut carry = Carry::default();
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
                Ok(0) if stopping => return Ok(()),
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
        let entries = self.log.read_after(progress.offset, self.max_entries.max(1))?;
        let Some(&(last_offset, _)) = entries.last() else {
            // Nothing new: wait for the flush in flight, so that 0 means "all applied".
            return match carry.applying.take() {
                Some(applying) => applying.finish().map(|()| 0),
                None => Ok(0),
            };
        };
        let started = Instant::now();
        let mut flush = Flush::with_breakdowns().with_agents(std::mem::take(&mut carry.agents));
        let registry = self.registry.snapshot();
        let zone_of = |site: &str| registry.site(site).map(|s| s.timezone.clone());
        let stored = self.store.state_reader()?;
        let state = Overlay { applying: carry.applying.as_ref().map(|a| &*a.flush), stored: &stored };
        for (offset, bytes) in &entries {
            match codec::decode(bytes) {
                Ok(entry) => flush.add(&entry, 0, &zone_of, &state)?,
                Err(error) => tracing::error!(offset, %error, "skipping an undecodable log entry"),
            }
        }
        drop(stored);
        let built = started.elapsed();
        carry.agents = flush.take_agents();
        // The flush this one was built on must commit before this one may.
        if let Some(applying) = carry.applying.take() {
            applying.finish()?;
        }
        let until_ms = progress.until_ms.max(flush.latest_ms);
        let due = until_ms - carry.expired_at_ms >= EXPIRE_EVERY_MS
            && carry.expired_at.is_none_or(|at| at.elapsed() >= EXPIRE_AT_MOST_EVERY);
        let expire_before = due.then_some(until_ms - SESSION_TIMEOUT_MS);
        if due {
            (carry.expired_at_ms, carry.expired_at) = (until_ms, Some(Instant::now()));
        }
        let applied = entries.len();
        let progress = Progress { offset: last_offset, until_ms };
        let flush = Arc::new(flush);
        let (store, committing) = (self.store.clone(), flush.clone());
        let done = std::thread::Builder::new().name("store-apply".into()).spawn(move || {
            let started = Instant::now();
            store.apply(&committing, progress, expire_before)?;
            tracing::debug!(
                entries = applied,
                offset = last_offset,
                build_ms = built.as_millis() as u64,
                apply_ms = started.elapsed().as_millis() as u64,
                "flushed"
            );
            if store.persist_due() {
                // In the background, so flushes (and freshness) go on while Parquet files are
                // written. An error leaves the rows pending (durable, visible); a later flush
                // tries again. A process that stops meanwhile leaves a file no commit lists,
                // deleted on open.
                let store = store.clone();
                std::thread::Builder::new().name("segment-persist".into()).spawn(move || {
                    if let Err(error) = store.persist_segments(false) {
                        tracing::error!(error = format!("{error:#}"), "persisting segments failed; they stay pending");
                    }
                })?;
            }
            Ok(())
        })?;
        carry.applying = Some(Applying { flush, progress, done });
        Ok(applied)
    }
}
