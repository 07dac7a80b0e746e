//! The bounds every query is held to, in one place: what a request may ask (checked when it is
//! resolved, a 400 naming the limit) and the work it may do (checked as it runs, a 422 naming
//! the limit). README.md ("Query limits") lists them.

/// Largest request body of `POST /api/v2/query`, in bytes (a larger one is a 413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much of a too-large query body is read (and dropped) before the connection is closed:
/// up to this the client gets its 413 while it is still sending.
pub const MAX_DRAINED_BYTES: usize = 16 * 1024 * 1024;

/// Most metrics in one query (each at most once).
pub const MAX_METRICS: usize = 16;

/// Most dimensions in one query (each at most once).
pub const MAX_DIMENSIONS: usize = 4;

/// Most filters in one query (no filter twice).
pub const MAX_FILTERS: usize = 20;

use std::time::{Duration, Instant};

/// Deepest nesting of `and`, `or` and `not` in one filter (a saved segment's reference counts
/// two: its `or` and its `and`).
pub const MAX_FILTER_DEPTH: usize = 6;

/// Largest compiled regular expression of a `matches` filter, in bytes (the `regex` crate's
/// size limits): compiling and matching stay linear in the input, and small.
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// Most values in one filter.
pub const MAX_FILTER_VALUES: usize = 100;

/// Longest filter value, in characters.
pub const MAX_FILTER_VALUE_CHARS: usize = 2_000;

/// Most rows a query may skip (`pagination.offset`).
pub const MAX_OFFSET: usize = 1_000_000;

/// Most groups a query may hold while it runs (distinct combinations of its dimensions'
/// values), by default (`--query-max-groups`): about 200 bytes each, so at most about 100 MB
/// per query.
pub const MAX_GROUPS: usize = 500_000;

/// Longest date range (days) a query may cover on the embedded store, which reads a day's
/// rollups or segments per day: 100 years.
pub const MAX_RANGE_DAYS_EMBEDDED: i64 = 36_525;

/// Longest date range (days) on DynamoDB, where every day of the range costs a Query per writer
/// lineage: about 3 years.
pub const MAX_RANGE_DAYS_DYNAMODB: i64 = 1_100;

/// Queries answered at once per process; more wait for a turn.
pub const DEFAULT_CONCURRENT_QUERIES: u64 = 8;

/// How long a query may wait for a turn before it is refused (503 with `Retry-After`), seconds.
pub const QUEUE_WAIT_SECONDS: u64 = 5;

/// How long a query may run before it is stopped (422), seconds.
pub const DEFAULT_QUERY_SECONDS: u64 = 30;

/// The answer cache's default budget, in megabytes of answer JSON.
pub const DEFAULT_CACHE_MB: u64 = 64;

/// Why a query's date range is longer than `max_days` allows, if it is.
pub fn range_refusal(query: &super::Query, max_days: i64) -> Option<String> {
    let days = (query.buckets.end - query.buckets.start).div_euclid(24);
    if days > max_days {
        return Some(format!("date_range covers {days} days; this store answers at most {max_days}"));
    }
    let compared = query.include.comparison.as_ref().map_or(0, |c| (c.buckets.end - c.buckets.start).div_euclid(24));
    (compared > max_days)
        .then(|| format!("the comparison period covers {compared} days; this store answers at most {max_days}"))
}

/// A query that would do more work than a limit allows; the message names the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OverBudget(pub String);

impl OverBudget {
    /// The answer would hold more than `max` groups.
    pub fn groups(max: usize) -> OverBudget {
        OverBudget(format!(
            "the query would hold more than {max} groups (distinct dimension values); narrow its date range, \
             add a filter or use fewer dimensions"
        ))
    }

    /// The query ran past its time budget of `seconds`.
    pub fn time(seconds: u64) -> OverBudget {
        OverBudget(format!("the query ran longer than its {seconds} s budget; narrow its date range or add a filter"))
    }
}

/// What one query may spend while it runs, checked as it runs: groups held, and time (checked
/// before each segment and every few thousand rollup rows, so a query out of time stops its
/// work instead of finishing it unseen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkBudget {
    /// When the query must have finished.
    pub deadline: Instant,
    /// Its time budget, for the message.
    pub seconds: u64,
    /// Most groups it may hold.
    pub max_groups: usize,
}

impl WorkBudget {
    /// A budget of `time` from now and `max_groups` groups.
    pub fn new(time: Duration, max_groups: usize) -> WorkBudget {
        WorkBudget { deadline: Instant::now() + time, seconds: time.as_secs(), max_groups }
    }

    /// The default budget: [`DEFAULT_QUERY_SECONDS`] and [`MAX_GROUPS`].
    pub fn standard() -> WorkBudget {
        WorkBudget::new(Duration::from_secs(DEFAULT_QUERY_SECONDS), MAX_GROUPS)
    }

    /// `Err` once the deadline has passed.
    pub fn check_time(&self) -> Result<(), OverBudget> {
        if Instant::now() > self.deadline { Err(OverBudget::time(self.seconds)) } else { Ok(()) }
    }
}
