//! The `percentage` metric: a group's visitors as a share of all visitors of the same range and
//! filters. The executors answer it with the group's visitors; this asks the store once more for
//! the total (one row, no dimensions) and divides, rounding to one decimal as Plausible does.

use super::exec::Row;
use super::limits::WorkBudget;
use super::request::{Include, Metric, Query, SortKey};
use super::{StatsSource, Tier};
use serde_json::json;

/// Answers `query` from `stats` within `budget`, with its `percentage` columns as shares.
pub async fn answer(stats: &dyn StatsSource, query: Query, budget: WorkBudget) -> anyhow::Result<(Tier, Vec<Row>)> {
    let columns: Vec<usize> =
        query.metrics.iter().enumerate().filter(|(_, m)| **m == Metric::Percentage).map(|(i, _)| i).collect();
    if columns.is_empty() {
        return stats.answer(query, budget).await;
    }
    let total_query = Query {
        metrics: vec![Metric::Visitors],
        groupings: Vec::new(),
        order: vec![(SortKey::Metric(0), true)],
        limit: 1,
        offset: 0,
        include: Include::default(),
        ..query.clone()
    };
    let (tier, mut rows) = stats.answer(query, budget).await?;
    let (_, total) = stats.answer(total_query, budget).await?;
    let total = total.first().and_then(|row| row.metrics.first()).and_then(serde_json::Value::as_u64).unwrap_or(0);
    for row in &mut rows {
        for &i in &columns {
            let visitors = row.metrics[i].as_u64().unwrap_or(0);
            let share = if total == 0 { 0.0 } else { (visitors as f64 * 1_000.0 / total as f64).round() / 10.0 };
            row.metrics[i] = json!(share);
        }
    }
    Ok((tier, rows))
}
