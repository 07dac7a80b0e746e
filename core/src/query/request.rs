//! A Stats API v2 request, checked and resolved into a [`Query`] over local-hour buckets.

pub use super::filter::{Field, Filter, FilterExpr, NO_PROP, Op, PROP_PREFIX};
use super::filter::{parse_filters, prop_name};
use super::limits::{MAX_DIMENSIONS, MAX_FILTERS, MAX_METRICS, MAX_OFFSET};
use super::suggest::did_you_mean;
use crate::pipeline::timebucket::bucket_start;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::Value;
use tally_model::dimension::Dimension;
use tally_model::rollup::Bucket;

/// Most rows one answer holds.
pub const MAX_LIMIT: usize = 10_000;

/// The request body, as Plausible's Stats API v2 defines it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The site's domain.
    pub site_id: String,
    /// Metric names.
    pub metrics: Vec<String>,
    /// A preset (`"day"`, `"7d"`, …) or `[from, to]` ISO dates.
    #[schema(schema_with = date_range_schema)]
    pub date_range: Value,
    /// Dimension names.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Filters: `[operator, dimension, [values…], {modifiers}]`, `["and" | "or", [filters]]`
    /// or `["not", filter]`, combined with AND.
    #[serde(default)]
    #[schema(schema_with = filters_schema)]
    pub filters: Vec<Value>,
    /// `[[metric or dimension, "asc" | "desc"], …]`.
    #[serde(default)]
    pub order_by: Option<Vec<(String, String)>>,
    /// What to add to the answer: `time_labels`, `total_rows`, `comparisons` (and `imports`,
    /// which Tally has none of).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub include: Option<Value>,
    /// `{ "limit": n, "offset": n }`.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// `date_range`'s schema: a preset name or two ISO dates or date-times.
pub(crate) fn date_range_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let text = || ObjectBuilder::new().schema_type(Type::String);
    OneOfBuilder::new()
        .item(text().description(Some(
            "day, 24h, 7d, 28d, 30d, 91d (any Nd), 6mo, 12mo (any Nmo), month, year, all, realtime, 30m",
        )))
        .item(ArrayBuilder::new().items(text()).min_items(Some(2)).max_items(Some(2)))
        .build()
        .into()
}

/// `filters`' schema: a list of filter expressions, each a JSON array.
pub fn filters_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, Type};
    let expression = ArrayBuilder::new().description(Some(
        "[operator, dimension, [values], {\"case_sensitive\": false}?], [\"and\"|\"or\", [filters]], [\"not\", filter] or [\"has_done\"|\"has_not_done\", filter]",
    ));
    ArrayBuilder::new().items(expression).schema_type(Type::Array).build().into()
}

/// Result paging.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// Rows to return (at most [`MAX_LIMIT`]).
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Rows to skip.
    #[serde(default)]
    pub offset: usize,
}

fn default_limit() -> usize {
    MAX_LIMIT
}

/// A metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Distinct visitors.
    Visitors,
    /// Visits (sessions).
    Visits,
    /// Page views.
    Pageviews,
    /// Events of any name.
    Events,
    /// Share of single-page visits, in whole percent.
    BounceRate,
    /// Mean visit duration, in whole seconds.
    VisitDuration,
    /// Mean page views per visit, two decimals.
    ViewsPerVisit,
    /// Summed revenue of the events, per currency.
    TotalRevenue,
    /// Revenue per event that carried revenue, per currency.
    AverageRevenue,
    /// The group's visitors as a share of all visitors of the range and filters, in percent
    /// with one decimal (the executors give visitors; [`super::percentage`] divides).
    Percentage,
    /// The group's converting visitors as a share of all visitors of the range and the
    /// filters other than goals, in percent with two decimals (needs `event:goal`; the
    /// executors give visitors; [`super::goals`] divides).
    ConversionRate,
    /// The group's converting visitors as a share of the visitors with the same values of the
    /// other dimensions (the filters other than goals), in percent with two decimals.
    GroupConversionRate,
    /// With `visit:exit_page`: the visits that left from the page as a share of its page views,
    /// in percent with one decimal (the executors give the visits; [`super::exit_rate`] divides).
    ExitRate,
    /// Per visit the deepest scroll its engagement events reported on the group's pages, averaged
    /// over the visits that reported one, in whole percent (`null` without any; needs `event:page`).
    ScrollDepth,
    /// The engaged time of the engagement events, per visit that sent one, in whole seconds
    /// (`null` without any; needs `event:page`).
    TimeOnPage,
}

