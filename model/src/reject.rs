//! Why a request is refused, or why one event in it is dropped.
//!
//! A [`Rejection`] concerns the whole body and maps to a 4xx status; a [`DropReason`] concerns
//! one well-formed event, which is answered 202 but not counted, and is itself counted per site.

use serde::{Deserialize, Serialize};

/// The body as a whole cannot be taken. Each maps to one HTTP status (see [`Rejection::status`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The body is larger than [`crate::limits::MAX_BODY_BYTES`] (413).
    #[error("body_too_large")]
    BodyTooLarge,
    /// The Content-Type is neither `application/json` nor `text/plain` (415).
    #[error("unsupported_content_type")]
    UnsupportedContentType,
    /// The body is empty (400).
    #[error("empty_body")]
    EmptyBody,
    /// The body is not valid UTF-8 (400).
    #[error("invalid_utf8")]
    InvalidUtf8,
    /// The body nests arrays and objects deeper than [`crate::limits::MAX_JSON_DEPTH`] (400).
    #[error("nesting_too_deep")]
    NestingTooDeep,
    /// The body is not JSON (400).
    #[error("invalid_json")]
    InvalidJson,
    /// The body is JSON but neither an event object nor an array of them (400).
    #[error("not_an_event")]
    NotAnEvent,
    /// A batch holds more than [`crate::limits::MAX_BATCH_EVENTS`] events, or none (400).
    #[error("bad_batch_size")]
    BadBatchSize,
}

impl Rejection {
    /// The stable code of this rejection, as the `error` field of a 4xx answer names it.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::UnsupportedContentType => "unsupported_content_type",
            Rejection::EmptyBody => "empty_body",
            Rejection::InvalidUtf8 => "invalid_utf8",
            Rejection::NestingTooDeep => "nesting_too_deep",
            Rejection::InvalidJson => "invalid_json",
            Rejection::NotAnEvent => "not_an_event",
            Rejection::BadBatchSize => "bad_batch_size",
        }
    }

    /// The HTTP status code for this rejection.
    pub fn status(self) -> u16 {
        match self {
            Rejection::BodyTooLarge => 413,
            Rejection::UnsupportedContentType => 415,
            _ => 400,
        }
    }
}

/// Why one well-formed event was dropped. The names (from [`DropReason::as_str`]) are stable:
/// they appear in the `X-Tally-Dropped` header, in stored drop counts and in the README.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DropReason {
    /// The user agent is a crawler, headless browser or HTTP library.
    Bot,
    /// The event's domain is not a registered site.
    UnknownSite,
    /// `name`, `url` or `domain` is missing or not a string.
    MissingField,
    /// A field has the wrong JSON type (e.g. `props` not an object).
    WrongType,
    /// The event name is empty or longer than the limit.
    InvalidName,
    /// The URL is not an http(s) URL with a host, or is longer than the limit.
    InvalidUrl,
    /// The referrer is longer than the limit.
    ReferrerTooLong,
    /// More custom properties than the limit.
    TooManyProps,
    /// A property name is empty or longer than the limit.
    PropNameTooLong,
    /// A property value is longer than the limit.
    PropValueTooLong,
    /// A property value is an object or array.
    PropValueNotScalar,
    /// `revenue` is not `{ "amount": number or decimal string, "currency": ISO 4217 code }`, or
    /// its amount has more than 12 digits before the decimal point.
    InvalidRevenue,
    /// The domain is not a valid host name.
    InvalidDomain,
    /// The page's host is not one the site allows (edge site settings).
    HostnameNotAllowed,
    /// The client or the site sent more than its rate limit (`tally serve`); such refusals are
    /// logged as counts ([`crate::event::DropCount`]), never one entry each.
    RateLimited,
    /// An `engagement` event arrived when its visitor had no open visit (as Plausible drops
    /// it). Counted by the aggregator, never logged.
    EngagementWithoutVisit,
}

impl DropReason {
    /// Every reason, in a stable order.
    pub const ALL: [DropReason; 16] = [
        DropReason::Bot,
        DropReason::UnknownSite,
        DropReason::MissingField,
        DropReason::WrongType,
        DropReason::InvalidName,
        DropReason::InvalidUrl,
        DropReason::ReferrerTooLong,
        DropReason::TooManyProps,
        DropReason::PropNameTooLong,
        DropReason::PropValueTooLong,
        DropReason::PropValueNotScalar,
        DropReason::InvalidRevenue,
        DropReason::InvalidDomain,
        DropReason::HostnameNotAllowed,
        DropReason::RateLimited,
        DropReason::EngagementWithoutVisit,
    ];

    /// The stable snake_case name of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Bot => "bot",
            DropReason::UnknownSite => "unknown_site",
            DropReason::MissingField => "missing_field",
            DropReason::WrongType => "wrong_type",
            DropReason::InvalidName => "invalid_name",
            DropReason::InvalidUrl => "invalid_url",
            DropReason::ReferrerTooLong => "referrer_too_long",
            DropReason::TooManyProps => "too_many_props",
            DropReason::PropNameTooLong => "prop_name_too_long",
            DropReason::PropValueTooLong => "prop_value_too_long",
            DropReason::PropValueNotScalar => "prop_value_not_scalar",
            DropReason::InvalidRevenue => "invalid_revenue",
            DropReason::InvalidDomain => "invalid_domain",
            DropReason::HostnameNotAllowed => "hostname_not_allowed",
            DropReason::RateLimited => "rate_limited",
            DropReason::EngagementWithoutVisit => "engagement_without_visit",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
