//! The JSON bodies the API answers with, as types: the handlers serialise them (the query
//! handler writes its cached `results` as bytes and the rest through these types), and the
//! OpenAPI description ([`super::openapi`]) is generated from them. A test validates real
//! answers against that description.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};

/// Every error answer: what to fix, and a stable code (`unauthorized`, `key_expired`,
/// `forbidden`, `site_not_found`, `invalid_request`, `body_too_large`, `body_timeout`,
/// `over_budget`, `rate_limited`, `ingest_rate_limited`, `busy`, `log_unavailable`, `internal`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to change.
    pub error: String,
    /// The stable machine-readable code.
    pub code: String,
}

/// The answer of `POST /api/v2/query`, as Plausible's Stats API v2 shapes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryAnswer {
    /// One row per group (one row without dimensions), after `order_by` and `pagination`.
    pub results: Vec<ResultRow>,
    /// How the answer was made.
    pub meta: QueryMeta,
    /// The query as Tally understood it.
    pub query: QueryEcho,
}

/// One row of an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultRow {
    /// The metrics, in the query's order: a number, `null` where there is nothing to divide
    /// (a rate of no visits, revenue of events without revenue), or a revenue object.
    pub metrics: Vec<Option<MetricValue>>,
    /// The dimension values, in the query's order (`(not set)` for an empty value).
    pub dimensions: Vec<String>,
    /// With `include.comparisons`: the same group in the other period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonRow>,
}

/// A metric's value.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum MetricValue {
    /// Counts, rates, durations and percentages.
    Number(serde_json::Number),
    /// `total_revenue` and `average_revenue`.
    Revenue(Revenue),
}

impl utoipa::PartialSchema for MetricValue {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(Ref::from_schema_name(Revenue::name()))
            .description(Some("A number, or revenue"))
            .into()
    }
}

impl ToSchema for MetricValue {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Revenue::name().into(), <Revenue as utoipa::PartialSchema>::schema()));
        <Revenue as ToSchema>::schemas(schemas);
    }
}

/// Revenue, per currency (Tally converts none).
#[derive(Debug, Serialize, ToSchema)]
pub struct Revenue {
    /// The amount, when it is in one currency; `null` for several.
    pub value: Option<f64>,
    /// The currency (ISO 4217), when there is one; `null` for several.
    pub currency: Option<String>,
    /// The amount in each currency.
    pub by_currency: BTreeMap<String, f64>,
}

/// A row's group in the comparison period.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComparisonRow {
    /// The row's dimensions in the other period (a time dimension maps to the label at the
    /// same position; `null` past the other period's end).
    pub dimensions: Vec<Option<String>>,
    /// Its metrics there (where the group did not occur: zeros, and `null` for the metrics that
    /// are `null` without data: revenue, `exit_rate`, `scroll_depth`, `time_on_page`).
    pub metrics: Vec<Option<MetricValue>>,
    /// The change per metric: whole percent, percentage points for `bounce_rate`, `null`
    /// where a value is missing.
    pub change: Vec<Option<f64>>,
}

/// `meta` of a query answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryMeta {
    /// The site's IANA time zone, in which days and hours are counted.
    pub time_zone: String,
    /// Up to when the numbers include every accepted event (ISO 8601 with offset); `null`
    /// where the store does not know (before any event).
    /// Absent on realtime answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_complete_until: Option<Option<String>>,
    /// The last event-log offset the aggregates applied (`tally serve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_offset_applied: Option<u64>,
    /// The store tier that answered: `rollups` or `segments`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<crate::query::Tier>,
    /// `hit` when the answer came from the answer cache, else `miss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// `true` on realtime answers (`date_range` `realtime` or `30m`), counted from live events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<bool>,
    /// With `include.imports`: always `false` (imports go into the same store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imports_included: Option<bool>,
    /// With `include.imports`: why nothing apart was included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imports_skip_reason: Option<String>,
    /// With `include.time_labels`: every period of the time dimension in the range, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_labels: Option<Vec<String>>,
    /// With `include.total_rows`: the rows before pagination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_rows: Option<usize>,
}

/// `query` of an answer: the request normalised.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryEcho {
    /// The site's id (its domain).
    pub site_id: String,
    /// The metrics asked.
    pub metrics: Vec<String>,
    /// The range's first and last second, ISO 8601 in the site's offset.
    pub date_range: [String; 2],
    /// The dimensions asked.
    pub dimensions: Vec<String>,
    /// The filters as asked (saved segments not expanded).
    #[schema(schema_with = crate::query::request::filters_schema)]
    pub filters: Vec<Value>,
    /// The order asked (`null`: the default order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_by: Option<Option<Vec<(String, String)>>>,
    /// The `include` asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub include: Option<Option<Value>>,
    /// The page given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<PageEcho>,
}

/// `query.pagination` of an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageEcho {
    /// Rows in the page.
    pub limit: usize,
    /// Rows skipped.
    pub offset: usize,
}

/// The answer of `GET /api/v2/drops`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DropsAnswer {
    /// The site asked, or `null` for drops that named no registered site.
    pub site_id: Option<String>,
    /// Dropped events by reason (`bot`, `rate_limited`, `unknown_site`, …).
    pub drops: BTreeMap<String, u64>,
}

/// A site, as the Sites API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteView {
    /// Its id: the domain.
    pub domain: String,
    /// Its IANA time zone.
    pub timezone: String,
}

/// The answer of `GET /api/v1/sites`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SitesAnswer {
    /// The sites the key may administer.
    pub sites: Vec<SiteView>,
}

/// A goal, as the Sites API shows it (its id is its name, which answers use).
#[derive(Debug, Serialize, ToSchema)]
pub struct GoalView {
    /// The goal's name (`Signup`, `Visit /blog/*`).
    pub id: String,
    /// `event`, `page` or `scroll`.
    pub goal_type: String,
    /// The custom event's name, for an event goal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// The page path pattern (`*`: any characters but `/`; `**`: any), for a page goal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_path: Option<String>,
    /// A revenue goal's currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// A scroll goal's least scroll depth, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scroll_threshold: Option<u8>,
    /// The name to show.
    pub display_name: String,
}

/// The answer of `GET /api/v1/sites/goals`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GoalsAnswer {
    /// The site's goals.
    pub goals: Vec<GoalView>,
}

/// An event as `POST /api/event` takes it (Plausible's Events API; the short keys are those
/// of Plausible's script). The body is one such object or an array of up to 25.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPayload {
    /// The event's name: `pageview` for a page view, anything else for a custom event (`n`).
    pub name: String,
    /// The page's URL (`u`).
    pub url: String,
    /// The site's domain, as registered (`d`).
    pub domain: String,
    /// The referrer (`r`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Custom props: string keys and scalar values, or a JSON string of them (`p`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub props: Option<Value>,
    /// Revenue: `{"amount": 9.99, "currency": "EUR"}` (`$`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub revenue: Option<Value>,
    /// Whether the event counts as an interaction (default `true`; a non-interactive event
    /// does not end a bounce) (`i`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
}

/// A refused ingest request.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestRefusal {
    /// Why: a reason such as `invalid_json` or `body_too_large`, or a sentence.
    pub error: String,
    /// On 429 and 503: the stable code (`ingest_rate_limited`, `log_unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}