impl Metric {
    const ALL: [(Metric, &'static str); 15] = [
        (Metric::Visitors, "visitors"),
        (Metric::Visits, "visits"),
        (Metric::Pageviews, "pageviews"),
        (Metric::Events, "events"),
        (Metric::BounceRate, "bounce_rate"),
        (Metric::VisitDuration, "visit_duration"),
        (Metric::ViewsPerVisit, "views_per_visit"),
        (Metric::TotalRevenue, "total_revenue"),
        (Metric::AverageRevenue, "average_revenue"),
        (Metric::Percentage, "percentage"),
        (Metric::ConversionRate, "conversion_rate"),
        (Metric::GroupConversionRate, "group_conversion_rate"),
        (Metric::ExitRate, "exit_rate"),
        (Metric::ScrollDepth, "scroll_depth"),
        (Metric::TimeOnPage, "time_on_page"),
    ];

    fn parse(name: &str) -> Option<Metric> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(m, _)| *m)
    }

    /// Its API name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(m, _)| *m == self).map_or("", |(_, n)| n)
    }

    /// Whether it is a revenue metric.
    pub fn is_revenue(self) -> bool {
        matches!(self, Metric::TotalRevenue | Metric::AverageRevenue)
    }

    /// Whether it reads what engagement events measured (tier 2 only).
    pub fn is_engagement(self) -> bool {
        matches!(self, Metric::ScrollDepth | Metric::TimeOnPage)
    }
}

/// A grouping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grouping {
    /// `time:hour`.
    Hour,
    /// `time:day`.
    Day,
    /// `time:week`: weeks from Monday, the first one from the range's first day.
    Week,
    /// `time:month`: calendar months.
    Month,
    /// `event:goal`: the site's goals (expanded by [`super::goals`] before the executors).
    Goal,
    /// A dimension.
    Dim(Dimension),
    /// A location dimension's `_name` form ([`super::place_names`]): executed as the dimension,
    /// its labels shown by name.
    Name(Dimension),
    /// `event:props:<name>`: the events that have the prop, by its value.
    Prop(String),
}

impl Grouping {
    /// Whether it groups by time.
    pub fn is_time(&self) -> bool {
        matches!(self, Grouping::Hour | Grouping::Day | Grouping::Week | Grouping::Month)
    }

    /// Whether it groups by a dimension or a prop (not by time).
    pub fn is_field(&self) -> bool {
        matches!(self, Grouping::Dim(_) | Grouping::Name(_) | Grouping::Prop(_))
    }

    /// The dimension it groups by (a `_name` form groups by its dimension).
    pub fn dimension(&self) -> Option<Dimension> {
        match self {
            Grouping::Dim(d) | Grouping::Name(d) => Some(*d),
            _ => None,
        }
    }
}

/// A sort key: a metric or a grouping, ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// By a metric's value.
    Metric(usize),
    /// By a grouping's value.
    Group(usize),
}

/// A checked, resolved query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The site.
    pub site: String,
    /// Metrics, in answer order.
    pub metrics: Vec<Metric>,
    /// Groupings, in answer order.
    pub groupings: Vec<Grouping>,
    /// Filters, combined with AND.
    pub filters: Vec<FilterExpr>,
    /// Buckets `from..to` (local hours).
    pub buckets: std::ops::Range<Bucket>,
    /// For a range of date-times that are not whole hours: its first and last second (Unix
    /// seconds, both included), within `buckets`; only the segments answer it.
    pub seconds: Option<(i64, i64)>,
    /// Sort keys with `true` for descending.
    pub order: Vec<(SortKey, bool)>,
    /// Rows to return.
    pub limit: usize,
    /// Rows to skip.
    pub offset: usize,
    /// What the answer includes besides its rows.
    pub include: Include,
    /// The site's goals, as the query saw them (set by the handler; part of the cache key).
    pub goals: Vec<crate::registry::Goal>,
}

