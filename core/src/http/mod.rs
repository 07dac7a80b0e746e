//! The HTTP API: the public ingest endpoint and the key-protected query API, on one router.

pub mod auth;
pub mod error;
pub mod ingest;
pub mod listen;
pub mod query;

use crate::embedded::log::EventLog;
use crate::pipeline::salts::SaltBook;
use crate::query::{Query, StatsSource};
use crate::registry::Registry;
use axum::Router;
use axum::http::Method;
use axum::routing::{get, post};
use serde_json::Value;
use std::sync::Arc;
use tower_http::cors::{Any, CorsLayer};

/// Query answers cached per (query, data version, [`crate::query::Freshness::version`]): for the
/// embedded store the version is the applied log offset, so the cache never serves stale
/// numbers; for DynamoDB it is a 5-second time window.
pub type QueryCache = moka::future::Cache<(Query, u64), Arc<Value>>;

/// What the public ingest endpoint needs.
#[derive(Clone)]
pub struct IngestState {
    /// The event log that ingest appends to.
    pub log: EventLog,
    /// Daily visitor-id salts.
    pub salts: Arc<SaltBook>,
    /// Whether `X-Forwarded-For` and the geo headers (`CF-IPCountry`, `CF-Region-Code`, `CF-IPCity`) are trusted.
    pub trust_proxy: bool,
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
}

/// A query cache holding up to `capacity` answers.
pub fn query_cache(capacity: u64) -> QueryCache {
    moka::future::Cache::builder().max_capacity(capacity).time_to_live(std::time::Duration::from_secs(600)).build()
}

/// The router: `POST /api/event` (public, CORS; only with ingest state), `POST /api/v2/query`,
/// `GET /api/v2/drops` (bearer key), `GET /api/health`.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    if state.ingest.is_some() {
        let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::POST, Method::OPTIONS]).allow_headers(Any);
        router = router.merge(Router::new().route("/api/event", post(ingest::event)).layer(cors));
    }
    router
        .route("/api/v2/query", post(query::query))
        .route("/api/v2/drops", get(query::drops))
        .route("/api/health", get(query::health))
        .with_state(state)
}
