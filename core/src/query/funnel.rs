//! Funnels: how many visitors reached each of 2 to 8 goals in order, as Plausible counts them.
//! Per visitor id, over the range's events that pass the query's filters, the deepest step of a
//! chain of the steps' goals in time order whose last event is at most 24 hours after its first
//! (ClickHouse's `windowFunnel(86400)`, which Plausible runs, with its order: by second, then by
//! step). A step's visitors are those whose deepest step is it or a later one; conversion and
//! drop-off follow from them. Tier 2 answers: its rows keep each event's second
//! (`tally_model::segment::RowId::second`).

use super::filter::{Compiled, FilterExpr};
use super::limits::WorkBudget;
use super::request::Query;
use super::segment_exec::{
    Test, Within, compile_filters, event_rows, known_seconds, passing_all, row_events, scroll_goals,
};
use crate::columnar::Segment;
use std::sync::Arc;
use tally_model::rollup::Bucket;

/// How long after a chain's first step its last may come, in seconds (Plausible's window).
pub const WINDOW_SECONDS: i64 = 86_400;

/// What a funnel query counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelCounts {
    /// Distinct visitors with an event in the range that passes the filters.
    pub all_visitors: u64,
    /// `deepest[k]`: visitors whose deepest step is step `k` (1-based; `deepest[0]` is those
    /// who reached none).
    pub deepest: Vec<u64>,
}

impl FunnelCounts {
    /// Visitors who reached step `k` (1-based), whatever they did after.
    pub fn reached(&self, k: usize) -> u64 {
        self.deepest.iter().skip(k).sum()
    }
}

/// The deepest step a visitor's events reach: `hits` are (second, step) with steps from 1, and
/// 0 for an event that converts no step (only in `strict` order), in any order; they are sorted
/// here by second, then step. As `windowFunnel` does: an event of the first step starts a chain
/// at its time (a later one starts a later chain, which leaves more of the window); an event of
/// step `i + 1` extends the latest chain that reached step `i` if it comes at most
/// [`WINDOW_SECONDS`] after that chain's start. In `strict` order (`windowFunnel`'s
/// `strict_order`, Plausible's strict funnels), once a first step has come, any other event —
/// one of no step, or of a step whose step before has not been reached — ends the search.
pub fn deepest_step(hits: &mut [(i64, u8)], steps: usize, strict: bool) -> usize {
    hits.sort_unstable();
    let mut chain_start: Vec<Option<i64>> = vec![None; steps];
    let mut started = false;
    for &(second, step) in hits.iter() {
        let Some(at) = usize::from(step).checked_sub(1) else {
            if strict && started {
                break;
            }
            continue;
        };
        if at == 0 {
            chain_start[0] = Some(second);
            started = true;
        } else if strict && started && chain_start[at - 1].is_none() {
            break;
        } else if let Some(start) = chain_start[at - 1].filter(|start| second <= start + WINDOW_SECONDS) {
            chain_start[at] = Some(start);
            if at + 1 == steps {
                break;
            }
        }
    }
    // Each step is reached only after the one before it: the reached steps are a prefix.
    chain_start.iter().take_while(|s| s.is_some()).count()
}

/// Counts `steps` (each a goal's filter) over `segments` (those of the query's site and range,
/// with the buckets to read of each, as a store finds them) for the events that pass the query's
/// filters.
pub fn execute_funnel(
    segments: &[(Arc<Segment>, Bucket, Bucket)],
    query: &Query,
    steps: &[FilterExpr],
    strict: bool,
    budget: &WorkBudget,
) -> anyhow::Result<FunnelCounts> {
    let filters = compile_filters(&query.filters, segments, query.seconds, budget)?;
    let steps = compile_filters(steps, segments, query.seconds, budget)?;
    let mut visitors: Vec<u64> = Vec::new();
    let mut hits: Vec<(u64, i64, u8)> = Vec::new();
    for (segment, lo, hi) in segments {
        budget.check_time()?;
        let passes = passing_all(segment, &filters)?;
        if passes.is_const(false) {
            continue;
        }
        let step_tests: Vec<Test<'_>> =
            steps.iter().map(|e| Test::of(segment, e).map(Test::simplified)).collect::<anyhow::Result<_>>()?;
        // Engagement rows count where a scroll goal (a step's, or a filter's) converts them.
        let scroll: Vec<&Compiled> = filters.iter().chain(&steps).flat_map(scroll_goals).collect();
        let events = row_events(segment, &scroll)?;
        let visitor_ids = segment.visitors()?;
        let seconds = known_seconds(segment, "funnels")?;
        let within = Within::of(segment, query.seconds)?;
        for row in event_rows(segment, (*lo, *hi), &events, &within, &passes)? {
            visitors.push(visitor_ids[row]);
            let (visitor, second, before) = (visitor_ids[row], seconds[row], hits.len());
            for (step, test) in (1u8..).zip(&step_tests) {
                if !test.is_const(false) && test.passes(row) {
                    hits.push((visitor, second, step));
                }
            }
            // In strict order, an event of no step counts too: it interrupts a chain.
            if strict && hits.len() == before {
                hits.push((visitor, second, 0));
            }
        }
    }
    visitors.sort_unstable();
    visitors.dedup();
    let mut deepest = vec![0u64; steps.len() + 1];
    hits.sort_unstable_by_key(|(visitor, ..)| *visitor);
    let mut reached_any = 0u64;
    let mut one_visitor: Vec<(i64, u8)> = Vec::new();
    for chunk in hits.chunk_by(|a, b| a.0 == b.0) {
        budget.check_time()?;
        one_visitor.clear();
        one_visitor.extend(chunk.iter().map(|(_, second, step)| (*second, *step)));
        let step = deepest_step(&mut one_visitor, steps.len(), strict);
        deepest[step] += 1;
        reached_any += 1;
    }
    // Visitors with no event in `hits` reached no step.
    deepest[0] += visitors.len() as u64 - reached_any;
    Ok(FunnelCounts { all_visitors: visitors.len() as u64, deepest })
}

