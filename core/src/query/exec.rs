//! Executes a [`Query`]: one scan over the site's cells in the range, grouped and filtered,
//! then, if `visitors` is asked for, one scan over the visitors of the matching cells.

use super::request::{Grouping, Metric, Query, SortKey};
use crate::store::Store;
use crate::timebucket::bucket_start;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use tally_model::rollup::{Bucket, CellKey, Counters};

/// One answer row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Metric values, in the query's order.
    pub metrics: Vec<Value>,
    /// Dimension values, in the query's order.
    pub dimensions: Vec<String>,
}

#[derive(Default)]
struct Group {
    counters: Counters,
    visitors: HashSet<u64>,
}

/// Runs a query against the store.
pub fn execute(store: &Store, query: &Query) -> anyhow::Result<Vec<Row>> {
    let wants_visitors = query.metrics.contains(&Metric::Visitors);
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut groups: Vec<(Vec<String>, Group)> = Vec::new();
    let mut cell_group: HashMap<(Bucket, u64), usize> = HashMap::new();
    store.scan_cells(&query.site, query.buckets.clone(), |bucket, id, key, counters| {
        if !query.filters.iter().all(|f| f.passes(f.dimension.value(key))) {
            return;
        }
        let group_key = group_values(&query.groupings, bucket, key);
        let next = groups.len();
        let at = *index.entry(group_key.clone()).or_insert(next);
        if at == next {
            groups.push((group_key, Group::default()));
        }
        groups[at].1.counters.add(counters);
        if wants_visitors {
            cell_group.insert((bucket, id), at);
        }
    })?;
    if wants_visitors && !cell_group.is_empty() {
        store.scan_visitors(&query.site, query.buckets.clone(), |bucket, id, visitor| {
            if let Some(&at) = cell_group.get(&(bucket, id)) {
                groups[at].1.visitors.insert(visitor);
            }
        })?;
    }
    if groups.is_empty() && query.groupings.is_empty() {
        groups.push((Vec::new(), Group::default()));
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(dimensions, group)| Row {
            metrics: query.metrics.iter().map(|m| metric(*m, &group)).collect(),
            dimensions,
        })
        .collect();
    rows.sort_by(|a, b| compare(query, a, b));
    Ok(rows.into_iter().skip(query.offset).take(query.limit).collect())
}

fn group_values(groupings: &[Grouping], bucket: Bucket, key: &CellKey) -> Vec<String> {
    groupings
        .iter()
        .map(|g| match g {
            Grouping::Hour => bucket_start(bucket).strftime("%Y-%m-%d %H:00:00").to_string(),
            Grouping::Day => bucket_start(bucket).date().to_string(),
            Grouping::Dim(d) => d.value(key).to_owned(),
        })
        .collect()
}

fn metric(metric: Metric, group: &Group) -> Value {
    let c = &group.counters;
    let per_visit = |n: i64| {
        if c.visits > 0 { n as f64 / c.visits as f64 } else { 0.0 }
    };
    match metric {
        Metric::Visitors => json!(group.visitors.len()),
        Metric::Visits => json!(c.visits),
        Metric::Pageviews => json!(c.pageviews),
        Metric::Events => json!(c.events),
        Metric::BounceRate => json!((per_visit(c.bounces) * 100.0).round() as i64),
        Metric::VisitDuration => json!((per_visit(c.duration_ms) / 1000.0).round() as i64),
        Metric::ViewsPerVisit => json!((per_visit(c.visit_pageviews) * 100.0).round() / 100.0),
    }
}

fn compare(query: &Query, a: &Row, b: &Row) -> Ordering {
    for &(key, descending) in &query.order {
        let ordering = match key {
            SortKey::Metric(i) => {
                let (x, y) = (a.metrics[i].as_f64().unwrap_or(0.0), b.metrics[i].as_f64().unwrap_or(0.0));
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
