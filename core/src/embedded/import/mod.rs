//! `tally import`: NDJSON events with explicit timestamps into the embedded backend, through the
//! same checks as `POST /api/event` (`model::ingest`), into the event log, then aggregated into
//! both tiers like live events. With `tally serve` running on the data directory, the lines go
//! to the server through its import socket (`socket.rs`) and the server's own aggregator counts
//! them; otherwise this process opens the data directory and aggregates them itself.
//!
//! Each line is one event: the ingest fields (long or short keys) plus `timestamp` (RFC 3339 or
//! ms since the epoch), `user_agent`, `ip` or `visitor` (what the visitor id is made of),
//! optional `country` and optional `id`. An event's id is its `id` field or, without one, a hash
//! of the line's bytes, and the log keeps the ids it imported: running the same file again, or
//! resuming after a crash, counts nothing twice. Visitor ids of imported events use import salts,
//! one per UTC day, derived from a random key kept in the log's file (so re-runs make the same ids);
//! they never match live visitors' ids.

mod lines;
pub mod socket;

pub use crate::pipeline::import_lines::{Summary, render};
pub use lines::Importer;

use crate::embedded::aggregate::{Aggregator, Batching};
use crate::embedded::log::EventLog;
use crate::embedded::store::{Opened, Store};
use crate::pipeline::import_lines::{Input, open_input, progress_bar};
use crate::registry::Registry;
use anyhow::Context;
use indicatif::ProgressBar;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of `tally import`.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// The data directory (of a running `tally serve`, or of none).
    pub data_dir: PathBuf,
    /// The NDJSON input.
    pub input: Input,
    /// Draw a progress bar on standard error.
    pub progress: bool,
    /// Flush and state snapshot sizes (when this process aggregates).
    pub batching: Batching,
}

/// Imports the input and returns what it did once every imported event is aggregated: through
/// a running `tally serve`, or else in this process.
pub async fn import(settings: ImportSettings) -> anyhow::Result<Summary> {
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    let (reader, size) = open_input(&settings.input)?;
    let bar = progress_bar(settings.progress, size);
    if let Some(server) = socket::connect(dir)? {
        tracing::info!(socket = %socket::path(dir).display(), "tally serve is running: importing through it");
        return tokio::task::spawn_blocking(move || socket::send(server, reader, &bar)).await?;
    }
    import_here(dir, reader, bar, settings.batching).await
}

/// Imports with this process's own log writer and aggregator (no `tally serve` running).
async fn import_here(
    dir: &std::path::Path,
    mut reader: Box<dyn BufRead + Send>,
    bar: ProgressBar,
    batching: Batching,
) -> anyhow::Result<Summary> {
    let registry = Registry::open(dir)?;
    let busy = || {
        format!(
            "cannot open the data directory {}: is `tally serve` running on it? Its import socket {} does not answer \
             (a server older than this tally, or a data directory path too long for a socket): stop it for the \
             import, then start it again",
            dir.display(),
            socket::path(dir).display()
        )
    };
    let log = EventLog::open(&dir.join("log.redb")).with_context(busy)?;
    let (store, opened) = Store::open(&dir.join("store.redb")).with_context(busy)?;
    if let Opened::Rebuilt { from } = opened {
        tracing::warn!(
            from,
            "the store had an older format: rebuilding it from the event log before this import counts"
        );
    }
    let importer = Importer::new(log.clone(), registry.clone())?;
    // The aggregator runs beside the reader (the two share the cores) and stops once the stop
    // signal is sent and the log is applied.
    let store = Arc::new(store);
    // On stop it also writes what is still pending to Parquet, so the data directory holds the
    // import as files.
    let aggregator =
        Aggregator { log, store, registry, flush_interval: Duration::ZERO, batching, persist_on_stop: true };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let aggregating = tokio::spawn(aggregator.run(stopped));
    let started = Instant::now();
    let runtime = tokio::runtime::Handle::current();
    let summary = tokio::task::spawn_blocking(move || {
        let summary = importer.read_all(&mut reader, &runtime, &mut |read, accepted| {
            bar.set_position(read);
            bar.set_message(format!("{accepted} events"));
        });
        bar.finish_and_clear();
        summary
    })
    .await??;
    tracing::info!(
        events = summary.accepted,
        took_ms = started.elapsed().as_millis() as u64,
        "import logged; finishing aggregation"
    );
    stop.send_replace(true);
    aggregating.await??;
    Ok(summary)
}
