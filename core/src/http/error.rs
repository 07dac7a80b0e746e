//! API errors and their HTTP statuses, mapped in this one place. Internal details are logged,
//! never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer of the API.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer key, or an unknown one (401).
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The site does not exist or the key may not read it (404); one answer for both, so the
    /// refusal does not tell whether the site exists.
    #[error("site not found, or not accessible with this API key")]
    SiteNotFound,
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The event log cannot take events right now (503).
    #[error("event log unavailable")]
    LogUnavailable,
    /// Anything else (500); logged with its details.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::SiteNotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::LogUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}
