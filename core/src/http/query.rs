//! `POST /api/v2/query`, `GET /api/v2/drops` and `GET /api/health`.

use super::answers::{DropsAnswer, ErrorBody, PageEcho, QueryAnswer, QueryEcho, QueryMeta};
use super::auth::{authorize, rated_key};
use super::body::read_bounded;
use super::error::ApiError;
use super::{AppState, CachedAnswer, csv_export, realtime};
use crate::query::exec::Row;
use crate::query::limits::MAX_BODY_BYTES;
use crate::query::source::complete_until;
use crate::query::{Query, QueryError, QueryRequest, comparison};
use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Answers a Stats API v2 query for a site the caller's key may read.
#[utoipa::path(post, path = "/api/v2/query", tag = "stats", security(("api_key" = [])),
    request_body = QueryRequest,
    params(("format" = Option<String>, Query, description = "`csv` for a CSV answer (as `Accept: text/csv`)")),
    responses(
        (status = 200, description = "The answer (JSON, or CSV when asked)",
            content((QueryAnswer = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A malformed query; the message says what to fix", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "The query would take more groups or time than allowed", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit (see `Retry-After`)", body = ErrorBody),
        (status = 503, description = "Every query turn is taken (see `Retry-After`)", body = ErrorBody),
    ))]
pub async fn query(
    State(app): State<AppState>,
    UrlQuery(params): UrlQuery<QueryParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let registry = app.registry.snapshot();
    let key = rated_key(&app, &registry, &headers)?;
    if let Some(format) = params.format.as_deref().filter(|f| !matches!(*f, "csv" | "json")) {
        return Err(ApiError::BadRequest(format!("format is csv or json, not `{format}`")));
    }
    let body = read_bounded(body, MAX_BODY_BYTES, "a query body").await?;
    let mut request: QueryRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let site = authorize(&registry, key, &request.site_id)?;
    let now = jiff::Timestamp::now();
    let asked_filters = request.filters.clone();
    request.filters = crate::query::saved_segments::expand(&request.filters, &site.segments)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(minutes) = realtime::minutes(&request) {
        let recent = app.recent.as_deref();
        let answer = realtime::answer(&request, site, recent, minutes, now)?;
        return Ok(json_response(Bytes::from(serde_json::to_vec(&answer).map_err(|e| ApiError::Internal(e.into()))?)));
    }
    resolve_all(&app, site, &mut request, now).await?;
    let mut query = Query::resolve(&request, &site.timezone, now).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    query.site = site.domain.clone();
    query.goals = site.goals.clone();
    if let Some(refusal) = app.stats.refuse(&query) {
        return Err(ApiError::BadRequest(refusal));
    }
    let fresh = app.stats.freshness(&query)?;
    let key = (query, fresh.version);
    let (cached, hit) = match app.cache.get(&key).await {
        Some(cached) => (cached, true),
        None => {
            let compute = async {
                let started = std::time::Instant::now();
                let (tier, rows) = app.queries.answer(&app.stats, key.0.clone()).await?;
                let query = &key.0;
                let page_rows: Vec<Row> = rows.iter().skip(query.offset).take(query.limit).cloned().collect();
                let page: Vec<Value> = match &query.include.comparison {
                    Some(period) => {
                        let other = comparison::query_of(query, period);
                        let (_, previous) = app.queries.answer(&app.stats, other).await?;
                        comparison::attach(query, period, &page_rows, &previous)
                    }
                    None => {
                        page_rows.iter().map(|r| json!({ "metrics": r.metrics, "dimensions": r.dimensions })).collect()
                    }
                };
                let results = Bytes::from(serde_json::to_vec(&page).map_err(|e| ApiError::Internal(e.into()))?);
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let stats = &app.cache_stats;
                stats.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                stats.load_micros.fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
                stats.max_load_micros.fetch_max(micros, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, ApiError>(Arc::new(CachedAnswer { tier, results, total_rows: rows.len() }))
            };
            let loaded = app.cache.try_get_with(key.clone(), compute).await.map_err(|e| e.duplicate())?;
            (loaded, false)
        }
    };
    let counter = if hit { &app.cache_stats.hits } else { &app.cache_stats.misses };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if csv_export::wanted(&headers, params.format.as_deref()) {
        let columns: Vec<String> = request.dimensions.iter().chain(&request.metrics).cloned().collect();
        return csv_export::response(&columns, &cached.results);
    }
    let query = &key.0;
    let [first, last] = crate::query::date_range::echo(&query.buckets, query.seconds, &site.timezone);
    let meta = QueryMeta {
        time_zone: site.timezone_name.clone(),
        data_complete_until: Some(fresh.until_ms.and_then(complete_until)),
        log_offset_applied: fresh.offset,
        tier: Some(cached.tier),
        cache: Some(if hit { "hit" } else { "miss" }.into()),
        realtime: None,
        imports_included: query.include.imports.then_some(false),
        imports_skip_reason: query.include.imports.then(|| "no_imported_data".into()),
        time_labels: query.include.time_labels.then(|| crate::query::exec::time_labels(query).unwrap_or_default()),
        total_rows: query.include.total_rows.then_some(cached.total_rows),
    };
    let echo = QueryEcho {
        site_id: site.domain.clone(),
        metrics: request.metrics.clone(),
        date_range: [first, last],
        dimensions: request.dimensions.clone(),
        filters: asked_filters,
        order_by: Some(request.order_by.clone()),
        include: Some(request.include.clone()),
        pagination: Some(PageEcho { limit: query.limit, offset: query.offset }),
    };
    // The rows as cached, the rest around them: `{"results":…,"meta":…,"query":…}`.
    let mut answer = Vec::with_capacity(cached.results.len() + 512);
    answer.extend_from_slice(b"{\"results\":");
    answer.extend_from_slice(&cached.results);
    answer.extend_from_slice(b",\"meta\":");
    serde_json::to_writer(&mut answer, &meta).map_err(|e| ApiError::Internal(e.into()))?;
    answer.extend_from_slice(b",\"query\":");
    serde_json::to_writer(&mut answer, &echo).map_err(|e| ApiError::Internal(e.into()))?;
    answer.push(b'}');
    Ok(json_response(Bytes::from(answer)))
}

/// A `date_range` of `"all"` as the dates it stands for: from the site's first day with data
/// (or today, before any) to today.
pub(super) async fn resolve_all(
    app: &AppState,
    site: &crate::registry::Site,
    request: &mut QueryRequest,
    now: jiff::Timestamp,
) -> Result<(), ApiError> {
    if request.date_range != "all" {
        return Ok(());
    }
    let first = app.stats.first_day(&site.domain).await.map_err(|e| match e.downcast_ref::<QueryError>() {
        Some(refused) => ApiError::BadRequest(refused.0.clone()),
        None => ApiError::Internal(e),
    })?;
    let today = site.timezone.to_datetime(now).date();
    let first = first.map_or(today, |day| crate::pipeline::timebucket::bucket_start(day * 24).date()).min(today);
    request.date_range = json!([first.to_string(), today.to_string()]);
    Ok(())
}

/// An answer's JSON as a response.
pub(super) fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// `?format=csv` of the query endpoint.
#[derive(Debug, Deserialize)]
pub struct QueryParams {
    /// `csv` for a CSV answer (as `Accept: text/csv`).
    pub format: Option<String>,
}

/// `?site_id=…` of the drops endpoint.
#[derive(Debug, Deserialize)]
pub struct DropsParams {
    /// The site; absent for drops that belong to no site.
    pub site_id: Option<String>,
}

/// Counts of dropped events per reason, for a site the key may read. Without `site_id`, the
/// counts of drops that named no registered site (any valid key may read those totals).
#[utoipa::path(get, path = "/api/v2/drops", tag = "stats", security(("api_key" = [])),
    params(("site_id" = Option<String>, Query, description = "The site; absent for drops that named no registered site")),
    responses(
        (status = 200, description = "Dropped events by reason", body = DropsAnswer),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit", body = ErrorBody),
    ))]
