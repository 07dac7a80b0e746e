//! The `percentage` metric: a group's visitors as a share of all visitors of the same range and
//! filters. The executors answer it with the group's visitors; this asks the store once more for
//! the total (one row, no dimensions) and divides, rounding to one decimal as Plausible does.

use super::exec::Row;
use super::filter::FilterExpr;
use super::limits::WorkBudget;
use super::request::{Grouping, Include, Metric, Query, SortKey};
use super::{StatsSource, Tier};
use serde_json::json;
use std::collections::HashMap;

/// Answers `query` from `stats` within `budget`, with its `percentage` columns as shares (and
/// its `exit_rate` columns divided, [`super::exit_rate`]).
pub async fn answer(stats: &dyn StatsSource, query: Query, budget: WorkBudget) -> anyhow::Result<(Tier, Vec<Row>)> {
    let columns = columns_of(&query, Metric::Percentage);
    let total = if columns.is_empty() {
        0
    } else {
        let totals = counts_by(stats, &query, Metric::Visitors, Vec::new(), query.filters.clone(), budget).await?;
        totals.get(&Vec::new()).copied().unwrap_or(0)
    };
    // The exit rates need the query after its answer; only then is it kept.
    let exits = query.metrics.contains(&Metric::ExitRate).then(|| query.clone());
    let (tier, mut rows) = stats.answer(query, budget).await?;
    to_shares(&mut rows, &columns, 1, |_| total);
    if let Some(query) = exits {
        super::exit_rate::divide(stats, &query, &mut rows, budget).await?;
    }
    Ok((tier, rows))
}

/// The positions of `metric` among the query's metrics.
pub fn columns_of(query: &Query, metric: Metric) -> Vec<usize> {
    query.metrics.iter().enumerate().filter(|(_, m)| **m == metric).map(|(i, _)| i).collect()
}

/// A count `metric` (visitors, page views) of `query`'s range under `filters`, per group of
/// `groupings` (the groups' labels; one group with no labels without groupings): the
/// denominators of the share metrics.
pub async fn counts_by(
    stats: &dyn StatsSource,
    query: &Query,
    metric: Metric,
    groupings: Vec<Grouping>,
    filters: Vec<FilterExpr>,
    budget: WorkBudget,
) -> anyhow::Result<HashMap<Vec<String>, u64>> {
    let totals = Query {
        metrics: vec![metric],
        groupings,
        filters,
        order: vec![(SortKey::Metric(0), true)],
        limit: usize::MAX,
        offset: 0,
        include: Include::default(),
        ..query.clone()
    };
    let (_, rows) = stats.answer(totals, budget).await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.dimensions, r.metrics.first().and_then(serde_json::Value::as_u64).unwrap_or(0)))
        .collect())
}

/// Turns the visitors in `columns` of each row into a percentage of `total(row)`, rounded to
/// `decimals` (0 where the total is 0).
pub fn to_shares(rows: &mut [Row], columns: &[usize], decimals: i32, total: impl Fn(&Row) -> u64) {
    let scale = 10f64.powi(decimals);
    for row in rows {
        let total = total(row);
        for &i in columns {
            let part = row.metrics[i].as_u64().unwrap_or(0);
            let share = if total == 0 { 0.0 } else { (part as f64 * 100.0 * scale / total as f64).round() / scale };
            row.metrics[i] = json!(share);
        }
    }
}
