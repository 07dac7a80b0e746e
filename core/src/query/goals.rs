//! Goals at query time: `event:goal` as a dimension or filter, and `conversion_rate`. A goal is a
//! filter over the stored events — an event goal `["is", "event:name", [name]]`, a page goal a
//! page view whose path matches its pattern (`*`: any characters but `/`; `**`: any) — so goals
//! apply to all history as soon as they are saved. Grouping by `event:goal` asks the store once
//! per goal (a row may convert several goals); `conversion_rate` divides a group's converting
//! visitors by the visitors of the range and the other filters, and `group_conversion_rate` by
//! those with the same values of the other dimensions, each asked once more.

use super::exec::{Row, compare};
use super::filter::{Field, Filter, FilterExpr, Op};
use super::limits::WorkBudget;
use super::request::{Grouping, Metric, Query, QueryError, SortKey};
use super::{StatsSource, Tier, percentage};
use crate::registry::Goal;
use tally_model::dimension::Dimension;

/// The filter that selects a goal's conversions.
pub fn goal_filter(goal: &Goal) -> FilterExpr {
    let leaf =
        |op, field, value: String| FilterExpr::Leaf(Filter { op, field, values: vec![value], case_sensitive: true });
    match goal {
        Goal::Event { event_name, .. } => leaf(Op::Is, Field::Dim(Dimension::Name), event_name.clone()),
        Goal::Page { page_path } => FilterExpr::And(vec![
            leaf(Op::Is, Field::Dim(Dimension::Name), "pageview".to_owned()),
            leaf(Op::Matches, Field::Dim(Dimension::Page), path_regex(page_path)),
        ]),
        Goal::Scroll { page_path, scroll_threshold } => FilterExpr::And(vec![
            leaf(Op::Is, Field::Dim(Dimension::Name), tally_model::event::ENGAGEMENT.to_owned()),
            leaf(Op::Matches, Field::Dim(Dimension::Page), path_regex(page_path)),
            leaf(Op::Is, Field::ScrollDepth, scroll_threshold.to_string()),
        ]),
    }
}

/// A page goal's pattern as an anchored regular expression.
fn path_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("**") {
            out.push_str(".*");
            rest = after;
        } else if let Some(after) = rest.strip_prefix('*') {
            out.push_str("[^/]*");
            rest = after;
        } else {
            let next = rest.find('*').unwrap_or(rest.len());
            out.push_str(&regex::escape(&rest[..next]));
            rest = &rest[next..];
        }
    }
    out.push('$');
    out
}

/// The goals a filter on `event:goal` names (by the goals' names, with the filter's operator
/// minus its negation).
fn goals_named<'a>(filter: &Filter, goals: &'a [Goal]) -> Result<Vec<&'a Goal>, QueryError> {
    let positive = Filter {
        op: match filter.op {
            Op::IsNot => Op::Is,
            Op::ContainsNot => Op::Contains,
            Op::MatchesNot => Op::Matches,
            other => other,
        },
        ..filter.clone()
    };
    let matcher = super::filter::Matcher::new(&positive)?;
    Ok(goals.iter().filter(|g| matcher.passes(&g.name())).collect())
}

/// `expr` with every `event:goal` comparison replaced by the filters of the goals it names.
fn expand(expr: &FilterExpr, goals: &[Goal]) -> Result<FilterExpr, QueryError> {
    Ok(match expr {
        FilterExpr::Leaf(filter) if filter.field == Field::Goal => {
            let named = goals_named(filter, goals)?;
            // No goal named: nothing converts (an empty `or`), or everything for a negation.
            let any = FilterExpr::Or(named.iter().map(|g| goal_filter(g)).collect());
            let any = if named.is_empty() { FilterExpr::Or(vec![never()]) } else { any };
            let negated = matches!(filter.op, Op::IsNot | Op::ContainsNot | Op::MatchesNot);
            if negated && let Some(scroll) = named.iter().find(|g| matches!(g, Goal::Scroll { .. })) {
                return Err(QueryError(format!(
                    "`{}` is a scroll goal: it counts engagement events, which no other filter does, so it \
                     cannot be negated; filter by is, contains or matches",
                    scroll.name()
                )));
            }
            if negated { FilterExpr::Not(Box::new(any)) } else { any }
        }
        FilterExpr::Leaf(_) => expr.clone(),
        FilterExpr::And(all) => FilterExpr::And(all.iter().map(|e| expand(e, goals)).collect::<Result<_, _>>()?),
        FilterExpr::Or(any) => FilterExpr::Or(any.iter().map(|e| expand(e, goals)).collect::<Result<_, _>>()?),
        FilterExpr::Not(inner) => FilterExpr::Not(Box::new(expand(inner, goals)?)),
        FilterExpr::HasDone { inner, negated } => {
            FilterExpr::HasDone { inner: Box::new(expand(inner, goals)?), negated: *negated }
        }
    })
}

/// `filters` with every `event:goal` comparison replaced by the filters of the `goals` it names.
pub fn expand_filters(filters: &[FilterExpr], goals: &[Goal]) -> Result<Vec<FilterExpr>, QueryError> {
    filters.iter().map(|e| expand(e, goals)).collect()
}

