//! The consumer's Prometheus metrics, named and documented in one place, and the small HTTP
//! server that exposes them with a readiness probe.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use tokio::sync::watch;

/// Kinesis records read, per shard.
pub const RECORDS: &str = "tally_ingest_records_total";
/// Log entries (events and drops) decoded from records.
pub const ENTRIES: &str = "tally_ingest_entries_total";
/// Events dropped as duplicates of an event id already seen.
pub const DUPLICATES: &str = "tally_ingest_duplicate_events_total";
/// Dropped events counted into the aggregates, per reason.
pub const DROPPED: &str = "tally_ingest_dropped_events_total";
/// How far behind the stream's tip a shard's reader is, in milliseconds (`MillisBehindLatest`).
pub const LAG: &str = "tally_ingest_millis_behind_latest";
/// Seconds from the start of a flush (logging) to its commit.
pub const FLUSH_SECONDS: &str = "tally_ingest_flush_seconds";
/// DynamoDB item updates per flush (written plus found already applied).
pub const WRITES_PER_FLUSH: &str = "tally_ingest_writes_per_flush";
/// Throttled DynamoDB item updates that were retried.
pub const THROTTLES: &str = "tally_ingest_throttles_total";
/// Lease changes of this process, per kind (`taken`, `stolen`, `lost`, `released`).
pub const LEASE_CHANGES: &str = "tally_ingest_lease_changes_total";
/// Segment objects put to S3 (tier 2), per kind (`flush`, `fold`).
pub const SEGMENT_OBJECTS: &str = "tally_ingest_segment_objects_total";
/// Bytes of the segment objects put to S3, per kind (`flush`, `fold`).
pub const SEGMENT_BYTES: &str = "tally_ingest_segment_bytes_total";

/// Installs the process-wide recorder; returns the handle that renders the metrics.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    metrics::describe_counter!(RECORDS, "Kinesis records read, per shard");
    metrics::describe_counter!(ENTRIES, "log entries decoded from records");
    metrics::describe_counter!(DUPLICATES, "events dropped as duplicates of a seen event id");
    metrics::describe_counter!(DROPPED, "dropped events counted into the aggregates, per reason");
    metrics::describe_gauge!(LAG, "MillisBehindLatest of each shard's reader");
    metrics::describe_histogram!(FLUSH_SECONDS, "seconds from logging a flush to its commit");
    metrics::describe_histogram!(WRITES_PER_FLUSH, "DynamoDB item updates per flush");
    metrics::describe_counter!(THROTTLES, "throttled DynamoDB item updates retried");
    metrics::describe_counter!(LEASE_CHANGES, "lease changes of this process, per kind");
    metrics::describe_counter!(SEGMENT_OBJECTS, "segment objects put to S3, per kind (flush, fold)");
    metrics::describe_counter!(SEGMENT_BYTES, "bytes of segment objects put to S3, per kind (flush, fold)");
    Ok(handle)
}

/// Counts a lease change.
pub fn lease_change(kind: &'static str) {
    counter!(LEASE_CHANGES, "kind" => kind).increment(1);
}

/// Records what one shard batch brought.
pub fn batch_read(shard: &str, records: usize, millis_behind: Option<i64>) {
    counter!(RECORDS, "shard" => shard.to_owned()).increment(records as u64);
    if let Some(lag) = millis_behind {
        gauge!(LAG, "shard" => shard.to_owned()).set(lag as f64);
    }
}

/// Records one flush.
pub fn flushed(seconds: f64, writes: usize, throttles: usize) {
    histogram!(FLUSH_SECONDS).record(seconds);
    histogram!(WRITES_PER_FLUSH).record(writes as f64);
    counter!(THROTTLES).increment(throttles as u64);
}

/// Counts a segment object of `bytes` put to S3, of `kind` (`flush` or `fold`).
pub fn segment_put(kind: &'static str, bytes: usize) {
    counter!(SEGMENT_OBJECTS, "kind" => kind).increment(1);
    counter!(SEGMENT_BYTES, "kind" => kind).increment(bytes as u64);
}

/// Serves `GET /metrics` and `GET /ready` (200 until `stopping` turns true, then 503, so a
/// load balancer or orchestrator sees the process leave before it stops).
pub async fn serve(
    address: SocketAddr,
    handle: PrometheusHandle,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics and readiness served");
    let app = Router::new()
        .route(
            "/metrics",
            get(|State((handle, _)): State<(PrometheusHandle, watch::Receiver<bool>)>| async move { handle.render() }),
        )
        .route(
            "/ready",
            get(|State((_, stopping)): State<(PrometheusHandle, watch::Receiver<bool>)>| async move {
                if *stopping.borrow() {
                    (StatusCode::SERVICE_UNAVAILABLE, "stopping")
                } else {
                    (StatusCode::OK, "ready")
                }
            }),
        )
        .with_state((handle, stopping));
    crate::http::server::serve(listener, app, crate::http::server::HttpLimits::default(), std::future::pending())
        .await?;
    Ok(())
}
