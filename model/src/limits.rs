//! The documented limits on what the ingest endpoint accepts.
//!
//! Every limit here is enforced by the model and named in the README's reference; change them
//! together.

/// Largest request body, in bytes (64 KiB). Larger bodies are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most events in one batch (a JSON array body).
pub const MAX_BATCH_EVENTS: usize = 25;
/// Most sites one event may name in a comma-separated `domain` (Plausible's "send to several
/// sites").
pub const MAX_DOMAINS_PER_EVENT: usize = 10;
/// Deepest JSON nesting of a body: arrays and objects inside each other.
pub const MAX_JSON_DEPTH: usize = 8;
/// Longest page URL, in characters.
pub const MAX_URL_CHARS: usize = 2_000;
/// Longest referrer, in characters.
pub const MAX_REFERRER_CHARS: usize = 2_000;
/// Longest event name, in characters.
pub const MAX_EVENT_NAME_CHARS: usize = 120;
/// Most custom properties on one event.
pub const MAX_PROPS: usize = 30;
/// Longest custom property name, in characters.
pub const MAX_PROP_NAME_CHARS: usize = 300;
/// Longest custom property value, in characters.
pub const MAX_PROP_VALUE_CHARS: usize = 2_000;
/// Longest user agent kept, in characters; longer ones are cut, not refused.
pub const MAX_USER_AGENT_CHARS: usize = 1_000;
/// A visit ends after this long without an event from the visitor (30 minutes).
pub const SESSION_TIMEOUT_MS: i64 = 30 * 60 * 1000;
/// Longest city name kept, in characters; longer ones are cut, not refused.
pub const MAX_CITY_CHARS: usize = 100;
