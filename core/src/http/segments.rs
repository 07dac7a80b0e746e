//! Saved segments through the API, as `tally segment` manages them from the CLI:
//! `GET /api/v1/sites/segments?site_id=…` lists a site's segments (any key that may read the
//! site: a dashboard offers them), `PUT /api/v1/sites/segments` saves one and
//! `DELETE /api/v1/sites/segments?site_id=…&id=…` removes one (admin keys).

use super::AppState;
use super::admin::{admin_key as admin, write_settings};
use super::answers::ErrorBody;
use super::auth::{authorize, rated_key};
use super::body::read_bounded;
use super::error::ApiError;
use crate::registry::SavedSegment;
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest body `PUT /api/v1/sites/segments` takes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A saved segment as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentView {
    /// Its id within the site: `["is", "segment", [id]]` in a query's filters stands for it.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Its Stats API filters.
    #[schema(schema_with = crate::query::request::filters_schema)]
    pub filters: Value,
}

/// The answer of `GET /api/v1/sites/segments`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentsAnswer {
    /// The site's segments, by id.
    pub segments: Vec<SegmentView>,
}

/// The body of `PUT /api/v1/sites/segments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSegment {
    /// The site.
    pub site_id: String,
    /// The segment's name (1 to 200 characters).
    pub name: String,
    /// Stats API filters, checked as a query's (at least one; none naming a segment).
    #[schema(schema_with = crate::query::request::filters_schema)]
    pub filters: Value,
}

/// `?site_id=…[&id=…]`.
#[derive(Debug, Deserialize)]
pub struct SegmentParams {
    /// The site.
    pub site_id: String,
    /// The segment (for `DELETE`).
    pub id: Option<u32>,
}

fn view(segment: &SavedSegment) -> SegmentView {
    let filters = serde_json::from_str(&segment.filters).unwrap_or(Value::Null);
    SegmentView { id: segment.id, name: segment.name.clone(), filters }
}

/// A site's saved segments.
#[utoipa::path(get, path = "/api/v1/sites/segments", tag = "sites", security(("api_key" = [])),
    params(("site_id" = String, Query, description = "The site's domain")),
    responses(
        (status = 200, description = "The site's segments", body = SegmentsAnswer),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn list(
    State(app): State<AppState>,
    Query(params): Query<SegmentParams>,
    headers: HeaderMap,
) -> Result<Json<SegmentsAnswer>, ApiError> {
    let registry = app.registry.snapshot();
    let key = rated_key(&app, &registry, &headers)?;
    let site = authorize(&registry, key, &params.site_id)?;
    Ok(Json(SegmentsAnswer { segments: site.segments.iter().map(view).collect() }))
}

/// Saves a segment of a site the admin key may read; answers it with its id.
#[utoipa::path(put, path = "/api/v1/sites/segments", tag = "sites", security(("api_key" = [])),
    request_body = NewSegment,
    responses(
        (status = 200, description = "The segment, saved", body = SegmentView),
        (status = 400, description = "A bad name or bad filters, or over 100 segments", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 403, description = "A stats key", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn put(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Json<SegmentView>, ApiError> {
    let (domain, name, filters) = {
        let registry = app.registry.snapshot();
        let key = admin(&app, &registry, &headers)?;
        let body = read_bounded(body, MAX_BODY_BYTES, "a segment").await?;
        let request: NewSegment =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid segment: {e}")))?;
        let site = authorize(&registry, key, &request.site_id)?;
        let filters = crate::query::saved_segments::check(&request.filters.to_string())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        (site.domain.clone(), request.name, filters)
    };
    let registry = app.registry.clone();
    let segment = write_settings("saving a segment", move || registry.add_segment(&domain, &name, &filters)).await?;
    Ok(Json(view(&segment)))
}

/// Removes a segment of a site the admin key may read.
#[utoipa::path(delete, path = "/api/v1/sites/segments", tag = "sites", security(("api_key" = [])),
    params(("site_id" = String, Query, description = "The site's domain"),
           ("id" = u32, Query, description = "The segment's id")),
    responses(
        (status = 200, description = "Removed: `{\"deleted\": true}`", body = Object),
        (status = 400, description = "No id, or no such segment", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 403, description = "A stats key", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn delete(
    State(app): State<AppState>,
    Query(params): Query<SegmentParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (domain, id) = {
        let registry = app.registry.snapshot();
        let key = admin(&app, &registry, &headers)?;
        let site = authorize(&registry, key, &params.site_id)?;
        let id = params.id.ok_or_else(|| ApiError::BadRequest("name the segment: ?site_id=…&id=…".into()))?;
        (site.domain.clone(), id)
    };
    let registry = app.registry.clone();
    write_settings("removing a segment", move || registry.remove_segment(&domain, id)).await?;
    Ok(Json(serde_json::json!({ "deleted": true })))
}
