//! The read seam between the HTTP API and the stores (design decision 16): what a store must
//! answer for the query, drops and health endpoints. The embedded store (`embedded/stats.rs`) and
//! DynamoDB (`aws/stats.rs`) implement it; handlers never ask which one they have.

use super::exec::Row;
use super::limits::WorkBudget;
use super::plan::Tier;
use super::request::Query;
use crate::columnar::Segment;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tally_model::rollup::Bucket;

/// A store's answer, computed asynchronously.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// How current a store's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// What cached answers are keyed by: answers cached under another version are not served.
    pub version: u64,
    /// Arrival time of the last applied event, ms since the epoch, where the store knows it.
    pub until_ms: Option<i64>,
    /// The last applied log offset, where the store has a log.
    pub offset: Option<u64>,
}

/// What the query API reads.
pub trait StatsSource: Send + Sync {
    /// Why this store cannot answer `query` (answered as a 400), or `None`.
    fn refuse(&self, query: &Query) -> Option<String>;

    /// How current the data is now, and the version of `query`'s answer: cached answers are
    /// keyed by it, so it changes whenever the answer may.
    fn freshness(&self, query: &Query) -> anyhow::Result<Freshness>;

    /// The query's rows, and the tier that computed them, within `budget` (a query past it is
    /// an [`super::limits::OverBudget`] error naming the limit).
    fn answer(&self, query: Query, budget: WorkBudget) -> Pending<'_, (Tier, Vec<Row>)>;

    /// The segments (tier 2) of `query`'s site and range, each with the buckets to read of it:
    /// what funnels read, which only tier 2 can answer (its rows keep each event's second).
    fn segments<'a>(&'a self, query: &'a Query) -> Pending<'a, Vec<(Arc<Segment>, Bucket, Bucket)>> {
        let _ = query;
        Box::pin(async { Err(super::QueryError("this store keeps no segments".into()).into()) })
    }

    /// The site's first local day with data (days since 1970-01-01; `None`: no data yet), for
    /// `date_range: "all"`. A store that cannot tell answers a [`super::QueryError`] (a 400).
    fn first_day<'a>(&'a self, site: &'a str) -> Pending<'a, Option<i64>>;

    /// Drop counts of `site` ("" for drops that named no site), by reason.
    fn drops<'a>(&'a self, site: &'a str) -> Pending<'a, BTreeMap<String, u64>>;

    /// The body of `GET /api/health`: `"status": "ok"` when the store answers, else
    /// `"failing"` with what failed (the endpoint then answers 503).
    fn health(&self) -> Pending<'_, Value>;
}

/// An arrival time as the `data_complete_until` of an answer (`None`: null, before the first
/// event).
pub fn complete_until(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms).ok().filter(|_| ms > 0).map(|t| t.to_string())
}
