//! `tally query`: the query API over the DynamoDB aggregates and the S3 segment objects that
//! `tally ingest` writes.

use crate::aws::clients::{self, AwsSettings};
use crate::aws::dynamo::Tables;
use crate::aws::kinesis::api::{KinesisError, list_shards};
use crate::aws::kinesis::tail;
use crate::aws::segments::SegmentObjects;
use crate::aws::segments::read::SegmentReader;
use crate::aws::stats::DynamoStats;
use crate::embedded::recent::RecentEvents;
use crate::http::listen::{announce, shutdown_signal};
use crate::http::query_gate::QueryBudget;
use crate::http::{AppState, router};
use crate::registry::Registry;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Settings of `tally query`.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// How to reach DynamoDB.
    pub aws: AwsSettings,
    /// The table prefix, as `tally ingest` uses it.
    pub app: String,
    /// Every region whose consumers write the aggregate table.
    pub regions: Vec<String>,
    /// Sub-partitions per site (the most any site uses).
    pub sub_partitions: u16,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The data directory whose `registry.json` holds sites and API keys.
    pub data_dir: PathBuf,
    /// Bounds on answering queries.
    pub queries: QueryBudget,
    /// Timeouts and the connection cap of the HTTP server.
    pub http: crate::http::server::HttpLimits,
    /// The bucket of segment objects, if tier 2 is to be read.
    pub segment_bucket: Option<String>,
    /// Most bytes of decoded segment objects kept in memory.
    pub segment_cache_bytes: u64,
    /// The stream followed for realtime answers, if any.
    pub stream: Option<String>,
}

/// Serves queries until SIGINT or SIGTERM.
pub async fn serve_queries(settings: QuerySettings) -> anyhow::Result<()> {
    crate::privacy::check_data_dir(&settings.data_dir)
        .with_context(|| format!("making {} private", settings.data_dir.display()))?;
    let registry = Registry::open_existing(&settings.data_dir)?;
    let lineages = settings
        .regions
        .iter()
        .flat_map(|r| (0..settings.sub_partitions.max(1)).map(move |s| (r.clone(), s)))
        .collect();
    let stats = DynamoStats {
        client: clients::dynamodb(&settings.aws).await,
        table: Tables::named(&settings.app, &settings.aws.region).aggregates,
        lineages,
        segments: match settings.segment_bucket {
            Some(bucket) => {
                let objects = SegmentObjects { client: clients::s3(&settings.aws).await, bucket };
                Some(SegmentReader::new(objects, settings.segment_cache_bytes))
            }
            None => None,
        },
    };
    let mut state = AppState::new(registry, Arc::new(stats), None, &settings.queries);
    if let Some(stream) = settings.stream {
        let client = clients::kinesis(&settings.aws).await;
        // A stream that is not there is a mistake to say at once, not realtime answers of zero.
        if let Err(KinesisError::NotFound(why)) = list_shards(&client, &stream).await {
            anyhow::bail!("--stream {stream}: no such Kinesis stream ({why})");
        }
        let recent = Arc::new(RecentEvents::default());
        tokio::spawn(tail::follow(client, stream, recent.clone()));
        state.recent = Some(recent);
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    announce(listener.local_addr()?)?;
    crate::http::server::serve(listener, router(state), settings.http, shutdown_signal()).await?;
    Ok(())
}
