//! What every tier shares once it has its groups: [`finish`] (metrics, order, page) and the
//! time labels.

use super::request::{Grouping, Metric, Query, SortKey};
use crate::pipeline::timebucket::bucket_start;
use serde_json::{Value, json};
use std::cmp::Ordering;
use tally_model::money::{MICROS, RevenueSums};
use tally_model::rollup::{Bucket, Counters};

/// What a tier hands to [`finish`] for one group: its labels and what its metrics are made of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The group's values of the query's groupings, in their order.
    pub labels: Vec<String>,
    /// Summed counters.
    pub counters: Counters,
    /// Distinct visitors.
    pub visitors: u64,
    /// Summed revenue, per currency.
    pub revenue: RevenueSums,
    /// Distinct visits among the group's events, where the query counts visits by their events
    /// (grouped or filtered by an event's own field); else `visits` is the counters' sum.
    pub visits: Option<u64>,
    /// What the group's engagement events measured (tier 2, when the query asks for it).
    pub engagement: Engaged,
}

/// What a group's engagement events measured, per visit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Engaged {
    /// Visits with an engagement event in the group.
    pub visits: u64,
    /// Their engaged time, summed, in milliseconds.
    pub engaged_ms: i64,
    /// Visits with an engagement event that reported a scroll depth.
    pub scrolled_visits: u64,
    /// The deepest scroll of each of those visits, summed, in percent.
    pub scroll_depth_sum: i64,
}

/// One answer row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Metric values, in the query's order.
    pub metrics: Vec<Value>,
    /// Dimension values, in the query's order.
    pub dimensions: Vec<String>,
}

/// Turns groups into the answer's rows: metrics, in the query's order (every row: the handler
/// takes the page, and counts them all for `include.total_rows`). Without groupings there is
/// always one row.
pub fn finish(query: &Query, mut groups: Vec<Group>) -> Vec<Row> {
    if groups.is_empty() && query.groupings.is_empty() {
        groups.push(Group::default());
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|group| Row {
            metrics: query.metrics.iter().map(|m| metric(*m, &group)).collect(),
            dimensions: group
                .labels
                .into_iter()
                .zip(&query.groupings)
                .map(|(label, grouping)| match grouping {
                    _ if label.is_empty() => NOT_SET.to_owned(),
                    Grouping::Name(d) => super::place_names::display(*d, &label).into_owned(),
                    _ => label,
                })
                .collect(),
        })
        .collect();
    rows.sort_by(|a, b| compare(query, a, b));
    rows
}

/// The label of every period of the query's time dimension in its range, in order (for
/// `include.time_labels`); `None` without a time dimension.
pub fn time_labels(query: &Query) -> Option<Vec<String>> {
    let period = query.groupings.iter().find(|g| g.is_time())?;
    let (start, end) = (query.buckets.start, query.buckets.end);
    let (first_day, last_day) = (start.div_euclid(24), (end - 1).div_euclid(24));
    let mut labels: Vec<String> = match period {
        Grouping::Hour => (start..end).map(hour_label).collect(),
        Grouping::Day => (first_day..=last_day).map(|d| day_label(d * 24)).collect(),
        Grouping::Week => (first_day..=last_day).map(|d| week_label(d, first_day)).collect(),
        _ => (first_day..=last_day).map(month_label).collect(),
    };
    labels.dedup();
    Some(labels)
}