/// Counts `steps` for `query` over the segments `stats` holds, within `budget`.
pub async fn count(
    stats: &dyn super::StatsSource,
    query: Query,
    steps: Vec<FilterExpr>,
    strict: bool,
    budget: WorkBudget,
) -> anyhow::Result<FunnelCounts> {
    let segments = stats.segments(&query).await?;
    budget.check_time()?;
    tokio::task::spawn_blocking(move || execute_funnel(&segments, &query, &steps, strict, &budget)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_follow_windowfunnel() {
        let deepest = |hits: &[(i64, u8)], steps| deepest_step(&mut hits.to_vec(), steps, false);
        // In order, with other steps' events between.
        assert_eq!(deepest(&[(1, 1), (2, 3), (3, 2), (4, 3)], 3), 3);
        // Out of order: the second step before the first counts for nothing.
        assert_eq!(deepest(&[(1, 2), (2, 1)], 2), 1);
        assert_eq!(deepest(&[(5, 2)], 2), 0);
        // Within one second, the earlier step comes first.
        assert_eq!(deepest(&[(7, 2), (7, 1)], 2), 2);
        // The window: 24 hours from the chain's start, inclusive; a later start leaves more.
        assert_eq!(deepest(&[(0, 1), (WINDOW_SECONDS, 2)], 2), 2);
        assert_eq!(deepest(&[(0, 1), (WINDOW_SECONDS + 1, 2)], 2), 1);
        assert_eq!(deepest(&[(0, 1), (100, 1), (WINDOW_SECONDS + 50, 2)], 2), 2);
        // A later start does not lose a chain that reached further from an earlier one.
        assert_eq!(deepest(&[(0, 1), (10, 2), (20, 1), (WINDOW_SECONDS + 5, 3)], 3), 2);
    }

    #[test]
    fn strict_order_stops_at_the_first_intervention() {
        let strict = |hits: &[(i64, u8)], steps| deepest_step(&mut hits.to_vec(), steps, true);
        // ClickHouse's example: A → B → D → C stops at D, at the second step.
        assert_eq!(strict(&[(1, 1), (2, 2), (3, 0), (4, 3)], 3), 2);
        assert_eq!(deepest_step(&mut [(1, 1), (2, 2), (3, 0), (4, 3)], 3, false), 3, "not strict: 3");
        // Other events before the first step do not matter.
        assert_eq!(strict(&[(1, 0), (2, 1), (3, 2)], 2), 2);
        // A step whose step before was not reached interrupts too.
        assert_eq!(strict(&[(1, 1), (2, 3), (3, 2)], 3), 1);
        // The first step again starts a later chain; the step reached stays.
        assert_eq!(strict(&[(1, 1), (2, 1), (3, 2)], 2), 2);
    }

    #[test]
    fn segments_without_seconds_are_refused_with_a_reason() {
        use crate::columnar::{Column, Origin};
        use crate::query::goals::goal_filter;
        use crate::registry::Goal;
        use tally_model::dimension::Dimension;
        use tally_model::segment::{DIMENSIONS, RowId, RowSums, SegmentRows, column_of};
        let mut rows = SegmentRows::default();
        for dictionary in &mut rows.dictionaries {
            dictionary.code("");
        }
        let mut codes = [0u32; DIMENSIONS];
        codes[column_of(Dimension::Name)] = rows.dictionaries[column_of(Dimension::Name)].code("Signup");
        let mut sums = RowSums::default();
        sums.counters.events = 1;
        rows.add_codes(RowId { bucket: 10, visitor: 1, visit: 1, second: 36_000, depth: -1, codes }, &sums);
        let current =
            Segment::from_rows("a.com", 1, &rows, |_| true, true, Origin::Object("now".into())).expect("a row");
        let mut columns: Vec<Column> = current.all_columns().expect("columns").into_iter().cloned().collect();
        columns.pop();
        let older = Segment::loaded("a.com", 1, columns, Origin::Object("older".into()));

        let request: crate::query::QueryRequest = serde_json::from_str(
            r#"{"site_id":"a.com","metrics":["visitors"],"date_range":["1970-01-01","1970-01-01"]}"#,
        )
        .expect("request");
        let now = "1970-01-02T00:00:00Z".parse().expect("now");
        let query = Query::resolve(&request, &jiff::tz::TimeZone::UTC, now).expect("query");
        let goal = |name: &str| goal_filter(&Goal::Event { event_name: name.into(), currency: None });
        let steps = [goal("Signup"), goal("Purchase")];
        let budget = WorkBudget::standard();
        let counted = execute_funnel(&[(Arc::new(current), 0, 23)], &query, &steps, false, &budget).expect("counted");
        assert_eq!(counted, FunnelCounts { all_visitors: 1, deepest: vec![0, 1, 0] });
        let refused = execute_funnel(&[(Arc::new(older), 0, 23)], &query, &steps, false, &budget).expect_err("refused");
        let refused = refused.downcast_ref::<crate::query::QueryError>().expect("a query error, answered as a 400");
        assert!(refused.0.contains("kept no event times"), "{}", refused.0);
    }
}