/// A revenue metric of a goal's row, as Plausible reports revenue by goal: a revenue goal's
/// revenue in its currency (its events' revenue in other currencies left out: Tally converts
/// none), and `null` for other goals.
fn goal_revenue(goal: &Goal, value: &serde_json::Value) -> serde_json::Value {
    let Goal::Event { currency: Some(currency), .. } = goal else { return serde_json::Value::Null };
    match value["by_currency"].get(currency.as_str()) {
        Some(amount) => {
            serde_json::json!({"value": amount, "currency": currency, "by_currency": {currency.as_str(): amount}})
        }
        None => serde_json::Value::Null,
    }
}

/// A filter no event passes.
fn never() -> FilterExpr {
    FilterExpr::Leaf(Filter {
        op: Op::Is,
        field: Field::Dim(Dimension::Name),
        values: Vec::new(),
        case_sensitive: true,
    })
}

/// Whether an expression reads goals.
fn reads_goals(expr: &FilterExpr) -> bool {
    expr.leaves().iter().any(|f| f.field == Field::Goal)
}

/// Answers `query` from `stats` within `budget`, goals expanded and `conversion_rate` divided.
pub async fn answer(stats: &dyn StatsSource, query: Query, budget: WorkBudget) -> anyhow::Result<(Tier, Vec<Row>)> {
    let grouped = query.groupings.iter().position(|g| *g == Grouping::Goal);
    let filtered = query.filters.iter().any(reads_goals);
    if grouped.is_none() && !filtered {
        return percentage::answer(stats, query, budget).await;
    }
    let filters = expand_filters(&query.filters, &query.goals)?;
    let base = Query { filters, ..query.clone() };
    let (tier, mut rows) = match grouped {
        None => percentage::answer(stats, base.clone(), budget).await?,
        Some(at) => {
            let mut groupings = base.groupings.clone();
            groupings.remove(at);
            let order: Vec<(SortKey, bool)> = base
                .order
                .iter()
                .filter(|(key, _)| *key != SortKey::Group(at))
                .map(|(key, desc)| match key {
                    SortKey::Group(i) if *i > at => (SortKey::Group(i - 1), *desc),
                    other => (*other, *desc),
                })
                .collect();
            let mut all = Vec::new();
            let mut tier = Tier::Segments;
            for goal in &query.goals {
                let mut filters = base.filters.clone();
                filters.push(goal_filter(goal));
                let one = Query { groupings: groupings.clone(), filters, order: order.clone(), ..base.clone() };
                let (t, rows) = percentage::answer(stats, one, budget).await?;
                tier = t;
                for mut row in
                    rows.into_iter().filter(|r| r.metrics.iter().any(|m| m.as_f64().is_some_and(|v| v > 0.0)))
                {
                    for (metric, value) in query.metrics.iter().zip(row.metrics.iter_mut()) {
                        if metric.is_revenue() {
                            *value = goal_revenue(goal, value);
                        }
                    }
                    row.dimensions.insert(at, goal.name());
                    all.push(row);
                }
            }
            all.sort_by(|a, b| compare(&query, a, b));
            (tier, all)
        }
    };
    // The denominators leave the goals' filters out: every visitor of the range and the rest.
    let without_goals: Vec<FilterExpr> = query.filters.iter().filter(|e| !reads_goals(e)).cloned().collect();
    let columns = percentage::columns_of(&query, Metric::ConversionRate);
    if !columns.is_empty() {
        let totals =
            percentage::counts_by(stats, &query, Metric::Visitors, Vec::new(), without_goals.clone(), budget).await?;
        let total = totals.get(&Vec::new()).copied().unwrap_or(0);
        percentage::to_shares(&mut rows, &columns, 2, |_| total);
    }
    let columns = percentage::columns_of(&query, Metric::GroupConversionRate);
    if !columns.is_empty() {
        // Per group of the other dimensions.
        let mut groupings = query.groupings.clone();
        if let Some(at) = grouped {
            groupings.remove(at);
        }
        let totals = percentage::counts_by(stats, &query, Metric::Visitors, groupings, without_goals, budget).await?;
        let other_dimensions = |row: &Row| {
            let mut key = row.dimensions.clone();
            if let Some(at) = grouped {
                key.remove(at);
            }
            key
        };
        percentage::to_shares(&mut rows, &columns, 2, |row| totals.get(&other_dimensions(row)).copied().unwrap_or(0));
    }
    Ok((tier, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_patterns_match_as_plausible_writes_them() {
        let matches =
            |pattern: &str, path: &str| regex::Regex::new(&path_regex(pattern)).expect("regex").is_match(path);
        assert!(matches("/blog/*", "/blog/hello"));
        assert!(!matches("/blog/*", "/blog/a/b"), "one segment");
        assert!(matches("/blog/**", "/blog/a/b"));
        assert!(matches("/pricing", "/pricing") && !matches("/pricing", "/pricing/x"));
        assert!(matches("/a.b", "/a.b") && !matches("/a.b", "/axb"), "literal dots");
    }
}
