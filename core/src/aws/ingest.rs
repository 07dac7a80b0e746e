//! `tally ingest`: the Kinesis consumer process, writing aggregates to DynamoDB.

use crate::aws::clients::{self, AwsSettings};
use crate::aws::consumer::shard_worker::ShardContext;
use crate::aws::consumer::{ConsumerSettings, run_consumer};
use crate::aws::dynamo::Tables;
use crate::aws::dynamo::snapshots::{Objects, ensure_bucket};
use crate::aws::kinesis::shard_reader::ReaderSettings;
use crate::aws::lease::LeaseTable;
use crate::aws::segments::SegmentObjects;
use crate::registry::Registry;
use crate::telemetry;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long the last flushes, snapshots and lease releases may take after SIGTERM.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Settings of `tally ingest`.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// How to reach AWS (or the stand-ins).
    pub aws: AwsSettings,
    /// The Kinesis stream to consume.
    pub stream: String,
    /// The application name: the prefix of the DynamoDB tables.
    pub app: String,
    /// This process's worker id.
    pub worker_id: String,
    /// The data directory whose `registry.json` gives the sites' time zones.
    pub data_dir: PathBuf,
    /// Longest time records wait before they are flushed.
    pub flush_interval: Duration,
    /// How long a lease lasts without renewal.
    pub lease_duration: Duration,
    /// Create the DynamoDB tables if they are missing (for local use).
    pub create_tables: bool,
    /// Most Kinesis records in one flush (a flush also ends at the flush interval).
    pub max_records_per_flush: usize,
    /// How old a day's oldest unfolded delta gets before the day is folded.
    pub fold_interval: Duration,
    /// The S3 bucket of the shard workers' state snapshots.
    pub snapshot_bucket: String,
    /// The S3 bucket of the segment objects (tier 2).
    pub segment_bucket: String,
    /// Shortest time between two snapshots of a shard worker's state.
    pub snapshot_interval: Duration,
    /// Where to serve `/metrics` and `/ready`, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Runs the consumer until SIGINT or SIGTERM.
pub async fn ingest(settings: IngestSettings) -> anyhow::Result<()> {
    // Before anything reaches AWS: without a registry every event would be dropped.
    let registry = Registry::open_existing(&settings.data_dir)?;
    let kinesis = clients::kinesis(&settings.aws).await;
    let dynamo = clients::dynamodb(&settings.aws).await;
    let tables = Tables::named(&settings.app, &settings.aws.region);
    let s3 = clients::s3(&settings.aws).await;
    let objects = Objects { client: s3.clone(), bucket: settings.snapshot_bucket.clone() };
    let segments = SegmentObjects { client: s3, bucket: settings.segment_bucket.clone() };
    if settings.create_tables {
        tables.create_if_missing(&dynamo).await?;
        ensure_bucket(&objects).await?;
        crate::aws::segments::ensure_bucket(&segments).await?;
    }
    let ctx = Arc::new(ShardContext {
        kinesis,
        leases: LeaseTable::new(dynamo.clone(), tables.leases.clone()),
        dynamo,
        stream: settings.stream.clone(),
        region: settings.aws.region.clone(),
        tables,
        registry,
        flush_interval: settings.flush_interval,
        max_records_per_flush: settings.max_records_per_flush,
        snapshot_interval: settings.snapshot_interval,
        fold_interval: settings.fold_interval,
        objects,
        segments,
        reader: ReaderSettings::default(),
    });
    let (stop, stopped) = watch::channel(false);
    if let Some(address) = settings.metrics_listen {
        let handle = telemetry::install()?;
        let stopping = stopped.clone();
        tokio::spawn(async move {
            if let Err(error) = telemetry::serve(address, handle, stopping).await {
                tracing::error!(%error, "metrics endpoint failed");
            }
        });
    }
    let consumer = ConsumerSettings { worker_id: settings.worker_id.clone(), lease_duration: settings.lease_duration };
    let running = tokio::spawn(run_consumer(ctx, consumer, stopped));
    let mut out = std::io::stdout().lock();
    writeln!(out, "consuming {} as {}", settings.stream, settings.worker_id)?;
    out.flush()?;
    drop(out);
    crate::http::listen::shutdown_signal().await;
    // Readiness fails first (the watch turns `/ready` to 503), then the consumer stops.
    stop.send_replace(true);
    match tokio::time::timeout(DRAIN_DEADLINE, running).await {
        Ok(joined) => joined??,
        Err(_) => {
            tracing::warn!("shard workers did not stop in time; their leases expire and the next holder recovers")
        }
    }
    tracing::info!("tally ingest stopped");
    Ok(())
}
