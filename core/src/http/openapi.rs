//! The OpenAPI 3.1 description of the HTTP API, generated from the handlers' annotations and the
//! types they read and answer ([`super::answers`], [`crate::query::QueryRequest`]), served at
//! `GET /api/openapi.json`.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tally",
        description = "Web analytics: the public ingest endpoint, the Stats API (Plausible's Stats API v2 shapes) and the admin Sites API. Keys go in `Authorization: Bearer <key>`."
    ),
    paths(
        super::query::query,
        super::query::drops,
        super::export::export,
        super::funnel::funnel,
        super::props::props,
        super::admin::list_sites,
        super::admin::add_site,
        super::admin::list_goals,
        super::admin::put_goal,
        super::admin::delete_goal,
        super::segments::list,
        super::segments::put,
        super::segments::delete,
        super::funnels::list_funnels,
        super::funnels::put_funnel,
        super::funnels::delete_funnel,
        super::ingest::event,
        super::query::health,
        openapi_json,
    ),
    modifiers(&BearerKey),
    tags(
        (name = "stats", description = "Numbers of a site the key may read"),
        (name = "sites", description = "Sites and goals, for admin keys"),
        (name = "ingest", description = "Events from tracking scripts (public)"),
        (name = "operations", description = "Health and this description"),
    )
)]
pub struct ApiDoc;

/// Declares the `api_key` bearer scheme the routes name.
struct BearerKey;

impl utoipa::Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `tally key create`"))
                    .build(),
            ),
        );
    }
}

/// The description as JSON, made once.
pub fn document() -> &'static Bytes {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        Bytes::from(doc.to_pretty_json().unwrap_or_default())
    })
}

/// This description.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", body = Object)))]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], document().clone()).into_response()
}
