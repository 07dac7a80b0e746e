//! Executes a [`Query`] that the planner gave to tier 1: one scan of one breakdown (a dimension
//! or the totals) at one grain over the range, with exact distinct visitors from the rows'
//! first-sight counters (`tally_model::breakdown::Tallies::visitors_until`).

use super::exec::{Group, Row, day_label, finish, hour_label, month_end, month_label, week_label, week_start};
use super::limits::{OverBudget, WorkBudget};
use super::request::{Grouping, Query};
use crate::embedded::store::RollupRead;
use std::collections::HashMap;
use tally_model::breakdown::{Grain, Slot, Tallies};
use tally_model::props::row_prefix;

/// Runs a query that [`super::plan::plan`] gave to the rollups.
pub fn execute_rollups(store: &dyn RollupRead, query: &Query, budget: &WorkBudget) -> anyhow::Result<Vec<Row>> {
    anyhow::ensure!(!query.groupings.contains(&Grouping::Goal), "event:goal must be expanded before the rollups");
    let grain = if query.groupings.contains(&Grouping::Hour) { Grain::Hour } else { Grain::Day };
    let slot = query.groupings.iter().find_map(|g| match g {
        Grouping::Dim(d) | Grouping::Name(d) => Some(Slot::Of(*d)),
        Grouping::Prop(_) => Some(Slot::Props),
        _ => None,
    });
    let slot = slot.unwrap_or(Slot::Total);
    // A prop's rows are the props slot's rows that start with its prefix; the rest is the value.
    let prefix = query.prop_grouping().map(row_prefix);
    // Grouped by time, each group is one period; else one group spans the whole range.
    let period = query.groupings.iter().find(|g| g.is_time()).cloned();
    let (first, last) = match grain {
        Grain::Hour => (query.buckets.start, query.buckets.end - 1),
        Grain::Day => (query.buckets.start.div_euclid(24), (query.buckets.end - 1).div_euclid(24)),
    };
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut groups: Vec<(Group, i64)> = Vec::new();
    let (mut over, mut rows, mut late) = (false, 0u64, None);
    store.rollup_rows(&query.site, grain, slot, first, last, &mut |at, value, t: &Tallies| {
        // The clock is read at the first row and every 4,096 rows after it.
        rows += 1;
        if late.is_some() || (rows % 4_096 == 1 && budget.check_time().map_err(|e| late = Some(e)).is_err()) {
            return;
        }
        let value = match &prefix {
            Some(prefix) => match value.strip_prefix(prefix.as_str()) {
                Some(rest) => rest,
                None => return,
            },
            None => value,
        };
        let key: Vec<String> = query
            .groupings
            .iter()
            .map(|g| match g {
                Grouping::Hour => hour_label(at),
                Grouping::Day => day_label(at * 24),
                Grouping::Week => week_label(at, first),
                Grouping::Month => month_label(at),
                // `event:goal` never reaches an executor: `query::goals` expands it.
                Grouping::Dim(_) | Grouping::Name(_) | Grouping::Prop(_) | Grouping::Goal => value.to_owned(),
            })
            .collect();
        let next = groups.len();
        if next >= budget.max_groups && !index.contains_key(&key) {
            over = true;
            return;
        }
        let at_group = *index.entry(key.clone()).or_insert(next);
        if at_group == next {
            groups.push((Group { labels: key, ..Group::default() }, 0));
        }
        let (group, visitors) = &mut groups[at_group];
        group.counters.add(&t.counters);
        group.revenue.merge(&t.revenue);
        // A row's share of its group's distinct visitors counts up to the group's last day.
        let until = match period {
            None => last,
            Some(Grouping::Week) => (week_start(at) + 6).min(last),
            Some(Grouping::Month) => month_end(at).min(last),
            Some(_) => at,
        };
        *visitors += t.visitors_until(at, until);
    })?;
    if let Some(late) = late {
        return Err(late.into());
    }
    if over {
        return Err(OverBudget::groups(budget.max_groups).into());
    }
    // A group whose rows net to nothing (exit rows whose visits all moved on) is no answer row.
    let groups = groups
        .into_iter()
        .filter(|(g, v)| !(g.counters.is_zero() && *v == 0 && g.revenue.is_empty()))
        .map(|(g, v)| Group { visitors: u64::try_from(v).unwrap_or(0), ..g })
        .collect();
    Ok(finish(query, groups))
}
