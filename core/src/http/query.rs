//! `POST /api/v2/query`, `GET /api/v2/drops` and `GET /api/health`.

use super::auth::{authenticate, authorize};
use super::error::ApiError;
use super::{AppState, Backend};
use crate::dynamo::read::{load_cells, load_drops};
use crate::query::request::{Grouping, Metric};
use crate::query::{Query, QueryRequest, Tier, execute, execute_rollups, execute_segments, plan};
use crate::store::RollupRead;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query as UrlQuery, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Answers a Stats API v2 query for a site the caller's key may read.
pub async fn query(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<Arc<Value>>, ApiError> {
    let registry = app.registry.snapshot();
    authenticate(&registry, &headers)?;
    let request: QueryRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let site = authorize(&registry, &headers, &request.site_id)?;
    let mut query = Query::resolve(&request, &site.timezone, jiff::Timestamp::now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    query.site = site.domain.clone();
    let (generation, until_ms, offset) = match &app.backend {
        Backend::Embedded { store, .. } => {
            let progress = store.progress()?;
            (progress.offset, Some(progress.until_ms), Some(progress.offset))
        }
        Backend::Dynamo(_) => {
            if let Some(d) = query.exit_grouping() {
                let message = format!("the DynamoDB store does not keep `{}` yet", d.name());
                return Err(ApiError::BadRequest(message));
            }
            if query.reads_props() {
                return Err(ApiError::BadRequest("the DynamoDB store does not keep custom props yet".into()));
            }
            if let Some(m) = query.metrics.iter().find(|m| m.is_revenue()) {
                let message = format!("the DynamoDB store does not keep revenue yet (`{}`)", m.name());
                return Err(ApiError::BadRequest(message));
            }
            let by_time = query.groupings.iter().all(|g| matches!(g, Grouping::Hour | Grouping::Day));
            if query.metrics.contains(&Metric::Visitors) && !(by_time && query.filters.is_empty()) {
                let message = "from the DynamoDB store, `visitors` can be grouped by time only, without filters";
                return Err(ApiError::BadRequest(message.into()));
            }
            (jiff::Timestamp::now().as_second().unsigned_abs() / 5, None, None)
        }
    };
    let key = (query.clone(), generation);
    if let Some(hit) = app.cache.get(&key).await {
        return Ok(Json(hit));
    }
    let tier = match &app.backend {
        Backend::Embedded { store, .. } => {
            let tier = plan(&query);
            // A prop past the rollups' cap on a day of the range: the segments hold all of it.
            let prop = query.prop_grouping();
            let (first_day, last_day) = (query.buckets.start.div_euclid(24), (query.buckets.end - 1).div_euclid(24));
            match prop {
                Some(name)
                    if tier == Tier::Rollups && store.props_overflowed(&query.site, name, first_day, last_day)? =>
                {
                    Tier::Segments
                }
                _ => tier,
            }
        }
        Backend::Dynamo(_) => Tier::Cells,
    };
    let rows = match &app.backend {
        Backend::Embedded { store, .. } => {
            let store = store.clone();
            tokio::task::spawn_blocking(move || match tier {
                Tier::Rollups => execute_rollups(store.as_ref(), &query),
                Tier::Segments | Tier::Cells => execute_segments(store.as_ref(), &query),
            })
            .await
            .map_err(anyhow::Error::from)??
        }
        Backend::Dynamo(reader) => {
            let visitors = query.metrics.contains(&Metric::Visitors);
            let loaded = load_cells(
                &reader.client,
                &reader.table,
                &query.site,
                query.buckets.clone(),
                &reader.lineages,
                visitors,
            )
            .await
            .map_err(anyhow::Error::from)?;
            execute(&loaded, &query)?
        }
    };
    let (first, last) = key.0.dates();
    let answer = Arc::new(json!({
        "results": rows.iter().map(|r| json!({ "metrics": r.metrics, "dimensions": r.dimensions })).collect::<Vec<_>>(),
        "meta": {
            "time_zone": site.timezone_name,
            "data_complete_until": until_ms.map_or(Value::Null, complete_until),
            "log_offset_applied": offset,
            "tier": tier,
        },
        "query": {
            "site_id": site.domain,
            "metrics": request.metrics,
            "date_range": [first, last],
            "dimensions": request.dimensions,
            "filters": request.filters,
            "order_by": request.order_by,
            "pagination": { "limit": key.0.limit, "offset": key.0.offset },
        },
    }));
    app.cache.insert(key, answer.clone()).await;
    Ok(Json(answer))
}

fn complete_until(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms).ok().filter(|_| ms > 0).map_or(Value::Null, |t| json!(t.to_string()))
}

/// `?site_id=…` of the drops endpoint.
#[derive(Debug, Deserialize)]
pub struct DropsParams {
    /// The site; absent for drops that belong to no site.
    pub site_id: Option<String>,
}

/// Counts of dropped events per reason, for a site the key may read. Without `site_id`, the
/// counts of drops that named no registered site (any valid key may read those totals).
pub async fn drops(
    State(app): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<DropsParams>,
) -> Result<Json<Value>, ApiError> {
    let registry = app.registry.snapshot();
    let site = match &params.site_id {
        Some(site_id) => authorize(&registry, &headers, site_id)?.domain.clone(),
        None => {
            authenticate(&registry, &headers)?;
            String::new()
        }
    };
    let counts = match &app.backend {
        Backend::Embedded { store, .. } => store.drops(&site)?,
        Backend::Dynamo(reader) => {
            let regions: std::collections::BTreeSet<&str> = reader.lineages.iter().map(|(r, _)| r.as_str()).collect();
            let regions: Vec<&str> = regions.into_iter().collect();
            load_drops(&reader.client, &reader.table, &site, &regions).await.map_err(anyhow::Error::from)?
        }
    };
    Ok(Json(json!({ "site_id": params.site_id.map(|_| site), "drops": counts })))
}

/// Liveness and how far aggregation has come.
pub async fn health(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Backend::Embedded { store, log } = &app.backend else {
        return Ok(Json(json!({ "status": "ok", "store": "dynamodb" })));
    };
    let progress = store.progress()?;
    let head = *log.head().borrow();
    Ok(Json(json!({
        "status": "ok",
        "log_head": head,
        "log_offset_applied": progress.offset,
        "lag_entries": head.saturating_sub(progress.offset),
        "data_complete_until": complete_until(progress.until_ms),
    })))
}
