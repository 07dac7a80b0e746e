//! `tally serve`: the whole pipeline in one process on embedded storage — ingest, event log,
//! aggregator, store and query API — with a clean shutdown on SIGINT or SIGTERM.

use crate::embedded::aggregate::{Aggregator, Batching};
use crate::embedded::demo;
use crate::embedded::import::{self, Importer};
use crate::embedded::log::EventLog;
use crate::embedded::recent::RecentEvents;
use crate::embedded::retention::{self, Housekeeping, Retentions};
use crate::embedded::stats::EmbeddedStats;
use crate::embedded::store::{Opened, PersistPolicy, Store};
use crate::http::ingest_limit::{IngestLimits, IngestRates, log_refusals};
use crate::http::listen::{announce, shutdown_signal};
use crate::http::query_gate::QueryBudget;
use crate::http::{AppState, IngestState, router};
use crate::pipeline::salts::SaltBook;
use crate::registry::Registry;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long the last flush may take after the server stopped taking requests.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Settings of `tally serve`.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory holding all state.
    pub data_dir: PathBuf,
    /// How many proxies in front are trusted: the client IP is the `X-Forwarded-For` address that
    /// many from the right, and the geo headers are believed only with at least one.
    pub trusted_proxy_hops: u8,
    /// Shortest time between two aggregator flushes.
    pub flush_interval: Duration,
    /// Flush and state snapshot sizes.
    pub batching: Batching,
    /// When pending segment rows are persisted to Parquet.
    pub persist: PersistPolicy,
    /// Bounds on answering queries.
    pub queries: QueryBudget,
    /// Timeouts and the connection cap of the HTTP server.
    pub http: crate::http::server::HttpLimits,
    /// Ingest rate limits per client and per site.
    pub ingest_rates: IngestRates,
    /// How long the event log and the aggregates keep what they hold.
    pub retention: Retentions,
    /// Run the demo (`--demo`): demo sites and their history on a fresh data directory, a key
    /// for the dashboard, and live visits while the server runs.
    pub demo: bool,
}

/// Runs the server until a shutdown signal.
pub async fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    crate::privacy::check_data_dir(dir).with_context(|| format!("making {} private", dir.display()))?;
    let demo = settings.demo.then(|| demo::prepare(dir)).transpose()?;
    let registry = Registry::open(dir)?;
    let busy = || format!("is another `tally serve` running on {}?", dir.display());
    let log = EventLog::open(&dir.join("log.redb")).with_context(busy)?;
    let (store, opened) = Store::open_with(&dir.join("store.redb"), settings.persist).with_context(busy)?;
    if let Opened::Rebuilt { from } = opened {
        tracing::warn!(from, "the store had an older format: rebuilding it from the event log");
    }
    let store = Arc::new(store);
    // `tally import` while the server runs: through this socket, into the same log.
    let importer = Importer::new(log.clone(), registry.clone())?;
    if demo.as_ref().is_some_and(|demo| demo.fresh) {
        let (importer, runtime) = (importer.clone(), tokio::runtime::Handle::current());
        tracing::info!(days = demo::HISTORY_DAYS, "demo: importing the history of its sites");
        tokio::task::spawn_blocking(move || demo::import_history(&importer, &runtime)).await??;
    }
    let import_socket = import::socket::listen(dir, importer, store.clone());
    let limits = Arc::new(IngestLimits::new(settings.ingest_rates));
    let salts = Arc::new(SaltBook::new(dir));
    let ingest = IngestState {
        log: log.clone(),
        salts: salts.clone(),
        trusted_proxy_hops: settings.trusted_proxy_hops,
        limits: limits.clone(),
    };
    let stats = Arc::new(EmbeddedStats { store: store.clone(), log: log.clone() });
    let mut state = AppState::new(registry.clone(), stats, Some(ingest), &settings.queries);
    state.recent = Some(Arc::new(RecentEvents::from_log(&log, jiff::Timestamp::now().as_millisecond())?));
    let (stop, stopped) = watch::channel(false);
    let (stop_refusals, refusals_stopped) = watch::channel(false);
    let logging_refusals = tokio::spawn(log_refusals(limits, log.clone(), refusals_stopped.clone()));
    let housekeeping = Housekeeping {
        log: log.clone(),
        store: store.clone(),
        salts,
        registry: registry.clone(),
        keep: settings.retention,
    };
    let housekeeping = tokio::spawn(retention::run(housekeeping, refusals_stopped));
    let demo_parts = (log.clone(), store.clone());
    let aggregator = Aggregator {
        log,
        store,
        registry,
        flush_interval: settings.flush_interval,
        batching: settings.batching,
        persist_on_stop: false,
    };
    let aggregating = tokio::spawn(aggregator.run(stopped));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let address = listener.local_addr()?;
    announce(address)?;
    let (stop_demo, demo_stopped) = watch::channel(false);
    let live_demo = demo.map(|demo| tokio::spawn(demo::run(demo, address, state.clone(), demo_parts, demo_stopped)));
    tracing::info!(%address, data_dir = %dir.display(), trusted_proxy_hops = settings.trusted_proxy_hops, "tally serve started");
    crate::http::server::serve(listener, router(state), settings.http, shutdown_signal()).await?;
    if let Some(live_demo) = live_demo {
        stop_demo.send_replace(true);
        live_demo.await??;
    }
    drop(import_socket);
    // The last refusals go into the log before the aggregator's last flush reads it.
    stop_refusals.send_replace(true);
    logging_refusals.await?;
    housekeeping.await?;
    tracing::info!("stopped taking requests; applying what the log holds");
    stop.send_replace(true);
    match tokio::time::timeout(DRAIN_DEADLINE, aggregating).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("aggregator did not finish in time; it resumes from its checkpoint on restart"),
    }
    tracing::info!("tally serve stopped");
    Ok(())
}
