//! The aggregator: reads the log after the store's checkpoint, turns entries into rollup deltas,
//! segment rows and visit updates, and applies them with the new checkpoint in one store
//! transaction; between flushes it lets the store persist pending segments when they are due.
//!
//! The same code path will read Kinesis; here the source is the embedded log.

use crate::embedded::log::EventLog;
use crate::embedded::store::{Progress, Store};
use crate::pipeline::flush::Flush;
use crate::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_model::codec;
use tally_model::limits::SESSION_TIMEOUT_MS;
use tokio::sync::watch;

/// Most log entries one flush applies.
const MAX_ENTRIES_PER_FLUSH: usize = 50_000;
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
}

/// What one flush hands to the next: when it last expired state, and the user agents
/// classified so far.
#[derive(Default)]
struct Carry {
    expired_at_ms: i64,
    expired_at: Option<Instant>,
    agents: std::collections::HashMap<String, tally_model::agent::Agent>,
}

impl Aggregator {
    /// Runs until `shutdown` turns true, then applies what the log holds and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let this = Arc::new(self);
        let mut head = this.log.head();
        let mut carry = Carry::default();
        loop {
            let started = Instant::now();
            let worker = this.clone();
            let (flushed, carried) = tokio::task::spawn_blocking(move || {
                let flushed = worker.flush_once(&mut carry);
                (flushed, carry)
            })
            .await?;
            carry = carried;
            let pause = match flushed {
                Ok(0) if *shutdown.borrow() => return Ok(()),
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
                // Nothing was applied; the next attempt starts again from the checkpoint.
                Err(error) if *shutdown.borrow() => return Err(error),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "flush failed; retrying in 1 s");
                    Duration::from_secs(1)
                }
            };
            tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = shutdown.changed() => {} }
        }
    }

    /// Applies the next batch of log entries; returns how many it applied.
    fn flush_once(&self, carry: &mut Carry) -> anyhow::Result<usize> {
        let progress = self.store.progress()?;
        let entries = self.log.read_after(progress.offset, MAX_ENTRIES_PER_FLUSH)?;
        let Some(&(last_offset, _)) = entries.last() else {
            return Ok(0);
        };
        let started = Instant::now();
        let mut flush = Flush::with_breakdowns().with_agents(std::mem::take(&mut carry.agents));
        let registry = self.registry.snapshot();
        let zone_of = |site: &str| registry.site(site).map(|s| s.timezone.clone());
        let state = self.store.state_reader()?;
        for (offset, bytes) in &entries {
            match codec::decode(bytes) {
                Ok(entry) => flush.add(&entry, 0, &zone_of, &state)?,
                Err(error) => tracing::error!(offset, %error, "skipping an undecodable log entry"),
            }
        }
        let built = started.elapsed();
        let until_ms = progress.until_ms.max(flush.latest_ms);
        let due = until_ms - carry.expired_at_ms >= EXPIRE_EVERY_MS
            && carry.expired_at.is_none_or(|at| at.elapsed() >= EXPIRE_AT_MOST_EVERY);
        let expire_before = due.then_some(until_ms - SESSION_TIMEOUT_MS);
        self.store.apply(&flush, Progress { offset: last_offset, until_ms }, expire_before)?;
        if due {
            (carry.expired_at_ms, carry.expired_at) = (until_ms, Some(Instant::now()));
        }
        carry.agents = flush.take_agents();
        let applied = entries.len();
        if self.store.persist_due() {
            // In the background, so flushes (and freshness) go on while Parquet files are
            // written. An error leaves the rows pending (durable, visible); a later flush tries
            // again. A process that stops meanwhile leaves a file no commit lists, deleted on open.
            let store = self.store.clone();
            std::thread::Builder::new().name("segment-persist".into()).spawn(move || {
                if let Err(error) = store.persist_segments(false) {
                    tracing::error!(error = format!("{error:#}"), "persisting segments failed; they stay pending");
                }
            })?;
        }
        tracing::debug!(
            entries = applied,
            offset = last_offset,
            build_ms = built.as_millis() as u64,
            took_ms = started.elapsed().as_millis() as u64,
            "flushed"
        );
        Ok(applied)
    }
}
