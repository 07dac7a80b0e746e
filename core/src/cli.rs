//! The `tally` command line: `serve`, `import`, `ingest`, `query`, `site add|list`, `key create`.

use crate::aws::clients::{AwsSettings, Endpoints};
use crate::aws::import::{KinesisImport, import_to_stream};
use crate::aws::ingest::{IngestSettings, ingest};
use crate::aws::query_serve::{QuerySettings, serve_queries};
use crate::embedded::aggregate::{Batching, MAX_ENTRIES_PER_FLUSH, STATE_SNAPSHOT_ENTRIES};
use crate::embedded::import::{ImportSettings, import};
use crate::embedded::log::EventLog;
use crate::embedded::retention::{Retention, Retentions, parse_retention};
use crate::embedded::serve::{ServeSettings, serve};
use crate::embedded::store::{PersistPolicy, Store};
use crate::http::ingest_limit::{DEFAULT_PER_CLIENT_PER_MINUTE, DEFAULT_PER_SITE_PER_MINUTE, IngestRates};
use crate::http::query_gate::QueryBudget;
use crate::http::rate_limit::DEFAULT_QUERY_RATE_PER_HOUR;
use crate::http::server::{
    DEFAULT_BODY_TIMEOUT_S, DEFAULT_DRAIN_S, DEFAULT_HEADER_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS, HttpLimits,
};
use crate::pipeline::import_lines::{Input, render};
use crate::query::limits::{DEFAULT_CACHE_MB, DEFAULT_CONCURRENT_QUERIES, DEFAULT_QUERY_SECONDS, MAX_GROUPS};
use crate::registry;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Tally: exact, fast, privacy-friendly web analytics.
#[derive(Debug, Parser)]
#[command(name = "tally", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ingest, aggregation and the query API in one process on embedded storage.
    Serve(ServeArgs),
    /// Import NDJSON events with explicit timestamps into the embedded backend (`-` reads stdin).
    Import(ImportArgs),
    /// Print how many bytes each table of the embedded store and log occupies, as JSON.
    StoreStats(DataDir),
    /// Consume a Kinesis stream into DynamoDB aggregates (the cloud deployment's core).
    Ingest(IngestArgs),
    /// Serve the query API over the DynamoDB aggregates that `tally ingest` writes.
    Query(QueryArgs),
    /// Manage sites.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage a site's goals (conversions counted over all its history).
    #[command(subcommand)]
    Goal(GoalCommand),
    /// Manage a site's saved segments (named filter lists, `["is", "segment", [id]]`).
    #[command(subcommand)]
    Segment(SegmentCommand),
    /// Manage a site's funnels (2 to 8 of its goals in order; `POST /api/v2/funnel` counts them).
    #[command(subcommand)]
    Funnel(FunnelCommand),
}

#[derive(Debug, Args)]
struct BatchingArgs {
    /// Most log entries one aggregator flush applies (a flush also ends at the end of the log).
    #[arg(long, env = "TALLY_FLUSH_MAX_ENTRIES", default_value_t = MAX_ENTRIES_PER_FLUSH, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    flush_max_entries: usize,
    /// Log entries applied between two writes of the open visits and sightings to the store (a
    /// restart after a crash replays at most this many; a clean stop writes them all).
    #[arg(long, env = "TALLY_STATE_SNAPSHOT_ENTRIES", default_value_t = STATE_SNAPSHOT_ENTRIES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    state_snapshot_entries: usize,
}

impl BatchingArgs {
    fn settings(&self) -> Batching {
        Batching { max_entries: self.flush_max_entries, snapshot_entries: self.state_snapshot_entries }
    }
}

#[derive(Debug, Args)]
struct DataDir {
    /// Directory holding all of Tally's state.
    #[arg(long, env = "TALLY_DATA_DIR", default_value = "./tally-data")]
    data_dir: PathBuf,
}

