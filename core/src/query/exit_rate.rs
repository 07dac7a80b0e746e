//! The `exit_rate` metric, as Plausible defines it: grouped by `visit:exit_page`, the visits that
//! left from a page as a share of that page's page views in the same range (and time period),
//! in percent with one decimal. The executors answer it with the exits; this asks the store for
//! the page views by `event:page` (with the same time grouping) and divides, then orders the rows
//! again, since the shares may order differently than the exits did.

use super::exec::{Row, compare};
use super::limits::WorkBudget;
use super::percentage::{columns_of, counts_by};
use super::request::{Grouping, Metric, Query};
use super::source::StatsSource;
use serde_json::{Value, json};
use tally_model::dimension::Dimension;

/// Turns the exits in the `exit_rate` columns of `rows` into shares of the pages' page views.
pub async fn divide(
    stats: &dyn StatsSource,
    query: &Query,
    rows: &mut [Row],
    budget: WorkBudget,
) -> anyhow::Result<()> {
    let columns = columns_of(query, Metric::ExitRate);
    if columns.is_empty() {
        return Ok(());
    }
    // The same question of the pages: their page views, by the same groupings.
    let groupings: Vec<Grouping> = query
        .groupings
        .iter()
        .map(|g| if *g == Grouping::Dim(Dimension::ExitPage) { Grouping::Dim(Dimension::Page) } else { g.clone() })
        .collect();
    let views = counts_by(stats, query, Metric::Pageviews, groupings, query.filters.clone(), budget).await?;
    for row in rows.iter_mut() {
        let pageviews = views.get(&row.dimensions).copied().unwrap_or(0) as f64;
        for &i in &columns {
            let exits = row.metrics[i].as_f64().unwrap_or(0.0);
            // Null where the page had no page views (a visit of custom events only).
            row.metrics[i] =
                if pageviews > 0.0 { json!((exits * 1000.0 / pageviews).round() / 10.0) } else { Value::Null };
        }
    }
    rows.sort_by(|a, b| compare(query, a, b));
    Ok(())
}