/// How many labels [`time_labels`] would list.
pub fn time_label_count(query: &Query) -> usize {
    let (start, end) = (query.buckets.start, query.buckets.end);
    let days = (end - 1).div_euclid(24) - start.div_euclid(24) + 1;
    let n = match query.groupings.iter().find(|g| g.is_time()) {
        Some(Grouping::Hour) => end - start,
        Some(Grouping::Day) => days,
        Some(Grouping::Week) => days / 7 + 2,
        Some(Grouping::Goal) => 0,
        Some(_) => days / 28 + 2,
        None => 0,
    };
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// How an empty dimension value is shown, as Plausible shows it; `is` and `is_not` filters
/// take it for the empty value.
pub const NOT_SET: &str = "(not set)";

/// The label of an hour bucket, as `time:hour` shows it.
pub fn hour_label(bucket: Bucket) -> String {
    bucket_start(bucket).strftime("%Y-%m-%d %H:00:00").to_string()
}

/// The label of the day a bucket is in, as `time:day` shows it.
pub fn day_label(bucket: Bucket) -> String {
    bucket_start(bucket).date().to_string()
}

/// The weekday of a day (days since 1970-01-01, a Thursday), Monday = 0.
fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

/// The Monday that starts the week of `day`.
pub fn week_start(day: i64) -> i64 {
    day - weekday(day)
}

/// The label of the week of `day`, as `time:week` shows it: its Monday, or the range's first
/// day `first` when the week began before it (as Plausible labels weeks).
pub fn week_label(day: i64, first: i64) -> String {
    day_label(week_start(day).max(first) * 24)
}

/// Months since year 0 of `day`, so that consecutive months differ by one.
pub fn month_index(day: i64) -> i64 {
    let date = bucket_start(day * 24).date();
    i64::from(date.year()) * 12 + i64::from(date.month()) - 1
}

/// The label of the month of `day`, as `time:month` shows it: its first day.
pub fn month_label(day: i64) -> String {
    bucket_start(day * 24).date().first_of_month().to_string()
}

/// The last day of `day`'s month.
pub fn month_end(day: i64) -> i64 {
    let date = bucket_start(day * 24).date();
    day + i64::from(date.days_in_month() - date.day())
}

fn metric(metric: Metric, group: &Group) -> Value {
    let (c, visitors) = (&group.counters, group.visitors);
    let per_visit = |n: i64| {
        if c.visits > 0 { n as f64 / c.visits as f64 } else { 0.0 }
    };
    match metric {
        // Percentage: the visitors, which `query::percentage` turns into a share of the total.
        Metric::Visitors | Metric::Percentage | Metric::ConversionRate | Metric::GroupConversionRate => {
            json!(visitors)
        }
        // The exits, which `query::exit_rate` turns into a share of the page's page views.
        Metric::Visits | Metric::ExitRate => json!(group.visits.map_or(c.visits, |v| v as i64)),
        Metric::Pageviews => json!(c.pageviews),
        Metric::Events => json!(c.events),
        Metric::BounceRate => json!((per_visit(c.bounces) * 100.0).round() as i64),
        Metric::VisitDuration => json!((per_visit(c.duration_ms) / 1000.0).round() as i64),
        Metric::ViewsPerVisit => json!((per_visit(c.visit_pageviews) * 100.0).round() / 100.0),
        Metric::TotalRevenue => revenue(&group.revenue, false),
        Metric::AverageRevenue => revenue(&group.revenue, true),
        // Rounded half to even, as ClickHouse rounds Plausible's floating-point quotients.
        Metric::ScrollDepth => {
            let e = &group.engagement;
            if e.scrolled_visits == 0 {
                Value::Null
            } else {
                json!((e.scroll_depth_sum as f64 / e.scrolled_visits as f64).round_ties_even() as i64)
            }
        }
        Metric::TimeOnPage => {
            let e = &group.engagement;
            if e.visits == 0 {
                Value::Null
            } else {
                json!((e.engaged_ms as f64 / 1000.0 / e.visits as f64).round_ties_even() as i64)
            }
        }
    }
}

/// A revenue metric: `null` without revenue; else `{"value", "currency", "by_currency"}` where
/// `by_currency` maps each currency to its amount, and `value` and `currency` are that amount and
/// its code when there is one currency (`null` when several: Tally converts no currency).
/// Averages are per event that carried revenue, rounded to micro-units.
fn revenue(sums: &RevenueSums, average: bool) -> Value {
    if sums.is_empty() {
        return Value::Null;
    }
    let amount = |micros: i128, events: i64| -> f64 {
        let micros = if average && events != 0 {
            let e = i128::from(events);
            // Rounded half away from zero.
            (2 * micros + micros.signum() * e) / (2 * e)
        } else {
            micros
        };
        micros as f64 / MICROS as f64
    };
    let by_currency: serde_json::Map<String, Value> =
        sums.0.iter().map(|(c, s)| (c.as_str().to_owned(), json!(amount(s.micros, s.events)))).collect();
    match sums.0.as_slice() {
        [(currency, s)] => {
            json!({ "value": amount(s.micros, s.events), "currency": currency.as_str(), "by_currency": by_currency })
        }
        _ => json!({ "value": null, "currency": null, "by_currency": by_currency }),
    }
}

/// The number a metric value sorts by: itself, or a revenue metric's `value` (0 when none).
fn sort_value(value: &Value) -> f64 {
    value.as_f64().or_else(|| value.get("value").and_then(Value::as_f64)).unwrap_or(0.0)
}

/// The order of two rows under the query's `order_by` (ties by their labels).
pub fn compare(query: &Query, a: &Row, b: &Row) -> Ordering {
    for &(key, descending) in &query.order {
        let ordering = match key {
            SortKey::Metric(i) => {
                let (x, y) = (sort_value(&a.metrics[i]), sort_value(&b.metrics[i]));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
            SortKey::Group(i) => a.dimensions[i].cmp(&b.dimensions[i]),
        };
        let ordering = if descending { ordering.reverse() } else { ordering };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.dimensions.cmp(&b.dimensions)
}