pub async fn drops(
    State(app): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<DropsParams>,
) -> Result<Json<DropsAnswer>, ApiError> {
    let registry = app.registry.snapshot();
    let key = rated_key(&app, &registry, &headers)?;
    let site = match &params.site_id {
        Some(site_id) => authorize(&registry, key, site_id)?.domain.clone(),
        None => String::new(),
    };
    let counts = app.stats.drops(&site).await?;
    Ok(Json(DropsAnswer { site_id: params.site_id.map(|_| site), drops: counts }))
}

/// Whether the store answers (503 when it does not) and, for the embedded store, how far
/// aggregation has come.
#[utoipa::path(get, path = "/api/health", tag = "operations",
    responses(
        (status = 200, description = "`{\"status\": \"ok\", …}`: the store answers; the log head, applied offset and lag; the answer cache's hits, misses, hit ratio, entries, bytes, loads and their mean and longest time in ms", body = Object),
        (status = 503, description = "`{\"status\": \"failing\", \"error\": …}`: a store or the log cannot be written or read", body = Object),
    ))]
pub async fn health(State(app): State<AppState>) -> Result<Response, ApiError> {
    let mut body = app.stats.health().await?;
    let (hits, misses) = (
        app.cache_stats.hits.load(std::sync::atomic::Ordering::Relaxed),
        app.cache_stats.misses.load(std::sync::atomic::Ordering::Relaxed),
    );
    let stats = &app.cache_stats;
    let (loads, load_micros, max_load_micros) = (
        stats.loads.load(std::sync::atomic::Ordering::Relaxed),
        stats.load_micros.load(std::sync::atomic::Ordering::Relaxed),
        stats.max_load_micros.load(std::sync::atomic::Ordering::Relaxed),
    );
    app.cache.run_pending_tasks().await;
    body["query_cache"] = json!({
        "hits": hits,
        "misses": misses,
        "hit_ratio": if hits + misses == 0 { Value::Null } else { json!(hits as f64 / (hits + misses) as f64) },
        "entries": app.cache.entry_count(),
        "bytes": app.cache.weighted_size(),
        "loads": loads,
        "load_ms_mean": if loads == 0 { Value::Null } else { json!(load_micros as f64 / loads as f64 / 1000.0) },
        "load_ms_max": if loads == 0 { Value::Null } else { json!(max_load_micros as f64 / 1000.0) },
    });
    let status = if body["status"] == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(body)).into_response())
}
