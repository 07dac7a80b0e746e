//! `POST /api/v2/props`: the custom prop names of a site's events over a date range (among
//! those that pass the filters), each with the events that carry it, most first: what a
//! dashboard lists before it breaks a prop down with a query by `event:props:NAME`
//! (`query/prop_names.rs` counts them).

use super::AppState;
use super::answers::ErrorBody;
use super::auth::{authorize, rated_key};
use super::body::read_bounded;
use super::error::ApiError;
use super::stored_query::{self, StoredQuery};
use crate::query::limits::MAX_BODY_BYTES;
use crate::query::source::complete_until;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /api/v2/props`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropsRequest {
    /// The site's domain.
    pub site_id: String,
    /// As in a query: a preset (`"30d"`, `"month"`, `"all"`, …) or `[from, to]`; not `realtime`.
    #[schema(schema_with = crate::query::request::date_range_schema)]
    pub date_range: Value,
    /// As in a query: only the events that pass them count.
    #[serde(default)]
    #[schema(schema_with = crate::query::request::filters_schema)]
    pub filters: Vec<Value>,
}

/// One prop name and how many events carry it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PropName {
    /// The prop's name (query it as `event:props:<name>`).
    pub name: String,
    /// Events in the range (that pass the filters) with this prop.
    pub events: u64,
}

/// The answer of `POST /api/v2/props`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PropsAnswer {
    /// The names, most events first, then by name; at most 1,000.
    pub props: Vec<PropName>,
    /// Whether names were left out past 1,000.
    pub truncated: bool,
    /// The site's time zone, the range's first and last local day, and the freshness.
    pub meta: PropsMeta,
}

/// What a props answer says about itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PropsMeta {
    /// The site's time zone.
    pub time_zone: String,
    /// The first and last local day of the range.
    pub date_range: [String; 2],
    /// Up to when the counts include every accepted event, where the store knows it.
    pub data_complete_until: Option<String>,
}

/// Lists the prop names of a site the caller's key may read.
#[utoipa::path(post, path = "/api/v2/props", tag = "stats", security(("api_key" = [])),
    request_body = PropsRequest,
    responses(
        (status = 200, description = "Prop names with their events, most first", body = PropsAnswer),
        (status = 400, description = "A malformed request; the message says what to fix", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "The listing would take more time than allowed", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit (see `Retry-After`)", body = ErrorBody),
        (status = 503, description = "Every query turn is taken (see `Retry-After`)", body = ErrorBody),
    ))]
pub async fn props(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Json<PropsAnswer>, ApiError> {
    let registry = app.registry.snapshot();
    let key = rated_key(&app, &registry, &headers)?;
    let body = read_bounded(body, MAX_BODY_BYTES, "a props body").await?;
    let request: PropsRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid props request: {e}")))?;
    let site = authorize(&registry, key, &request.site_id)?;
    let StoredQuery { query, fresh, days: date_range } =
        stored_query::resolve(&app, site, &request.date_range, &request.filters, "prop names").await?;
    let (names, truncated) = app.queries.prop_names(&app.stats, query).await?;
    Ok(Json(PropsAnswer {
        props: names.into_iter().map(|(name, events)| PropName { name, events }).collect(),
        truncated,
        meta: PropsMeta {
            time_zone: site.timezone_name.clone(),
            date_range,
            data_complete_until: fresh.until_ms.and_then(complete_until),
        },
    }))
}
