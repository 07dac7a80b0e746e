//! Saved funnels through the API, as `tally funnel` manages them from the CLI:
//! `GET /api/v1/sites/funnels?site_id=…` lists a site's funnels (any key that may read the site),
//! `PUT /api/v1/sites/funnels` saves or replaces one and
//! `DELETE /api/v1/sites/funnels?site_id=…&name=…` removes one (admin keys).

use super::AppState;
use super::admin::{admin_key as admin, write_settings};
use super::answers::ErrorBody;
use super::auth::{authorize, rated_key};
use super::body::read_bounded;
use super::error::ApiError;
use crate::registry::Funnel;
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest body `PUT /api/v1/sites/funnels` takes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The answer of `GET /api/v1/sites/funnels`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FunnelsAnswer {
    /// The site's funnels.
    pub funnels: Vec<Funnel>,
}

/// The body of `PUT /api/v1/sites/funnels`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFunnel {
    /// The site.
    pub site_id: String,
    /// The funnel's name (1 to 200 characters); a funnel of that name is replaced.
    pub name: String,
    /// 2 to 8 of the site's goal names, in order, none twice.
    pub steps: Vec<String>,
    /// Whether no other event may come between its steps (Plausible's strict order; default
    /// false).
    #[serde(default)]
    pub strict_order: bool,
}

/// `?site_id=…[&name=…]`.
#[derive(Debug, Deserialize)]
pub struct FunnelParams {
    /// The site.
    pub site_id: String,
    /// The funnel (for `DELETE`).
    pub name: Option<String>,
}

/// A site's funnels.
#[utoipa::path(get, path = "/api/v1/sites/funnels", tag = "sites", security(("api_key" = [])),
    params(("site_id" = String, Query, description = "The site's domain")),
    responses(
        (status = 200, description = "The site's funnels", body = FunnelsAnswer),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn list_funnels(
    State(app): State<AppState>,
    Query(params): Query<FunnelParams>,
    headers: HeaderMap,
) -> Result<Json<FunnelsAnswer>, ApiError> {
    let registry = app.registry.snapshot();
    let key = rated_key(&app, &registry, &headers)?;
    let site = authorize(&registry, key, &params.site_id)?;
    Ok(Json(FunnelsAnswer { funnels: site.funnels.clone() }))
}

/// Saves (or replaces) a funnel of a site the admin key may read; answers it.
#[utoipa::path(put, path = "/api/v1/sites/funnels", tag = "sites", security(("api_key" = [])),
    request_body = NewFunnel,
    responses(
        (status = 200, description = "The funnel, saved", body = Funnel),
        (status = 400, description = "A bad name, a step that is no goal of the site, not 2 to 8 steps, or over 100 funnels", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 403, description = "A stats key", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn put_funnel(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Json<Funnel>, ApiError> {
    let (domain, funnel) = {
        let registry = app.registry.snapshot();
        let key = admin(&app, &registry, &headers)?;
        let body = read_bounded(body, MAX_BODY_BYTES, "a funnel").await?;
        let request: NewFunnel =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid funnel: {e}")))?;
        let site = authorize(&registry, key, &request.site_id)?;
        let name = request.name.trim().to_owned();
        (site.domain.clone(), Funnel { name, steps: request.steps, strict_order: request.strict_order })
    };
    let registry = app.registry.clone();
    let saved = funnel.clone();
    write_settings("saving a funnel", move || registry.save_funnel(&domain, saved)).await?;
    Ok(Json(funnel))
}

/// Removes a funnel of a site the admin key may read.
#[utoipa::path(delete, path = "/api/v1/sites/funnels", tag = "sites", security(("api_key" = [])),
    params(("site_id" = String, Query, description = "The site's domain"),
           ("name" = String, Query, description = "The funnel's name")),
    responses(
        (status = 200, description = "Removed: `{\"deleted\": true}`", body = Object),
        (status = 400, description = "No name, or no such funnel", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 403, description = "A stats key", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn delete_funnel(
    State(app): State<AppState>,
    Query(params): Query<FunnelParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (domain, name) = {
        let registry = app.registry.snapshot();
        let key = admin(&app, &registry, &headers)?;
        let site = authorize(&registry, key, &params.site_id)?;
        let name = params.name.ok_or_else(|| ApiError::BadRequest("name the funnel: ?site_id=…&name=…".into()))?;
        (site.domain.clone(), name)
    };
    let registry = app.registry.clone();
    write_settings("removing a funnel", move || registry.remove_funnel(&domain, &name)).await?;
    Ok(Json(serde_json::json!({ "deleted": true })))
}
