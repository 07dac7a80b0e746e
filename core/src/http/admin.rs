//! The admin routes, in the shape of Plausible's Sites API, for admin keys only:
//! `GET /api/v1/sites` lists the sites the key may read, `POST /api/v1/sites` registers a site
//! and adds it to the key's scope; `GET /api/v1/sites/goals?site_id=…` lists a site's goals and
//! `PUT /api/v1/sites/goals` finds or creates one, `DELETE /api/v1/sites/goals/{goal_id}` removes
//! one. A stats key gets a 403; a missing, unknown or expired key a
//! 401, as on the Stats API, and both count against the key's rate limit.

use super::AppState;
use super::answers::{ErrorBody, GoalView, GoalsAnswer, SiteView, SitesAnswer};
use super::auth::{rated_key, require_admin};
use super::body::read_bounded;
use super::error::ApiError;
use crate::registry::{Goal, KeyScope, RegistryError, Site};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;

/// The largest body `POST /api/v1/sites` takes (a larger one is a 413).
pub const MAX_SITES_BODY_BYTES: usize = 64 * 1024;

/// The body of `POST /api/v1/sites`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewSite {
    /// The site's domain, normalised as by `tally site add`.
    pub domain: String,
    /// Its IANA time zone; `Etc/UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// The sites a key may read, whatever its scope (the dashboard's site switcher):
/// `{"sites": [{"domain": …, "timezone": …}]}`, by domain.
#[utoipa::path(get, path = "/api/v1/sites", tag = "sites", security(("api_key" = [])),
    responses(
        (status = 200, description = "The sites the key may read (stats or admin key)", body = SitesAnswer),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
    ))]
pub async fn list_sites(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<SitesAnswer>, ApiError> {
    let registry = app.registry.snapshot();
    let key = rated_key(&app, &registry, &headers)?;
    let sites = key.sites.iter().filter_map(|domain| registry.site(domain)).map(site_view).collect();
    Ok(Json(SitesAnswer { sites }))
}

/// Registers a site (the checks of `tally site add`) and adds it to the calling admin key's
/// scope in one registry write; answers the site.
#[utoipa::path(post, path = "/api/v1/sites", tag = "sites", security(("api_key" = [])), request_body = NewSite,
    responses(
        (status = 200, description = "The site, registered and added to the key's sites", body = SiteView),
        (status = 400, description = "A bad domain or time zone, or a site that exists", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 403, description = "A stats key", body = ErrorBody),
    ))]