/// `include`: what an answer carries besides its rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Include {
    /// `comparisons`: the period each row is compared with.
    pub comparison: Option<super::comparison::Comparison>,
    /// `meta.time_labels`: every period of the time dimension in the range.
    pub time_labels: bool,
    /// `meta.total_rows`: how many rows there are before pagination.
    pub total_rows: bool,
    /// `meta.imports_included` (always false: Tally imports into the same store).
    pub imports: bool,
}

/// Most labels `include.time_labels` lists.
pub const MAX_TIME_LABELS: usize = 100_000;

fn parse_include(
    include: Option<&Value>,
    groupings: &[Grouping],
    buckets: &std::ops::Range<Bucket>,
    zone: &TimeZone,
    now: Timestamp,
) -> Result<Include, QueryError> {
    let Some(include) = include else { return Ok(Include::default()) };
    let Value::Object(map) = include else {
        return invalid(format!("include is an object such as {{\"time_labels\": true}}; got {include}"));
    };
    let mut out = Include::default();
    for (key, value) in map {
        if key == "comparisons" {
            if !value.is_null() {
                out.comparison = Some(super::comparison::parse(value, buckets, zone, now)?);
            }
            continue;
        }
        let Value::Bool(on) = value else {
            return invalid(format!("include.{key} is true or false; got {value}"));
        };
        match key.as_str() {
            "time_labels" => out.time_labels = *on,
            "total_rows" => out.total_rows = *on,
            "imports" => out.imports = *on,
            other => {
                return invalid(format!(
                    "unknown include `{other}`: use time_labels, total_rows, imports or comparisons"
                ));
            }
        }
    }
    if out.time_labels && !groupings.iter().any(Grouping::is_time) {
        return invalid(
            "include.time_labels needs a time dimension (time, time:hour, time:day, time:week, time:month)",
        );
    }
    Ok(out)
}

/// The request is not a query this API answers; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn invalid<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(message.into()))
}

impl Query {
    /// Checks a request for a site in `zone` at time `now`.
    pub fn resolve(request: &QueryRequest, zone: &TimeZone, now: Timestamp) -> Result<Query, QueryError> {
        let metrics = request.metrics.iter().map(|m| Metric::parse(m).ok_or(m)).collect::<Result<Vec<_>, _>>();
        let metrics = metrics.or_else(|m| {
            let hint = did_you_mean(m, Metric::ALL.iter().map(|(_, n)| *n));
            invalid(format!("unknown metric `{m}`{hint}"))
        })?;
        if metrics.is_empty() {
            return invalid("metrics must name at least one metric");
        }
        check_counts(request)?;
        let buckets = super::date_range::buckets(&request.date_range, zone, now)?;
        let seconds = super::date_range::seconds(&request.date_range, zone)?;
        let groupings = request
            .dimensions
            .iter()
            .map(|d| if d == "time" { Ok(auto_time(&buckets)) } else { parse_grouping(d) })
            .collect::<Result<Vec<_>, _>>()?;
        if groupings.iter().filter(|g| g.is_time()).count() > 1 {
            return invalid("at most one time dimension (time, time:hour, time:day, time:week or time:month)");
        }
        let filters = parse_filters(&request.filters)?;
        let leaves: Vec<&Filter> = filters.iter().flat_map(FilterExpr::leaves).collect();
        check_exit_dimensions(&metrics, &groupings, &leaves)?;
        let by_goal = groupings.contains(&Grouping::Goal) || leaves.iter().any(|f| f.field == Field::Goal);
        if let Some(m) = metrics.iter().find(|m| matches!(m, Metric::ConversionRate | Metric::GroupConversionRate))
            && !by_goal
        {
            return invalid(format!("{} needs the event:goal dimension or an event:goal filter", m.name()));
        }
        check_session_metrics(&metrics, &groupings, &leaves)?;
        check_engagement_metrics(&metrics, &groupings, &leaves)?;
        let order = parse_order(request.order_by.as_deref(), &request.metrics, &request.dimensions, &groupings)?;
        let include = parse_include(request.include.as_ref(), &groupings, &buckets, zone, now)?;
        let page = request.pagination.unwrap_or(Pagination { limit: MAX_LIMIT, offset: 0 });
        if page.limit == 0 || page.limit > MAX_LIMIT {
            return invalid(format!("pagination.limit must be between 1 and {MAX_LIMIT}"));
        }
        if page.offset > MAX_OFFSET {
            return invalid(format!("pagination.offset must be at most {MAX_OFFSET}"));
        }
        let query = Query {
            site: request.site_id.clone(),
            metrics,
            groupings,
            filters,
            buckets,
            seconds,
            order,
            limit: page.limit,
            offset: page.offset,
            include,
            goals: Vec::new(),
        };
        if query.seconds.is_some() {
            // What a range to the second cannot be asked with: the exit pages are in the rollups
            // alone, which keep hours; a comparison's period would have to be as exact.
            if query.exit_grouping().is_some() || query.metrics.contains(&Metric::ExitRate) {
                return invalid(
                    "exit pages and exit_rate are counted by the hour: give a date_range of whole hours or dates",
                );
            }
            if query.include.comparison.is_some() {
                return invalid("include.comparisons needs a date_range of whole hours or dates");
            }
        }
        let labels = super::exec::time_label_count(&query);
        if query.include.time_labels && labels > MAX_TIME_LABELS {
            return invalid(format!(
                "include.time_labels would list {labels} periods; at most {MAX_TIME_LABELS}: use a longer period or a shorter range"
            ));
        }
        Ok(query)
    }