#[derive(Debug, Args)]
struct HttpLimitArgs {
    /// Seconds a connection may take to send a request's head, counted from when it starts
    /// waiting for one: also the idle keep-alive timeout.
    #[arg(long, env = "TALLY_HTTP_HEADER_TIMEOUT_S", default_value_t = DEFAULT_HEADER_TIMEOUT_S, value_parser = clap::value_parser!(u64).range(1..))]
    http_header_timeout_s: u64,
    /// Seconds a request's body may take to arrive.
    #[arg(long, env = "TALLY_HTTP_BODY_TIMEOUT_S", default_value_t = DEFAULT_BODY_TIMEOUT_S, value_parser = clap::value_parser!(u64).range(1..))]
    http_body_timeout_s: u64,
    /// Most connections open at once; at the cap the server accepts no more until one closes.
    #[arg(long, env = "TALLY_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Seconds shutdown waits for open requests before it drops their connections.
    #[arg(long, env = "TALLY_DRAIN_TIMEOUT_S", default_value_t = DEFAULT_DRAIN_S)]
    drain_timeout_s: u64,
}

impl HttpLimitArgs {
    fn limits(&self) -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(self.http_header_timeout_s),
            body_timeout: Duration::from_secs(self.http_body_timeout_s),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            drain: Duration::from_secs(self.drain_timeout_s),
        }
    }
}

#[derive(Debug, Args)]
struct QueryLimitArgs {
    /// Queries answered at once; more wait up to 5 s for a turn, then get a 503.
    #[arg(long, env = "TALLY_MAX_CONCURRENT_QUERIES", default_value_t = DEFAULT_CONCURRENT_QUERIES, value_parser = clap::value_parser!(u64).range(1..))]
    max_concurrent_queries: u64,
    /// How long a query may run before it is stopped with a 422, in seconds.
    #[arg(long, env = "TALLY_QUERY_TIMEOUT_S", default_value_t = DEFAULT_QUERY_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    query_timeout_s: u64,
    /// The answer cache's budget, in megabytes of answer JSON (0: no cache).
    #[arg(long, env = "TALLY_QUERY_CACHE_MB", default_value_t = DEFAULT_CACHE_MB)]
    query_cache_mb: u64,
    /// Requests per hour per API key to the query API (0: no limit); over it, a 429 with
    /// Retry-After.
    #[arg(long, env = "TALLY_QUERY_RATE_PER_HOUR", default_value_t = DEFAULT_QUERY_RATE_PER_HOUR)]
    query_rate_per_hour: u32,
    /// Most groups (distinct combinations of dimension values) one query may hold while it
    /// runs; past it, a 422.
    #[arg(long, env = "TALLY_QUERY_MAX_GROUPS", default_value_t = MAX_GROUPS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    query_max_groups: u64,
}