pub async fn add_site(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Json<SiteView>, ApiError> {
    let key_id = {
        let registry = app.registry.snapshot();
        admin_key(&app, &registry, &headers)?.id.clone()
    };
    let body = read_bounded(body, MAX_SITES_BODY_BYTES, "a sites request body").await?;
    let request: NewSite =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid site: {e}")))?;
    let registry = app.registry.clone();
    let added = tokio::task::spawn_blocking(move || {
        registry.add_site_for_key(&key_id, &request.domain, request.timezone.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("adding a site stopped: {e}")))?;
    match added {
        Ok(site) => Ok(Json(site_view(&site))),
        Err(
            e @ (RegistryError::InvalidDomain(_) | RegistryError::UnknownTimezone(_) | RegistryError::SiteExists(_)),
        ) => Err(ApiError::BadRequest(e.to_string())),
        // Revoked between the check and the write.
        Err(RegistryError::UnknownKey(_)) => Err(ApiError::Unauthorized),
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}

/// `?site_id=…` of the goals list.
#[derive(Debug, Deserialize)]
pub struct SiteParam {
    /// The site.
    pub site_id: String,
}

/// The body of `PUT /api/v1/sites/goals`, as Plausible's Sites API takes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGoal {
    /// The site.
    pub site_id: String,
    /// `event`, `page` or `scroll`.
    pub goal_type: String,
    /// The event's name (event goals).
    #[serde(default)]
    pub event_name: Option<String>,
    /// The path pattern (page and scroll goals).
    #[serde(default)]
    pub page_path: Option<String>,
    /// A scroll goal's least scroll depth, percent (0 to 100).
    #[serde(default)]
    pub scroll_threshold: Option<u8>,
    /// A revenue goal's currency (event goals; ISO 4217, such as EUR).
    #[serde(default)]
    pub currency: Option<String>,
}

/// A site's goals: `{"goals": [{"id": name, "goal_type": …, "event_name"|"page_path": …, "display_name": …}]}`.
#[utoipa::path(get, path = "/api/v1/sites/goals", tag = "sites", security(("api_key" = [])),
    params(("site_id" = String, Query, description = "The site's domain")),
    responses(
        (status = 200, description = "The site's goals", body = GoalsAnswer),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 403, description = "A stats key", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn list_goals(
    State(app): State<AppState>,
    axum::extract::Query(param): axum::extract::Query<SiteParam>,
    headers: HeaderMap,
) -> Result<Json<GoalsAnswer>, ApiError> {
    let registry = app.registry.snapshot();
    let key = admin_key(&app, &registry, &headers)?;
    let site = super::auth::authorize(&registry, key, &param.site_id)?;
    Ok(Json(GoalsAnswer { goals: site.goals.iter().map(goal_view).collect() }))
}

/// Finds or creates a goal of a site the admin key may read; answers it (200 either way).
#[utoipa::path(put, path = "/api/v1/sites/goals", tag = "sites", security(("api_key" = [])), request_body = NewGoal,
    responses(
        (status = 200, description = "The goal, found or created", body = GoalView),
        (status = 400, description = "A malformed goal, or over 200 goals", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 403, description = "A stats key", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn put_goal(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Json<GoalView>, ApiError> {
    let (domain, goal) = {
        let registry = app.registry.snapshot();
        let key = admin_key(&app, &registry, &headers)?;
        let body = read_bounded(body, MAX_SITES_BODY_BYTES, "a sites request body").await?;
        let request: NewGoal =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid goal: {e}")))?;
        let site = super::auth::authorize(&registry, key, &request.site_id)?;
        if request.goal_type == "page" && request.currency.is_some() {
            return Err(ApiError::BadRequest(
                "a currency makes an event goal a revenue goal; page goals have none".into(),
            ));
        }
        let goal = match (request.goal_type.as_str(), request.event_name, request.page_path) {
            ("event", Some(event_name), None) => Goal::Event { event_name, currency: request.currency },
            ("page", None, Some(page_path)) if request.scroll_threshold.is_none() => Goal::Page { page_path },
            ("scroll", None, Some(page_path)) if request.scroll_threshold.is_some() => {
                Goal::Scroll { page_path, scroll_threshold: request.scroll_threshold.unwrap_or_default() }
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "a goal is {\"goal_type\": \"event\", \"event_name\": …}, {\"goal_type\": \"page\", \"page_path\": …} \
                     or {\"goal_type\": \"scroll\", \"page_path\": …, \"scroll_threshold\": 0 to 100}"
                        .into(),
                ));
            }
        };
        (site.domain.clone(), goal)
    };
    let registry = app.registry.clone();
    let (goal, _) = write_settings("adding a goal", move || registry.add_goal(&domain, goal)).await?;
    Ok(Json(goal_view(&goal)))
}

/// Removes a goal (its id is its name) of a site the admin key may read, as Plausible's
/// `DELETE /api/v1/sites/goals/:goal_id` does.
#[utoipa::path(delete, path = "/api/v1/sites/goals/{goal_id}", tag = "sites", security(("api_key" = [])),
    params(("goal_id" = String, Path, description = "The goal's id: its name (`Signup`, `Visit /blog/*`), URL-encoded"),
           ("site_id" = String, Query, description = "The site's domain")),
    responses(
        (status = 200, description = "Removed: `{\"deleted\": true}`", body = Object),
        (status = 400, description = "No goal of that name", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 403, description = "A stats key", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
    ))]
pub async fn delete_goal(
    State(app): State<AppState>,
    axum::extract::Path(goal_id): axum::extract::Path<String>,
    axum::extract::Query(param): axum::extract::Query<SiteParam>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let domain = {
        let registry = app.registry.snapshot();
        let key = admin_key(&app, &registry, &headers)?;
        super::auth::authorize(&registry, key, &param.site_id)?.domain.clone()
    };
    let registry = app.registry.clone();
    write_settings("removing a goal", move || registry.remove_goal(&domain, &goal_id)).await?;
    Ok(Json(serde_json::json!({ "deleted": true })))
}

/// Runs a write of a site's settings (goals, segments) to the registry off the async threads:
/// a setting the registry refuses is a 400 with its reason, anything else a 500.
pub(super) async fn write_settings<T: Send + 'static>(
    what: &str,
    write: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    let written = tokio::task::spawn_blocking(write)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{what} stopped: {e}")))?;
    match written {
        Ok(value) => Ok(value),
        Err(e @ RegistryError::InvalidSetting(_)) => Err(ApiError::BadRequest(e.to_string())),
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}

/// A goal as the Sites API shows it (its id is its name, which answers use).
fn goal_view(goal: &Goal) -> GoalView {
    let (goal_type, event_name, page_path) = match goal {
        Goal::Event { event_name, .. } => ("event", Some(event_name.clone()), None),
        Goal::Page { page_path } => ("page", None, Some(page_path.clone())),
        Goal::Scroll { page_path, .. } => ("scroll", None, Some(page_path.clone())),
    };
    let currency = match goal {
        Goal::Event { currency, .. } => currency.clone(),
        Goal::Page { .. } | Goal::Scroll { .. } => None,
    };
    let scroll_threshold = match goal {
        Goal::Scroll { scroll_threshold, .. } => Some(*scroll_threshold),
        _ => None,
    };
    GoalView {
        id: goal.name(),
        goal_type: goal_type.into(),
        event_name,
        page_path,
        currency,
        scroll_threshold,
        display_name: goal.name(),
    }
}

/// The request's key if it is valid, within its rate limit and an admin key.
pub(super) fn admin_key<'a>(
    app: &AppState,
    registry: &'a crate::registry::Snapshot,
    headers: &HeaderMap,
) -> Result<&'a KeyScope, ApiError> {
    let key = rated_key(app, registry, headers)?;
    require_admin(key)?;
    Ok(key)
}

/// A site as the Sites API shows it.
fn site_view(site: &Site) -> SiteView {
    SiteView { domain: site.domain.clone(), timezone: site.timezone_name.clone() }
}