    /// The exit dimension it groups by, if any (only the rollups hold exit pages).
    pub fn exit_grouping(&self) -> Option<Dimension> {
        self.groupings.iter().find_map(|g| match g {
            Grouping::Dim(d) if d.is_exit() => Some(*d),
            _ => None,
        })
    }

    /// The custom prop it groups by, if any.
    pub fn prop_grouping(&self) -> Option<&str> {
        self.groupings.iter().find_map(|g| if let Grouping::Prop(n) = g { Some(n.as_str()) } else { None })
    }

    /// Whether it asks `scroll_depth` or `time_on_page`.
    pub fn asks_engagement(&self) -> bool {
        self.metrics.iter().any(|m| m.is_engagement())
    }

    /// Whether it groups or filters by a custom prop.
    pub fn reads_props(&self) -> bool {
        self.prop_grouping().is_some()
            || self.filters.iter().flat_map(FilterExpr::leaves).any(|f| matches!(f.field, Field::Prop(_)))
    }

    /// The first and last local day (days since 1970-01-01) the query reads, its comparison
    /// period included.
    pub fn days_read(&self) -> (i64, i64) {
        let mut ranges = vec![&self.buckets];
        ranges.extend(self.include.comparison.as_ref().map(|c| &c.buckets));
        let first = ranges.iter().map(|r| r.start.div_euclid(24)).min().unwrap_or(0);
        let last = ranges.iter().map(|r| (r.end - 1).div_euclid(24)).max().unwrap_or(0);
        (first, last)
    }

    /// The first and last day the query covers, as ISO dates.
    pub fn dates(&self) -> (String, String) {
        let first = bucket_start(self.buckets.start).date();
        let last = bucket_start(self.buckets.end - 1).date();
        (first.to_string(), last.to_string())
    }
}

/// The exit page and its hostname live in the per-dimension rollups only, as visit rows: they
/// answer visit metrics, unfiltered, one dimension at a time.
fn check_exit_dimensions(metrics: &[Metric], groupings: &[Grouping], filters: &[&Filter]) -> Result<(), QueryError> {
    if let Some(f) = filters.iter().find(|f| matches!(f.field, Field::Dim(d) if d.is_exit())) {
        return invalid(format!("filtering by `{}` is not supported yet; group by it instead", f.field.name()));
    }
    let exit = groupings.iter().find_map(|g| match g {
        Grouping::Dim(d) if d.is_exit() => Some(*d),
        _ => None,
    });
    if metrics.contains(&Metric::ExitRate) && exit != Some(Dimension::ExitPage) {
        return invalid("metric `exit_rate` needs the `visit:exit_page` dimension");
    }
    let Some(exit) = exit else {
        return Ok(());
    };
    let name = exit.name();
    if groupings.iter().filter(|g| g.is_field()).count() > 1 {
        return invalid(format!("`{name}` cannot be combined with another dimension yet"));
    }
    if groupings.iter().filter(|g| !g.is_field()).count() > 1 {
        return invalid(format!("`{name}` can be grouped by one of `time:day` and `time:hour`, not both"));
    }
    if !filters.is_empty() {
        return invalid(format!("`{name}` answers unfiltered queries only, for now"));
    }
    if let Some(m) = metrics.iter().find(|m| matches!(m, Metric::Pageviews | Metric::Events) || m.is_revenue()) {
        let m = m.name();
        return invalid(format!(
            "`{name}` answers visit metrics (visitors, visits, bounce_rate, visit_duration, views_per_visit, exit_rate), not `{m}`"
        ));
    }
    Ok(())
}

