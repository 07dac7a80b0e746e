//! Executes a [`Query`] over cells loaded from the DynamoDB store (which keeps cells until its
//! own rollups replace them): one pass over the cells of the range, grouped and filtered, then,
//! if `visitors` is asked for, their visitor sketches. [`finish`] (metrics, order, page) is
//! shared by every tier.

use super::request::{Field, Grouping, Metric, NO_PROP, Query, SortKey};
use crate::pipeline::timebucket::bucket_start;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Range;
use tally_model::money::{MICROS, RevenueSums};
use tally_model::rollup::{Bucket, CellKey, Counters};

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
}

/// One answer row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Metric values, in the query's order.
    pub metrics: Vec<Value>,
    /// Dimension values, in the query's order.
    pub dimensions: Vec<String>,
}

/// Where a query reads cells from (cells loaded from DynamoDB).
pub trait CellSource {
    /// Calls `visit` for every cell of `site` in `buckets` (bucket, cell id, key, counters).
    fn cells(
        &self,
        site: &str,
        buckets: Range<Bucket>,
        visit: &mut dyn FnMut(Bucket, u64, &CellKey, &Counters),
    ) -> anyhow::Result<()>;
    /// The distinct visitors of each of `groups` groups, where `cell_group` maps every matching
    /// (bucket, cell id) to its group.
    fn distinct_visitors(
        &self,
        site: &str,
        buckets: Range<Bucket>,
        cell_group: &HashMap<(Bucket, u64), usize>,
        groups: usize,
    ) -> anyhow::Result<Vec<u64>>;
}

/// Cells already loaded (from DynamoDB), merged over lineages, with a distinct-visitor sketch
/// per bucket (not per cell: visitors can be grouped by time only).
#[derive(Debug, Default)]
pub struct LoadedCells {
    /// (bucket, cell id) → (key, counters).
    pub cells: std::collections::BTreeMap<(Bucket, u64), (CellKey, Counters)>,
    /// Bucket → the union of its visitor sketches over lineages.
    pub visitors: std::collections::BTreeMap<Bucket, datasketches::hll::HllUnion>,
}

impl CellSource for LoadedCells {
    fn cells(
        &self,
        _site: &str,
        buckets: Range<Bucket>,
        visit: &mut dyn FnMut(Bucket, u64, &CellKey, &Counters),
    ) -> anyhow::Result<()> {
        for ((bucket, id), (key, counters)) in self.cells.range((buckets.start, 0)..(buckets.end, 0)) {
            visit(*bucket, *id, key, counters);
        }
        Ok(())
    }

    fn distinct_visitors(
        &self,
        _site: &str,
        _buckets: Range<Bucket>,
        cell_group: &HashMap<(Bucket, u64), usize>,
        groups: usize,
    ) -> anyhow::Result<Vec<u64>> {
        let mut bucket_group: HashMap<Bucket, usize> = HashMap::new();
        for (&(bucket, _), &group) in cell_group {
            if *bucket_group.entry(bucket).or_insert(group) != group {
                anyhow::bail!("visitors are stored per hour: they can be grouped by time only");
            }
        }
        let mut unions: Vec<Option<datasketches::hll::HllUnion>> = (0..groups).map(|_| None).collect();
        for (bucket, group) in bucket_group {
            let Some(sketch) = self.visitors.get(&bucket) else { continue };
            let union = unions[group]
                .get_or_insert_with(|| datasketches::hll::HllUnion::new(sketch.lg_max_k()).expect("valid lg_k"));
            union.update(&sketch.to_sketch(datasketches::hll::HllType::Hll8));
        }
        Ok(unions.iter().map(|u| u.as_ref().map_or(0, |u| u.estimate().round() as u64)).collect())
    }
}

/// Runs a query against a cell source.
pub fn execute(store: &dyn CellSource, query: &Query) -> anyhow::Result<Vec<Row>> {
    let wants_visitors = query.metrics.contains(&Metric::Visitors);
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut groups: Vec<(Vec<String>, Counters)> = Vec::new();
    let mut cell_group: HashMap<(Bucket, u64), usize> = HashMap::new();
    store.cells(&query.site, query.buckets.clone(), &mut |bucket, id, key, counters| {
        // Cells hold no props: `tally query` refuses prop queries before they get here.
        let value = |f: &Field| match f {
            Field::Dim(d) => d.value(key),
            Field::Prop(_) => NO_PROP,
        };
        if !query.filters.iter().all(|f| f.passes(value(&f.field))) {
            return;
        }
        let group_key = group_values(&query.groupings, bucket, key);
        let next = groups.len();
        let at = *index.entry(group_key.clone()).or_insert(next);
        if at == next {
            groups.push((group_key, Counters::default()));
        }
        groups[at].1.add(counters);
        if wants_visitors {
            cell_group.insert((bucket, id), at);
        }
    })?;
    let visitors = if wants_visitors && !cell_group.is_empty() {
        store.distinct_visitors(&query.site, query.buckets.clone(), &cell_group, groups.len())?
    } else {
        vec![0; groups.len()]
    };
    let groups = groups
        .into_iter()
        .zip(visitors)
        .map(|((labels, counters), visitors)| Group { labels, counters, visitors, revenue: RevenueSums::default() })
        .collect();
    Ok(finish(query, groups))
}

/// Turns groups into the answer's rows: metrics, the query's order, its page. Without groupings
/// there is always one row.
pub fn finish(query: &Query, mut groups: Vec<Group>) -> Vec<Row> {
    if groups.is_empty() && query.groupings.is_empty() {
        groups.push(Group::default());
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|group| Row {
            metrics: query.metrics.iter().map(|m| metric(*m, &group)).collect(),
            dimensions: group.labels,
        })
        .collect();
    rows.sort_by(|a, b| compare(query, a, b));
    rows.into_iter().skip(query.offset).take(query.limit).collect()
}

/// The label of an hour bucket, as `time:hour` shows it.
pub fn hour_label(bucket: Bucket) -> String {
    bucket_start(bucket).strftime("%Y-%m-%d %H:00:00").to_string()
}

/// The label of the day a bucket is in, as `time:day` shows it.
pub fn day_label(bucket: Bucket) -> String {
    bucket_start(bucket).date().to_string()
}

fn group_values(groupings: &[Grouping], bucket: Bucket, key: &CellKey) -> Vec<String> {
    groupings
        .iter()
        .map(|g| match g {
            Grouping::Hour => hour_label(bucket),
            Grouping::Day => day_label(bucket),
            Grouping::Dim(d) => d.value(key).to_owned(),
            Grouping::Prop(_) => String::new(),
        })
        .collect()
}

fn metric(metric: Metric, group: &Group) -> Value {
    let (c, visitors) = (&group.counters, group.visitors);
    let per_visit = |n: i64| {
        if c.visits > 0 { n as f64 / c.visits as f64 } else { 0.0 }
    };
    match metric {
        Metric::Visitors => json!(visitors),
        Metric::Visits => json!(c.visits),
        Metric::Pageviews => json!(c.pageviews),
        Metric::Events => json!(c.events),
        Metric::BounceRate => json!((per_visit(c.bounces) * 100.0).round() as i64),
        Metric::VisitDuration => json!((per_visit(c.duration_ms) / 1000.0).round() as i64),
        Metric::ViewsPerVisit => json!((per_visit(c.visit_pageviews) * 100.0).round() / 100.0),
        Metric::TotalRevenue => revenue(&group.revenue, false),
        Metric::AverageRevenue => revenue(&group.revenue, true),
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

fn compare(query: &Query, a: &Row, b: &Row) -> Ordering {
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
