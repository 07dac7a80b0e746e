//! The HTTP API: the public ingest endpoint and the key-protected query API, on one router.

pub mod auth;
pub mod error;
pub mod ingest;
pub mod query;

use crate::log::EventLog;
use crate::query::Query;
use crate::registry::Registry;
use crate::salts::SaltBook;
use crate::store::Store;
use axum::Router;
use axum::http::Method;
use axum::routing::{get, post};
use serde_json::Value;
use std::sync::Arc;
use tower_http::cors::{Any, CorsLayer};

/// Query answers cached per (query, applied log offset): new data changes the key, so the
/// cache never serves stale numbers.
pub type QueryCache = moka::future::Cache<(Query, u64), Arc<Value>>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Sites and keys.
    pub registry: Registry,
    /// The event log that ingest appends to.
    pub log: EventLog,
    /// Daily visitor-id salts.
    pub salts: Arc<SaltBook>,
    /// The aggregate store that queries read.
    pub store: Arc<Store>,
    /// Whether `X-Forwarded-For` and `CF-IPCountry` are trusted.
    pub trust_proxy: bool,
    /// Hot query answers.
    pub cache: QueryCache,
}

/// A query cache holding up to `capacity` answers.
pub fn query_cache(capacity: u64) -> QueryCache {
    moka::future::Cache::builder().max_capacity(capacity).time_to_live(std::time::Duration::from_secs(600)).build()
}

/// The router: `POST /api/event` (public, CORS), `POST /api/v2/query`, `GET /api/v2/drops`
/// (bearer key), `GET /api/health`.
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::POST, Method::OPTIONS]).allow_headers(Any);
    let ingest = Router::new().route("/api/event", post(ingest::event)).layer(cors);
    Router::new()
        .merge(ingest)
        .route("/api/v2/query", post(query::query))
        .route("/api/v2/drops", get(query::drops))
        .route("/api/health", get(query::health))
        .with_state(state)
}