/// Custom props are event rows: they answer event metrics (visitors, events, pageviews, revenue).
/// The metric and dimension combinations Plausible refuses, refused alike: the session metrics
/// (`bounce_rate`, `visit_duration`, `views_per_visit`) with an event dimension other than
/// `event:page` (a name, hostname, goal or prop has no visit of its own to describe), and
/// `views_per_visit` filtered by `event:page`.
fn check_session_metrics(metrics: &[Metric], groupings: &[Grouping], filters: &[&Filter]) -> Result<(), QueryError> {
    let session: Vec<&str> = metrics
        .iter()
        .filter(|m| matches!(m, Metric::BounceRate | Metric::VisitDuration | Metric::ViewsPerVisit))
        .map(|m| m.name())
        .collect();
    let event_dimension = groupings.iter().any(|g| match g {
        Grouping::Goal | Grouping::Prop(_) => true,
        Grouping::Dim(d) => d.is_event_own() && *d != Dimension::Page,
        _ => false,
    });
    if !session.is_empty() && event_dimension {
        return invalid(format!(
            "session metric(s) `{}` cannot be queried along with event dimensions (event:name, event:hostname, \
             event:goal, event:props:*); event:page and visit dimensions can",
            session.join("`, `")
        ));
    }
    if metrics.contains(&Metric::ViewsPerVisit) && filters.iter().any(|f| f.field == Field::Dim(Dimension::Page)) {
        return invalid("metric `views_per_visit` cannot be queried with a filter on `event:page`");
    }
    Ok(())
}

/// `scroll_depth` and `time_on_page` are measured per page: as in Plausible, they need the
/// `event:page` dimension or a filter on it.
fn check_engagement_metrics(metrics: &[Metric], groupings: &[Grouping], filters: &[&Filter]) -> Result<(), QueryError> {
    let Some(metric) = metrics.iter().find(|m| m.is_engagement()) else {
        return Ok(());
    };
    let by_page = groupings.contains(&Grouping::Dim(Dimension::Page))
        || filters.iter().any(|f| f.field == Field::Dim(Dimension::Page));
    if by_page {
        Ok(())
    } else {
        invalid(format!("metric `{}` needs the `event:page` dimension or a filter on `event:page`", metric.name()))
    }
}

/// The limits on how much a request asks ([`super::limits`]), before anything is parsed.
fn check_counts(request: &QueryRequest) -> Result<(), QueryError> {
    let twice =
        |names: &[String]| names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)).map(|(_, n)| n.clone());
    if request.metrics.len() > MAX_METRICS {
        return invalid(format!("at most {MAX_METRICS} metrics; got {}", request.metrics.len()));
    }
    if let Some(metric) = twice(&request.metrics) {
        return invalid(format!("metric `{metric}` is given twice"));
    }
    if request.dimensions.len() > MAX_DIMENSIONS {
        return invalid(format!("at most {MAX_DIMENSIONS} dimensions; got {}", request.dimensions.len()));
    }
    if let Some(dimension) = twice(&request.dimensions) {
        return invalid(format!("dimension `{dimension}` is given twice"));
    }
    if request.filters.len() > MAX_FILTERS {
        return invalid(format!("at most {MAX_FILTERS} filters; got {}", request.filters.len()));
    }
    if let Some(order) = &request.order_by
        && order.len() > request.metrics.len() + request.dimensions.len()
    {
        return invalid("order_by names more keys than the query has metrics and dimensions");
    }
    Ok(())
}