impl QueryLimitArgs {
    fn budget(&self) -> QueryBudget {
        QueryBudget {
            concurrent: usize::try_from(self.max_concurrent_queries).unwrap_or(usize::MAX),
            timeout: Duration::from_secs(self.query_timeout_s),
            cache_bytes: self.query_cache_mb.saturating_mul(1024 * 1024),
            rate_per_hour: self.query_rate_per_hour,
            max_groups: usize::try_from(self.query_max_groups).unwrap_or(usize::MAX),
        }
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    data: DataDir,
    /// One trusted proxy in front: the same as `--trusted-proxy-hops 1`.
    #[arg(long, env = "TALLY_TRUST_PROXY")]
    trust_proxy: bool,
    /// How many proxies in front are trusted: the client IP is the X-Forwarded-For address that
    /// many from the right (each proxy appends the address it got the request from), and
    /// CF-IPCountry, CF-Region-Code and CF-IPCity (geo) are believed only with at least one.
    #[arg(long, env = "TALLY_TRUSTED_PROXY_HOPS", conflicts_with = "trust_proxy")]
    trusted_proxy_hops: Option<u8>,
    /// Shortest time between two aggregator flushes, in milliseconds.
    #[arg(long, env = "TALLY_FLUSH_INTERVAL_MS", default_value_t = 1000)]
    flush_interval_ms: u64,
    #[command(flatten)]
    batching: BatchingArgs,
    /// Persist pending segment rows to Parquet once this many are pending.
    #[arg(long, env = "TALLY_SEGMENT_PERSIST_ROWS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    segment_persist_rows: u64,
    /// Persist pending segment rows to Parquet once the oldest is this many seconds old.
    #[arg(long, env = "TALLY_SEGMENT_PERSIST_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    segment_persist_secs: u64,
    #[command(flatten)]
    queries: QueryLimitArgs,
    #[command(flatten)]
    http: HttpLimitArgs,
    /// Requests per minute one client (a salted hash of its IP and user agent) may send to
    /// /api/event, all of which may come at once (0: no limit); over it, a 429 with Retry-After,
    /// its events counted as `rate_limited` drops.
    #[arg(long, env = "TALLY_INGEST_RATE_PER_CLIENT", default_value_t = DEFAULT_PER_CLIENT_PER_MINUTE)]
    ingest_rate_per_client: u32,
    /// Events per minute one site may take, all of which may come at once (0: no limit); over
    /// it, a 429 with Retry-After, counted as `rate_limited` drops.
    #[arg(long, env = "TALLY_INGEST_RATE_PER_SITE", default_value_t = DEFAULT_PER_SITE_PER_MINUTE)]
    ingest_rate_per_site: u32,
    /// How long the raw event log keeps events: `keep`, or a number with a unit s, m, h or d
    /// (about 13 months by default). Older entries are deleted in the background once counted;
    /// the aggregates keep them.
    #[arg(long, env = "TALLY_LOG_RETENTION", default_value = "395d", value_parser = parse_retention)]
    log_retention: Retention,
    /// How long the aggregates (rollups and segments) keep a day: `keep` (the default), or a
    /// number with a unit s, m, h or d; older local days are deleted in the background.
    #[arg(long, env = "TALLY_AGGREGATE_RETENTION", default_value = "keep", value_parser = parse_retention)]
    aggregate_retention: Retention,
    /// Run the demo: on a fresh data directory, three sites with 30 days of traffic, then live
    /// visits while it runs; prints the dashboard's URL and a key to sign in with.
    #[arg(long)]
    demo: bool,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The NDJSON file, or `-` for standard input.
    input: String,
    #[command(flatten)]
    data: DataDir,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    batching: BatchingArgs,
    /// Put the events on this Kinesis stream, for `tally ingest` to count, instead of importing
    /// them into the embedded backend.
    #[arg(long)]
    kinesis_stream: Option<String>,
    /// The stream's AWS region (with `--kinesis-stream`).
    #[arg(long, env = "TALLY_REGION")]
    region: Option<String>,
    /// Kinesis endpoint URL, to use a stand-in such as kinesalite (with `--kinesis-stream`).
    #[arg(long, env = "TALLY_KINESIS_ENDPOINT")]
    kinesis_endpoint: Option<String>,
    /// Use fixed dummy credentials (stand-ins accept any) instead of the AWS credential chain.
    #[arg(long, env = "TALLY_STAND_IN_CREDENTIALS")]
    stand_in_credentials: bool,
    /// Sub-partitions per site (with `--kinesis-stream`): the edge's `SUB_PARTITIONS`, as
    /// `tally query --sub-partitions` knows it.
    #[arg(long, env = "TALLY_SUB_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    sub_partitions: u16,
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// The Kinesis stream to consume.
    #[arg(long, env = "TALLY_STREAM")]
    stream: String,
    /// The AWS region; also the region id in every aggregate item's writer lineage.
    #[arg(long, env = "TALLY_REGION")]
    region: String,
    /// Prefix of the DynamoDB tables (`{app}-aggregates`, `{app}-{region}-flushes`, `{app}-{region}-leases`).
    #[arg(long, env = "TALLY_APP", default_value = "tally")]
    app: String,
    /// Kinesis endpoint URL, to use a stand-in such as kinesalite.
    #[arg(long, env = "TALLY_KINESIS_ENDPOINT")]
    kinesis_endpoint: Option<String>,
    /// DynamoDB endpoint URL, to use a stand-in such as dynoxide.
    #[arg(long, env = "TALLY_DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// Use fixed dummy credentials (stand-ins accept any) instead of the AWS credential chain.
    #[arg(long, env = "TALLY_STAND_IN_CREDENTIALS")]
    stand_in_credentials: bool,
    /// Create the DynamoDB tables if missing (local use; in AWS they come from infra/).
    #[arg(long)]
    create_tables: bool,
    /// This process's worker id (default: host name and process id).
    #[arg(long, env = "TALLY_WORKER_ID")]
    worker_id: Option<String>,
    #[command(flatten)]
    data: DataDir,
    /// Longest time records wait before they are flushed, in milliseconds.
    #[arg(long, env = "TALLY_FLUSH_INTERVAL_MS", default_value_t = 1000)]
    flush_interval_ms: u64,
    /// How long a shard lease lasts without renewal, in milliseconds.
    #[arg(long, env = "TALLY_LEASE_DURATION_MS", default_value_t = 10_000)]
    lease_duration_ms: u64,
    /// Serve Prometheus `/metrics` and `/ready` on this address.
    #[arg(long, env = "TALLY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Most Kinesis records in one flush; a flush also ends at the flush interval.
    #[arg(long, env = "TALLY_MAX_RECORDS_PER_FLUSH", default_value_t = 10_000)]
    max_records_per_flush: usize,
    /// The S3 bucket for the shard workers' state snapshots (open visits and visitor sightings).
    #[arg(long, env = "TALLY_SNAPSHOT_BUCKET")]
    snapshot_bucket: String,
    /// The S3 bucket of tier 2: the segment objects (Parquet) that `tally query` reads for
    /// filtered and multi-dimension questions.
    #[arg(long, env = "TALLY_SEGMENT_BUCKET")]
    segment_bucket: String,
    /// S3 endpoint URL, to use a stand-in such as a moto server.
    #[arg(long, env = "TALLY_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Shortest time between two snapshots of a shard worker's state, in seconds (at least 1);
    /// a new holder replays the records since the last one.
    #[arg(long, env = "TALLY_SNAPSHOT_INTERVAL_S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_interval_s: u64,
    /// How old a day's oldest unfolded rollup delta gets before the day is folded into one item
    /// per slot group, in seconds (at least 1); a day is folded sooner once it has 64 unfolded
    /// deltas or 64 KiB of them.
    #[arg(long, env = "TALLY_FOLD_INTERVAL_S", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    fold_interval_s: u64,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// This process's AWS region.
    #[arg(long, env = "TALLY_REGION")]
    region: String,
    /// Every region whose consumers write the aggregate table (default: this one).
    #[arg(long, env = "TALLY_REGIONS", value_delimiter = ',')]
    regions: Vec<String>,
    /// Sub-partitions per site: the most any site's partition keys use.
    #[arg(long, env = "TALLY_SUB_PARTITIONS", default_value_t = 1)]
    sub_partitions: u16,
    /// Prefix of the DynamoDB tables, as `tally ingest` uses it.
    #[arg(long, env = "TALLY_APP", default_value = "tally")]
    app: String,
    /// DynamoDB endpoint URL, to use a stand-in such as dynoxide.
    #[arg(long, env = "TALLY_DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// The S3 bucket of segment objects that `tally ingest` writes (`--segment-bucket`); without
    /// it, filtered and multi-dimension questions are refused with a 400.
    #[arg(long, env = "TALLY_SEGMENT_BUCKET")]
    segment_bucket: Option<String>,
    /// S3 endpoint URL, to use a stand-in such as a moto server.
    #[arg(long, env = "TALLY_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Most memory the cache of decoded segment objects takes, in MiB.
    #[arg(long, env = "TALLY_SEGMENT_CACHE_MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    segment_cache_mb: u64,
    /// The Kinesis stream the edge puts events on: followed from 30 minutes ago for realtime
    /// answers (`date_range` `realtime` and `30m`); without it they are refused with a 400.
    #[arg(long, env = "TALLY_STREAM")]
    stream: Option<String>,
    /// Kinesis endpoint URL, to use a stand-in such as kinesalite.
    #[arg(long, env = "TALLY_KINESIS_ENDPOINT")]
    kinesis_endpoint: Option<String>,
    /// Use fixed dummy credentials (stand-ins accept any) instead of the AWS credential chain.
    #[arg(long, env = "TALLY_STAND_IN_CREDENTIALS")]
    stand_in_credentials: bool,
    #[command(flatten)]
    data: DataDir,
    #[command(flatten)]
    queries: QueryLimitArgs,
    #[command(flatten)]
    http: HttpLimitArgs,
}

#[derive(Debug, Subcommand)]
enum SiteCommand {
    /// Register a site by its domain.
    Add {
        /// The site's domain, e.g. example.com.
        domain: String,
        /// IANA time zone its days are counted in.
        #[arg(long, default_value = "Etc/UTC")]
        timezone: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// List the registered sites.
    List {
        #[command(flatten)]
        data: DataDir,
    },
}

/// The site a goal or segment command works on, and its data directory.
#[derive(Debug, Args)]
struct SiteData {
    /// The site.
    #[arg(long)]
    site: String,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Debug, Subcommand)]
enum SegmentCommand {
    /// Save a segment: a name and Stats API filters (a JSON list); prints its id.
    Add {
        /// The segment's name.
        #[arg(long)]
        name: String,
        /// The filters, e.g. '[["is","visit:country",["DE"]]]'.
        #[arg(long)]
        filters: String,
        #[command(flatten)]
        of: SiteData,
    },
    /// List a site's segments: id, name, filters.
    List {
        #[command(flatten)]
        of: SiteData,
    },
    /// Remove a segment by its id.
    Remove {
        /// The segment's id, as `tally segment list` shows it.
        id: u32,
        #[command(flatten)]
        of: SiteData,
    },
}

#[derive(Debug, Subcommand)]
enum FunnelCommand {
    /// Save a funnel (or replace the one of that name): 2 to 8 of the site's goals, in order.
    Add {
        /// The funnel's name.
        #[arg(long)]
        name: String,
        /// A step: a goal's name as `tally goal list` shows it (repeat, in order).
        #[arg(long = "step", required = true)]
        steps: Vec<String>,
        /// No other event may come between the steps (Plausible's strict order).
        #[arg(long)]
        strict_order: bool,
        #[command(flatten)]
        of: SiteData,
    },
    /// List a site's funnels: name, order (`strict` or `any`), then its steps, tab-separated.
    List {
        #[command(flatten)]
        of: SiteData,
    },
    /// Remove a funnel by its name.
    Remove {
        /// The funnel's name.
        name: String,
        #[command(flatten)]
        of: SiteData,
    },
}

#[derive(Debug, Subcommand)]
enum GoalCommand {
    /// Add a goal: a custom event (--event NAME), a page path (--page /pattern, `*` for one
    /// path segment, `**` for any), or a scroll depth on such pages (--page /pattern --scroll 50).
    Add {
        /// The custom event's name.
        #[arg(long, conflicts_with = "page", required_unless_present = "page")]
        event: Option<String>,
        /// The page path pattern.
        #[arg(long)]
        page: Option<String>,
        /// Makes a page goal a scroll goal: engagement events on the page (Plausible's tracker
        /// sends them when a page is hidden or left) of at least this scroll depth, percent.
        #[arg(long, requires = "page")]
        scroll: Option<u8>,
        /// Makes an event goal a revenue goal in this currency (ISO 4217, such as EUR): grouped
        /// by goal, its revenue metrics count its events' revenue in this currency.
        #[arg(long, requires = "event")]
        currency: Option<String>,
        #[command(flatten)]
        of: SiteData,
    },
    /// List a site's goals: name, type, event or path (and a revenue goal's currency).
    List {
        #[command(flatten)]
        of: SiteData,
    },
    /// Remove a goal by its name (`Signup`, `Visit /blog/**`).
    Remove {
        /// The goal's name, as `tally goal list` shows it.
        name: String,
        #[command(flatten)]
        of: SiteData,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an API key for the given sites; prints the key alone on stdout.
    Create {
        /// A site the key may read (repeat for several).
        #[arg(long = "site", required = true)]
        sites: Vec<String>,
        /// `stats`: read-only (the Stats API); `admin`: also the admin routes (/api/v1/sites).
        #[arg(long, default_value = "stats", value_parser = clap::builder::PossibleValuesParser::new(["stats", "admin"]))]
        scope: String,
        /// Expire the key after this long: days (`30d`) or hours (`12h`).
        #[arg(long, value_parser = registry::parse_expires_in, conflicts_with = "expires_at")]
        expires_in: Option<jiff::Timestamp>,
        /// Expire the key at this instant (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long, value_parser = registry::parse_expires_at)]
        expires_at: Option<jiff::Timestamp>,
        #[command(flatten)]
        data: DataDir,
    },
    /// List the keys, one a line, tab-separated: id, scope, created, expires, last_used, sites
    /// (`-` for none; never the key itself).
    List {
        #[command(flatten)]
        data: DataDir,
    },
    /// Revoke a key by its id (`k_…`); a running server refuses it within a second.
    Revoke {
        /// The key's id, as `tally key list` shows it.
        id: String,
        #[command(flatten)]
        data: DataDir,
    },
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let flush_interval = Duration::from_millis(args.flush_interval_ms);
            let settings = ServeSettings {
                listen: args.listen,
                data_dir: args.data.data_dir,
                trusted_proxy_hops: args.trusted_proxy_hops.unwrap_or(u8::from(args.trust_proxy)),
                flush_interval,
                batching: args.batching.settings(),
                persist: PersistPolicy {
                    rows: usize::try_from(args.segment_persist_rows).unwrap_or(usize::MAX),
                    every: Duration::from_secs(args.segment_persist_secs),
                    ..PersistPolicy::default()
                },
                queries: args.queries.budget(),
                http: args.http.limits(),
                ingest_rates: IngestRates {
                    per_client_per_minute: args.ingest_rate_per_client,
                    per_site_per_minute: args.ingest_rate_per_site,
                },
                retention: Retentions { log: args.log_retention.0, aggregates: args.aggregate_retention.0 },
                demo: args.demo,
            };
            serve(settings).await
        }
        Command::Import(args) => {
            let input = if args.input == "-" { Input::Stdin } else { Input::File(args.input.into()) };
            let progress = !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let started = std::time::Instant::now();
            if let Some(stream) = args.kinesis_stream {
                let region = args.region.context("--kinesis-stream needs --region (or TALLY_REGION)")?;
                let settings = KinesisImport {
                    aws: AwsSettings {
                        region,
                        endpoints: Endpoints { kinesis: args.kinesis_endpoint, ..Endpoints::default() },
                        static_credentials: args.stand_in_credentials,
                    },
                    stream: stream.clone(),
                    sub_partitions: args.sub_partitions,
                    data_dir: args.data.data_dir,
                };
                let sent = import_to_stream(settings, input, progress).await?;
                let mut out = std::io::stdout().lock();
                write!(out, "{}", render(&sent.summary, started.elapsed()))?;
                writeln!(
                    out,
                    "put on Kinesis stream {stream} in {} records, for `tally ingest` to count (events this data \
                     directory put on it before are skipped)",
                    sent.records
                )?;
                return Ok(());
            }
            let summary = import(ImportSettings {
                data_dir: args.data.data_dir,
                input,
                progress,
                batching: args.batching.settings(),
            })
            .await?;
            write!(std::io::stdout().lock(), "{}", render(&summary, started.elapsed()))?;
            Ok(())
        }
        Command::StoreStats(data) => {
            let busy = || format!("is `tally serve` running on {}? Stop it first", data.data_dir.display());
            let (store, _) = Store::open(&data.data_dir.join("store.redb")).with_context(busy)?;
            let log = EventLog::open(&data.data_dir.join("log.redb")).with_context(busy)?;
            let mut tables: std::collections::BTreeMap<&str, u64> = store.table_bytes()?;
            let (entries, ids) = log.table_bytes()?;
            tables.insert("log_entries", entries);
            tables.insert("log_imported_ids", ids);
            writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&tables)?)?;
            Ok(())
        }
        Command::Ingest(args) => ingest(ingest_settings(args)).await,
        Command::Query(args) => {
            let regions = if args.regions.is_empty() { vec![args.region.clone()] } else { args.regions };
            let aws = AwsSettings {
                region: args.region,
                endpoints: Endpoints {
                    dynamodb: args.dynamodb_endpoint,
                    s3: args.s3_endpoint,
                    kinesis: args.kinesis_endpoint,
                },
                static_credentials: args.stand_in_credentials,
            };
            let (app, listen, data_dir) = (args.app, args.listen, args.data.data_dir);
            let (queries, http) = (args.queries.budget(), args.http.limits());
            let (sub_partitions, segment_bucket) = (args.sub_partitions, args.segment_bucket);
            let segment_cache_bytes = args.segment_cache_mb << 20;
            let settings = QuerySettings {
                aws,
                app,
                regions,
                sub_partitions,
                listen,
                data_dir,
                queries,
                http,
                segment_bucket,
                segment_cache_bytes,
                stream: args.stream,
            };
            serve_queries(settings).await
        }
        Command::Site(SiteCommand::Add { domain, timezone, data }) => {
            let site = registry::add_site(&data.data_dir, &domain, Some(&timezone))?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "added site {} (time zone {})", site.domain, site.timezone_name)?;
            writeln!(out, "next: create a key to query it with `tally key create --site {}`", site.domain)?;
            writeln!(out, "      and send events to POST /api/event with \"domain\":\"{}\"", site.domain)?;
            Ok(())
        }
        Command::Goal(GoalCommand::Add { event, page, scroll, currency, of: SiteData { site, data } }) => {
            let goal = match (event, page, scroll) {
                (Some(event_name), None, None) => registry::Goal::Event { event_name, currency },
                (None, Some(page_path), None) => registry::Goal::Page { page_path },
                (None, Some(page_path), Some(scroll_threshold)) => {
                    registry::Goal::Scroll { page_path, scroll_threshold }
                }
                _ => anyhow::bail!("give --event NAME or --page PATH"),
            };
            let (goal, added) = registry::add_goal(&data.data_dir, &site, goal)?;
            let said = if added { "added" } else { "already there" };
            writeln!(
                std::io::stderr().lock(),
                "goal `{}` {said}; it counts over all of {site}'s history",
                goal.name()
            )?;
            Ok(())
        }
        Command::Funnel(FunnelCommand::Add { name, steps, strict_order, of: SiteData { site, data } }) => {
            let funnel = registry::Funnel { name: name.trim().to_owned(), steps, strict_order };
            let replaced = registry::save_funnel(&data.data_dir, &site, funnel.clone())?;
            let said = if replaced { "replaced" } else { "saved" };
            writeln!(
                std::io::stderr().lock(),
                "funnel `{}` {said} ({} steps); it counts over all of {site}'s history",
                funnel.name,
                funnel.steps.len()
            )?;
            Ok(())
        }
        Command::Funnel(FunnelCommand::List { of: SiteData { site, data } }) => {
            let site = registered_site(&data.data_dir, &site)?;
            let mut out = std::io::stdout().lock();
            for funnel in &site.funnels {
                let order = if funnel.strict_order { "strict" } else { "any" };
                writeln!(out, "{}\t{order}\t{}", funnel.name, funnel.steps.join("\t"))?;
            }
            Ok(())
        }
        Command::Funnel(FunnelCommand::Remove { name, of: SiteData { site, data } }) => {
            registry::remove_funnel(&data.data_dir, &site, &name)?;
            writeln!(std::io::stderr().lock(), "funnel `{name}` removed from {site}")?;
            Ok(())
        }
        Command::Segment(SegmentCommand::Add { name, filters, of: SiteData { site, data } }) => {
            let filters = crate::query::saved_segments::check(&filters).map_err(anyhow::Error::msg)?;
            let segment = registry::add_segment(&data.data_dir, &site, &name, &filters)?;
            writeln!(std::io::stdout().lock(), "{}", segment.id)?;
            writeln!(
                std::io::stderr().lock(),
                "segment {} saved; filter by it with [\"is\", \"segment\", [{}]]",
                segment.id,
                segment.id
            )?;
            Ok(())
        }
        Command::Segment(SegmentCommand::List { of: SiteData { site, data } }) => {
            let site = registered_site(&data.data_dir, &site)?;
            let mut out = std::io::stdout().lock();
            for segment in &site.segments {
                writeln!(out, "{}\t{}\t{}", segment.id, segment.name, segment.filters)?;
            }
            Ok(())
        }
        Command::Segment(SegmentCommand::Remove { id, of: SiteData { site, data } }) => {
            registry::remove_segment(&data.data_dir, &site, id)?;
            writeln!(std::io::stderr().lock(), "segment {id} removed from {site}")?;
            Ok(())
        }
        Command::Goal(GoalCommand::List { of: SiteData { site, data } }) => {
            let site = registered_site(&data.data_dir, &site)?;
            let mut out = std::io::stdout().lock();
            for goal in &site.goals {
                match goal {
                    registry::Goal::Event { event_name, currency: None } => {
                        writeln!(out, "{}	event	{event_name}", goal.name())?
                    }
                    registry::Goal::Event { event_name, currency: Some(currency) } => {
                        writeln!(out, "{}	event	{event_name}	{currency}", goal.name())?
                    }
                    registry::Goal::Page { page_path } => writeln!(out, "{}	page	{page_path}", goal.name())?,
                    registry::Goal::Scroll { page_path, scroll_threshold } => {
                        writeln!(out, "{}	scroll	{page_path}	{scroll_threshold}", goal.name())?
                    }
                }
            }
            Ok(())
        }
        Command::Goal(GoalCommand::Remove { name, of: SiteData { site, data } }) => {
            registry::remove_goal(&data.data_dir, &site, &name)?;
            writeln!(std::io::stderr().lock(), "goal `{name}` removed from {site}")?;
            Ok(())
        }
        Command::Site(SiteCommand::List { data }) => {
            let registry = registry::Registry::open(&data.data_dir)?;
            let mut out = std::io::stdout().lock();
            for site in registry.snapshot().sites() {
                writeln!(out, "{}\t{}", site.domain, site.timezone_name)?;
            }
            Ok(())
        }
        Command::Key(KeyCommand::Create { sites, scope, expires_in, expires_at, data }) => {
            let scope: registry::Scope = scope.parse().map_err(anyhow::Error::msg)?;
            let expires = expires_at.or(expires_in);
            let new = registry::NewKey { sites: sites.clone(), scope, expires };
            let key = registry::create_key_with(&data.data_dir, &new)?;
            writeln!(std::io::stdout().lock(), "{key}")?;
            let mut err = std::io::stderr().lock();
            let until = expires.map_or_else(String::new, |at| format!(", expires {at}"));
            writeln!(
                err,
                "key {} (scope {scope}{until}) created for {}; it is shown only once.",
                registry::key_id(&key),
                sites.join(", ")
            )?;
            match scope {
                registry::Scope::Stats => {
                    writeln!(err, "use it as `Authorization: Bearer <key>` on POST /api/v2/query")?;
                }
                registry::Scope::Admin => {
                    writeln!(err, "use it as `Authorization: Bearer <key>` on POST /api/v2/query and on /api/v1/sites")?
                }
            }
            Ok(())
        }
        Command::Key(KeyCommand::List { data }) => {
            let registry = registry::Registry::open_existing(&data.data_dir)?;
            let mut out = std::io::stdout().lock();
            let or_dash = |time: Option<jiff::Timestamp>| time.map_or_else(|| "-".to_owned(), |t| t.to_string());
            for key in registry.snapshot().keys() {
                let sites: Vec<&str> = key.sites.iter().map(String::as_str).collect();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    key.id,
                    key.scope,
                    key.created,
                    or_dash(key.expires),
                    or_dash(key.last_used),
                    sites.join(",")
                )?;
            }
            Ok(())
        }
        Command::Key(KeyCommand::Revoke { id, data }) => {
            registry::revoke_key(&data.data_dir, &id)?;
            writeln!(std::io::stderr().lock(), "key {id} revoked; a running server refuses it within a second")?;
            Ok(())
        }
    }
}

