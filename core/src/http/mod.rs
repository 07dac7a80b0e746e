//! The HTTP API: the public ingest endpoint and the key-protected query API, on one router.

pub mod admin;
pub mod answers;
pub mod assets;
pub mod auth;
pub mod body;
pub mod csv_export;
pub mod error;
pub mod export;
pub mod funnel;
pub mod funnels;
pub mod ingest;
pub mod ingest_limit;
pub mod listen;
pub mod openapi;
pub mod props;
pub mod query;
pub mod query_gate;
pub mod rate_limit;
pub mod realtime;
pub mod segments;
pub mod server;
pub mod stored_query;

use crate::embedded::log::EventLog;
use crate::pipeline::salts::SaltBook;
use crate::query::{Query, StatsSource};
use crate::registry::Registry;
use axum::Router;
use axum::body::Bytes;
use axum::http::Method;
use axum::routing::{get, post};
use query_gate::{QueryBudget, QueryGate};
use rate_limit::KeyRateLimit;
use std::sync::Arc;
use tower_http::cors::{Any, CorsLayer};

/// Query answers cached per (query, [`crate::query::Freshness::version`]): for the embedded
/// store the version is the last change to the days the query reads (and the retention trims),
/// so answers over closed days stay cached while live traffic changes today, and the cache never
/// serves stale numbers; for DynamoDB it is a 5-second time window. Weighed by bytes; identical
/// concurrent misses are computed once.
pub type QueryCache = moka::future::Cache<(Query, u64), Arc<CachedAnswer>>;

/// What the cache keeps of an answer: its rows (the page, as JSON) and what the answer's meta
/// needs of them; the rest of the meta (freshness) is current at every request.
#[derive(Debug)]
pub struct CachedAnswer {
    /// The tier that computed it.
    pub tier: crate::query::Tier,
    /// The `results` array of the page, as JSON.
    pub results: Bytes,
    /// Rows before the page.
    pub total_rows: usize,
}

/// Hits and misses of the answer cache, reported by `/api/health`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Answers served from the cache.
    pub hits: std::sync::atomic::AtomicU64,
    /// Answers not found in the cache (concurrent identical ones wait for one load).
    pub misses: std::sync::atomic::AtomicU64,
    /// Answers computed: the loads, one per set of concurrent identical misses.
    pub loads: std::sync::atomic::AtomicU64,
    /// Their time, summed, in microseconds.
    pub load_micros: std::sync::atomic::AtomicU64,
    /// The longest one, in microseconds.
    pub max_load_micros: std::sync::atomic::AtomicU64,
}

/// What the public ingest endpoint needs.
#[derive(Clone)]
pub struct IngestState {
    /// The event log that ingest appends to.
    pub log: EventLog,
    /// Daily visitor-id salts.
    pub salts: Arc<SaltBook>,
    /// How many proxies in front are trusted (0: none): the client IP is the `X-Forwarded-For`
    /// address that many from the right (proxies append the address they got the request from),
    /// and the geo headers (`CF-IPCountry`, `CF-Region-Code`, `CF-IPCity`) are believed only
    /// with at least one.
    pub trusted_proxy_hops: u8,
    /// Rate limits per client and per site, and the refusals waiting to be logged.
    pub limits: Arc<ingest_limit::IngestLimits>,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Sites and keys.
    pub registry: Registry,
    /// Where queries read: the embedded store or DynamoDB, behind one trait.
    pub stats: Arc<dyn StatsSource>,
    /// The ingest endpoint's state; `None` where this process takes no events (`tally query`).
    pub ingest: Option<IngestState>,
    /// Hot query answers.
    pub cache: QueryCache,
    /// Turns and time for queries.
    pub queries: Arc<QueryGate>,
    /// Requests per key, if limited.
    pub key_rate: Option<Arc<KeyRateLimit>>,
    /// The cache's hits and misses.
    pub cache_stats: Arc<CacheStats>,
    /// The last 30 minutes of events, for realtime answers: what `tally serve` acknowledged, or
    /// what `tally query` read from the stream (`None` without `--stream`).
    pub recent: Option<Arc<crate::embedded::recent::RecentEvents>>,
}

impl AppState {
    /// The state of a server with these parts and query bounds.
    pub fn new(
        registry: Registry,
        stats: Arc<dyn StatsSource>,
        ingest: Option<IngestState>,
        budget: &QueryBudget,
    ) -> AppState {
        AppState {
            registry,
            stats,
            recent: None,
            ingest,
            cache: query_cache(budget.cache_bytes),
            queries: Arc::new(QueryGate::new(budget)),
            key_rate: KeyRateLimit::per_hour(budget.rate_per_hour).map(Arc::new),
            cache_stats: Arc::new(CacheStats::default()),
        }
    }
}

/// A query cache holding up to `bytes` of answers (each weighed by its JSON and its query).
pub fn query_cache(bytes: u64) -> QueryCache {
    moka::future::Cache::builder()
        .max_capacity(bytes)
        .weigher(|key: &(Query, u64), answer: &Arc<CachedAnswer>| {
            let query =
                std::mem::size_of_val(key) + key.0.site.len() + 64 * (key.0.filters.len() + key.0.groupings.len());
            u32::try_from(answer.results.len() + query).unwrap_or(u32::MAX)
        })
        .time_to_live(std::time::Duration::from_secs(600))
        .build()
}

/// The router: `POST /api/event` (public, CORS; only with ingest state), `POST /api/v2/query`,
/// `GET /api/v2/drops`, `POST /api/v2/export`, `POST /api/v2/funnel`, `POST /api/v2/props`, `GET
/// /api/v1/sites/segments` and `…/funnels` (bearer key), `GET` and `POST /api/v1/sites`, `GET`,
/// `PUT` and `DELETE` of goals and `PUT` and `DELETE` of segments and funnels under
/// `/api/v1/sites` (admin key), `GET /api/health`, `GET /api/openapi.json`, and the public
/// files: the tracking script `GET /js/tally.js` and the dashboard (`GET /`, `/dashboard/…`).
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    if state.ingest.is_some() {
        let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::POST, Method::OPTIONS]).allow_headers(Any);
        router = router.merge(Router::new().route("/api/event", post(ingest::event)).layer(cors));
    }
    router
        .route("/api/v2/query", post(query::query))
        .route("/api/v2/drops", get(query::drops))
        .route("/api/v2/export", post(export::export))
        .route("/api/v2/funnel", post(funnel::funnel))
        .route("/api/v2/props", post(props::props))
        .route("/api/v1/sites", get(admin::list_sites).post(admin::add_site))
        .route("/api/v1/sites/goals", get(admin::list_goals).put(admin::put_goal))
        .route("/api/v1/sites/goals/{goal_id}", axum::routing::delete(admin::delete_goal))
        .route("/api/v1/sites/segments", get(segments::list).put(segments::put).delete(segments::delete))
        .route(
            "/api/v1/sites/funnels",
            get(funnels::list_funnels).put(funnels::put_funnel).delete(funnels::delete_funnel),
        )
        .route("/api/health", get(query::health))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .merge(assets::router())
        .with_state(state)
}