/// What `time` stands for, as Plausible picks it from the range's length (its first to its last
/// second): hours up to 48 hours, days up to 40 days, weeks up to 52 weeks, else months.
fn auto_time(buckets: &std::ops::Range<Bucket>) -> Grouping {
    let seconds = (buckets.end - buckets.start) * 3_600 - 1;
    if seconds / 3_600 <= 48 {
        Grouping::Hour
    } else if seconds / 86_400 <= 40 {
        Grouping::Day
    } else if seconds / (7 * 86_400) <= 52 {
        Grouping::Week
    } else {
        Grouping::Month
    }
}

fn parse_grouping(name: &str) -> Result<Grouping, QueryError> {
    match name {
        "time:hour" => Ok(Grouping::Hour),
        "time:day" => Ok(Grouping::Day),
        "time:week" => Ok(Grouping::Week),
        "time:month" => Ok(Grouping::Month),
        "time:minute" => invalid("`time:minute` needs minute buckets, which Tally does not keep yet; use time:hour"),
        "event:goal" => Ok(Grouping::Goal),
        _ => {
            if let Some(prop) = prop_name(name)? {
                return Ok(Grouping::Prop(prop));
            }
            if let Some(dimension) = super::place_names::parse(name) {
                return Ok(Grouping::Name(dimension));
            }
            Dimension::parse(name).map(Grouping::Dim).map_or_else(
                || {
                    let times = ["time", "time:hour", "time:day", "time:week", "time:month"];
                    let named: Vec<String> = super::place_names::NAMED.map(super::place_names::api_name).into();
                    let known =
                        Dimension::ALL.iter().map(|(_, n)| *n).chain(times).chain(named.iter().map(String::as_str));
                    let hint = did_you_mean(name, known);
                    invalid(format!("unknown dimension `{name}`{hint}"))
                },
                Ok,
            )
        }
    }
}

fn parse_order(
    order_by: Option<&[(String, String)]>,
    metrics: &[String],
    dimensions: &[String],
    groupings: &[Grouping],
) -> Result<Vec<(SortKey, bool)>, QueryError> {
    let Some(order_by) = order_by else {
        // Plausible's default: time ascending if grouped by time, then the first metric descending.
        let time = groupings.iter().position(Grouping::is_time).map(|i| (SortKey::Group(i), false));
        return Ok(time.into_iter().chain([(SortKey::Metric(0), true)]).collect());
    };
    order_by
        .iter()
        .map(|(name, direction)| {
            let descending = match direction.as_str() {
                "asc" => false,
                "desc" => true,
                other => {
                    return invalid(format!("order direction must be asc or desc, not `{other}`"));
                }
            };
            let key = if let Some(i) = metrics.iter().position(|m| m == name) {
                SortKey::Metric(i)
            } else if let Some(i) = dimensions.iter().position(|d| d == name) {
                SortKey::Group(i)
            } else {
                let hint = did_you_mean(name, metrics.iter().chain(dimensions).map(String::as_str));
                return invalid(format!(
                    "cannot order by `{name}`: it is not among the query's metrics or dimensions{hint}"
                ));
            };
            Ok((key, descending))
        })
        .collect()
}