fn ingest_settings(args: IngestArgs) -> IngestSettings {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned());
    let worker_id =
        args.worker_id.unwrap_or_else(|| format!("{}-{}", host.unwrap_or_else(|_| "tally".into()), std::process::id()));
    IngestSettings {
        aws: AwsSettings {
            region: args.region,
            endpoints: Endpoints {
                kinesis: args.kinesis_endpoint,
                dynamodb: args.dynamodb_endpoint,
                s3: args.s3_endpoint,
            },
            static_credentials: args.stand_in_credentials,
        },
        stream: args.stream,
        app: args.app,
        worker_id,
        data_dir: args.data.data_dir,
        flush_interval: Duration::from_millis(args.flush_interval_ms),
        lease_duration: Duration::from_millis(args.lease_duration_ms),
        create_tables: args.create_tables,
        metrics_listen: args.metrics_listen,
        max_records_per_flush: args.max_records_per_flush,
        fold_interval: Duration::from_secs(args.fold_interval_s),
        snapshot_bucket: args.snapshot_bucket,
        segment_bucket: args.segment_bucket,
        snapshot_interval: Duration::from_secs(args.snapshot_interval_s),
    }
}

/// The registered site `site` (normalised as `tally site add` does) in `data_dir`'s registry.
fn registered_site(data_dir: &std::path::Path, site: &str) -> anyhow::Result<registry::Site> {
    let registry = registry::Registry::open_existing(data_dir)?;
    let domain = tally_model::site::normalize_domain(site).unwrap_or_else(|| site.to_owned());
    let snapshot = registry.snapshot();
    let found = snapshot.site(&domain).cloned();
    found.ok_or_else(|| anyhow::anyhow!("there is no site {domain}: add it with `tally site add {domain}`"))
}
