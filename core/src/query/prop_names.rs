//! The custom prop names of a site's events over a range, among the events that pass the
//! query's filters, each with how many events carry it: what a dashboard lists before it breaks
//! one prop down by value (`event:props:NAME`). Tier 2 answers: each segment row keeps its
//! event's prop set (`tally_model::segment::PROPS`), so the count is exact.

use super::filter::Compiled;
use super::limits::WorkBudget;
use super::request::Query;
use super::segment_exec::{Within, compile_filters, event_rows, passing_all, row_events, scroll_goals};
use crate::columnar::Segment;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tally_model::rollup::Bucket;
use tally_model::segment::PROPS;

/// Most prop names one answer lists (an event has at most 30 props; a site rarely uses more
/// than a few dozen names).
pub const MAX_PROP_NAMES: usize = 1_000;

/// Prop names and the events that carry each, most events first (then by name), at most
/// [`MAX_PROP_NAMES`]; and whether more names were left out.
pub fn execute_prop_names(
    segments: &[(Arc<Segment>, Bucket, Bucket)],
    query: &Query,
    budget: &WorkBudget,
) -> anyhow::Result<(Vec<(String, u64)>, bool)> {
    let filters = compile_filters(&query.filters, segments, query.seconds, budget)?;
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    for (segment, lo, hi) in segments {
        budget.check_time()?;
        let passes = passing_all(segment, &filters)?;
        if passes.is_const(false) {
            continue;
        }
        let scroll: Vec<&Compiled> = filters.iter().flat_map(scroll_goals).collect();
        let events = row_events(segment, &scroll)?;
        let (sets, codes) = segment.dimension(PROPS)?;
        let within = Within::of(segment, query.seconds)?;
        // Events per prop set first (a set is one dictionary code), then per name.
        let mut per_set: HashMap<u32, u64> = HashMap::new();
        for row in event_rows(segment, (*lo, *hi), &events, &within, &passes)? {
            *per_set.entry(codes[row]).or_default() += u64::try_from(events[row]).unwrap_or(0);
        }
        for (code, count) in per_set {
            let Some(set) = sets.get(code as usize).filter(|set| !set.is_empty()) else { continue };
            let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(set)?;
            for name in parsed.keys() {
                match names.get_mut(name) {
                    Some(n) => *n += count,
                    None => {
                        names.insert(name.clone(), count);
                    }
                }
            }
        }
    }
    let mut listed: Vec<(String, u64)> = names.into_iter().collect();
    listed.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let more = listed.len() > MAX_PROP_NAMES;
    listed.truncate(MAX_PROP_NAMES);
    Ok((listed, more))
}

/// Lists the prop names of `query`'s range over the segments `stats` holds, within `budget`.
pub async fn list(
    stats: &dyn super::StatsSource,
    query: Query,
    budget: WorkBudget,
) -> anyhow::Result<(Vec<(String, u64)>, bool)> {
    let segments = stats.segments(&query).await?;
    budget.check_time()?;
    tokio::task::spawn_blocking(move || execute_prop_names(&segments, &query, &budget)).await?
}