/// The first and last local date of a date range.
#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> QueryRequest {
        serde_json::from_str(json).expect("request json")
    }

    fn resolve(json: &str) -> Result<Query, QueryError> {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().expect("ts");
        Query::resolve(&request(json), &TimeZone::UTC, now)
    }

    #[test]
    fn presets_cover_whole_local_days_ending_yesterday() {
        let q = resolve(r#"{"site_id":"a.com","metrics":["visitors"],"date_range":"7d"}"#).expect("valid");
        assert_eq!(q.dates(), ("2026-11-21".to_owned(), "2026-11-27".to_owned()));
        assert_eq!(q.buckets.end - q.buckets.start, 7 * 24);
    }

    #[test]
    fn explicit_dates_and_errors() {
        let q = resolve(r#"{"site_id":"a.com","metrics":["pageviews"],"date_range":["2026-01-01","2026-01-31"]}"#);
        assert_eq!(q.expect("valid").dates(), ("2026-01-01".to_owned(), "2026-01-31".to_owned()));
        let bad = [
            r#"{"site_id":"a.com","metrics":["nope"],"date_range":"day"}"#,
            r#"{"site_id":"a.com","metrics":[],"date_range":"day"}"#,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"1y"}"#,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":["2026-02-01","2026-01-01"]}"#,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","dimensions":["event:nope"]}"#,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","filters":[["like","event:page",["/"]]]}"#,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","order_by":[["pageviews","desc"]]}"#,
            r#"{"site_id":"a.com","metrics":["pageviews"],"date_range":"day","dimensions":["visit:exit_page"]}"#,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","dimensions":["visit:exit_page","event:page"]}"#,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","filters":[["is","visit:exit_page",["/"]]]}"#,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","dimensions":["visit:exit_page","time:day","time:hour"]}"#,
            r#"{"site_id":"a.com","metrics":["bounce_rate"],"date_range":"day","dimensions":["event:props:plan"]}"#,
            r#"{"site_id":"a.com","metrics":["visit_duration"],"date_range":"day","dimensions":["event:name"]}"#,
            r#"{"site_id":"a.com","metrics":["views_per_visit"],"date_range":"day","filters":[["is","event:page",["/"]]]}"#,
            r#"{"site_id":"a.com","metrics":["visitors"],"date_range":"day","dimensions":["event:props:"]}"#,
            r#"{"site_id":"a.com","metrics":["visitors"],"date_range":"day","dimensions":["event:props:*"]}"#,
            r#"{"site_id":"a.com","metrics":["visitors"],"date_range":"day","filters":[["is","event:props:*",["x"]]]}"#,
        ];
        for json in bad {
            assert!(resolve(json).is_err(), "{json}");
        }
    }

    #[test]
    fn misspelt_names_get_a_suggestion() {
        let error = |json: &str| resolve(json).expect_err("refused").0;
        let metric = error(r#"{"site_id":"a.com","metrics":["vistors"],"date_range":"day"}"#);
        assert!(metric.contains("unknown metric `vistors`; did you mean `visitors`?"), "{metric}");
        let dimension =
            error(r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","dimensions":["visit:contry"]}"#);
        assert!(dimension.contains("did you mean `visit:country`?"), "{dimension}");
        let filter = error(
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","filters":[["contain","event:page",["/"]]]}"#,
        );
        assert!(filter.contains("did you mean `contains`?"), "{filter}");
        let range = error(r#"{"site_id":"a.com","metrics":["visits"],"date_range":"mnth"}"#);
        assert!(range.contains("did you mean `month`?"), "{range}");
    }

    #[test]
    fn time_picks_its_period_from_the_range_as_plausible_does() {
        let time = |range: &str| {
            let json =
                format!(r#"{{"site_id":"a.com","metrics":["visits"],"date_range":{range},"dimensions":["time"]}}"#);
            resolve(&json).expect("valid").groupings[0].clone()
        };
        assert_eq!(time(r#""day""#), Grouping::Hour);
        assert_eq!(time(r#"["2026-01-01","2026-01-02"]"#), Grouping::Hour, "48 hours");
        assert_eq!(time(r#"["2026-01-01","2026-01-03"]"#), Grouping::Day);
        assert_eq!(time(r#"["2026-01-01","2026-02-10"]"#), Grouping::Day, "41 days: 40 days and a bit");
        assert_eq!(time(r#"["2026-01-01","2026-02-11"]"#), Grouping::Week);
        assert_eq!(time(r#""year""#), Grouping::Week, "52 weeks and a day");
        assert_eq!(time(r#"["2025-01-01","2026-01-07"]"#), Grouping::Month);
        let two = r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","dimensions":["time:day","time"]}"#;
        assert!(resolve(two).is_err(), "one time dimension at most");
    }

    #[test]
    fn default_order_is_time_then_first_metric() {
        let q = resolve(
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","dimensions":["event:page","time:hour"]}"#,
        );
        assert_eq!(q.expect("valid").order, vec![(SortKey::Group(1), false), (SortKey::Metric(0), true)]);
        let q = resolve(r#"{"site_id":"a.com","metrics":["visits"],"date_range":"day","dimensions":["event:page"]}"#);
        assert_eq!(q.expect("valid").order, vec![(SortKey::Metric(0), true)]);
    }
}
