//! API errors and their HTTP statuses, mapped in this one place. Internal details are logged,
//! never sent.

use crate::query::limits::OverBudget;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer of the API.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer key, or an unknown one (401).
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The key is known but expired (401); the message says when.
    #[error("this API key expired at {0}; create a new one with `tally key create`")]
    KeyExpired(String),
    /// The key is valid but its scope does not allow the route (403); the message says why.
    #[error("{0}")]
    Forbidden(String),
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
    /// The request body is larger than its limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request's body did not arrive within the body timeout (408; the connection closes).
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The query would do more work than a limit allows (422); the message names the limit.
    #[error("{0}")]
    OverBudget(String),
    /// The key made more requests than its rate limit allows (429 with `Retry-After`).
    #[error("this API key is over its rate limit; retry in {retry_after_s} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// The client or the site sent more events than its rate limit allows (429 with
    /// `Retry-After`).
    #[error("too many events from this client or for this site; retry in {retry_after_s} s")]
    IngestRateLimited {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// Every query turn is taken (503 with `Retry-After`).
    #[error("too many queries at once; retry in {retry_after_s} s")]
    Busy {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// Anything else (500); logged with its details.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// Whether reading a body failed because its time ran out (the server's body timeout).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = error.source();
    }
    false
}

impl ApiError {
    /// A store's error in answering a query: over a budget (422), a query it refuses (400) or
    /// internal (500).
    pub fn from_query(error: anyhow::Error) -> ApiError {
        if let Some(over) = error.downcast_ref::<OverBudget>() {
            return ApiError::OverBudget(over.to_string());
        }
        match error.downcast_ref::<crate::query::QueryError>() {
            Some(refused) => ApiError::BadRequest(refused.0.clone()),
            None => ApiError::Internal(error),
        }
    }
}

impl ApiError {
    /// The same error again, for every request that waited on one shared computation (the
    /// answer cache loads identical misses once).
    pub fn duplicate(&self) -> ApiError {
        match self {
            ApiError::Unauthorized => ApiError::Unauthorized,
            ApiError::KeyExpired(m) => ApiError::KeyExpired(m.clone()),
            ApiError::Forbidden(m) => ApiError::Forbidden(m.clone()),
            ApiError::SiteNotFound => ApiError::SiteNotFound,
            ApiError::BadRequest(m) => ApiError::BadRequest(m.clone()),
            ApiError::TooLarge(m) => ApiError::TooLarge(m.clone()),
            ApiError::BodyTimeout => ApiError::BodyTimeout,
            ApiError::LogUnavailable => ApiError::LogUnavailable,
            ApiError::Busy { retry_after_s } => ApiError::Busy { retry_after_s: *retry_after_s },
            ApiError::OverBudget(m) => ApiError::OverBudget(m.clone()),
            ApiError::RateLimited { retry_after_s } => ApiError::RateLimited { retry_after_s: *retry_after_s },
            ApiError::IngestRateLimited { retry_after_s } => {
                ApiError::IngestRateLimited { retry_after_s: *retry_after_s }
            }
            ApiError::Internal(e) => ApiError::Internal(anyhow::anyhow!("{e:#}")),
        }
    }

    /// Its stable machine-readable code, the `code` of every error body (the message may be
    /// reworded; the code is not).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::KeyExpired(_) => "key_expired",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::SiteNotFound => "site_not_found",
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::TooLarge(_) => "body_too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::LogUnavailable => "log_unavailable",
            ApiError::Busy { .. } => "busy",
            ApiError::OverBudget(_) => "over_budget",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::IngestRateLimited { .. } => "ingest_rate_limited",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::Busy { retry_after_s }
            | ApiError::RateLimited { retry_after_s }
            | ApiError::IngestRateLimited { retry_after_s } => Some(*retry_after_s),
            _ => None,
        };
        let status = match &self {
            ApiError::Unauthorized | ApiError::KeyExpired(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::SiteNotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::LogUnavailable | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::OverBudget(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } | ApiError::IngestRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = super::answers::ErrorBody { error: self.to_string(), code: self.code().into() };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::BodyTimeout) {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
