//! Executes a [`Query`] that the planner gave to tier 2: one pass over the columns it needs in
//! each segment of its range. Filters become a yes/no per dictionary value (a `contains` is
//! tested once per distinct value, not per row); groups are keyed by their dictionary codes (a
//! dense array when the combinations are few); distinct visitors are exact: the ids of a group's
//! rows that carry events, sorted and deduplicated at the end. Segments are shared out over the
//! cores. [`finish`] (metrics, order, page) is shared with the other tiers.

use super::exec::{
    Engaged, Group, Row, day_label, finish, hour_label, month_index, month_label, week_label, week_start,
};
use super::filter::{Compiled, Field, FilterExpr, NO_PROP};
use super::limits::{OverBudget, WorkBudget};
use super::place_names;
use super::request::{Grouping, Metric, Query, QueryError};
use crate::columnar::{COUNTERS, Segment, UNKNOWN_SECOND};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tally_model::money::{Currency, RevenueSums};
use tally_model::props::value_in;
use tally_model::rollup::{Bucket, Counters};
use tally_model::segment::{CURRENCY, PROPS, column_of};

/// Group combinations up to this many (or up to the segment's rows, if more) use a dense array
/// instead of a hash map.
const DENSE_GROUPS: u128 = 1 << 12;

type Fast = foldhash::fast::FixedState;

/// Borrowed group labels, found in the index of owned ones without allocating (they hash alike:
/// a slice of `&str` hashes as a `Vec<String>` does).
struct LabelsRef<'a>(&'a [&'a str]);

impl Hash for LabelsRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl hashbrown::Equivalent<Vec<String>> for LabelsRef<'_> {
    fn equivalent(&self, key: &Vec<String>) -> bool {
        key.len() == self.0.len() && key.iter().zip(self.0).all(|(a, b)| a == b)
    }
}

/// One group's sums over segments.
#[derive(Default)]
struct Accumulated {
    labels: Vec<String>,
    counters: Counters,
    /// The visitor ids of its rows with events (with repeats).
    visitors: Vec<u64>,
    revenue: RevenueSums,
    /// The visit ids of its rows with events, where visits count by their events (with repeats).
    visits: Vec<u64>,
    /// Where the query asks what engagement events measured: per engagement row its visit id,
    /// engaged milliseconds and greatest scroll depth (-1: none).
    engaged: Vec<(u64, i64, i64)>,
}

/// One group's sums within a segment: its index in [`Groups`], counters, and the last visitor
/// and visit it added (rows of one visitor and visit come together).
struct Local {
    global: usize,
    sums: [i64; COUNTERS.len()],
    last_visitor: Option<u64>,
    revenue: RevenueSums,
    last_visit: Option<u64>,
}

/// Answers accumulated over segments: per group its labels, counters, revenue and the visitor
/// ids of its rows (with repeats; [`Groups::finish`] counts the distinct ones).
/// Past `max` groups, rows of new groups go to one overflow group, and the query is refused
/// when the scan ends.
struct Groups {
    max: usize,
    index: hashbrown::HashMap<Vec<String>, usize, Fast>,
    groups: Vec<Accumulated>,
    /// The overflow group's index, once rows went to it.
    overflow: Option<usize>,
    /// Whether this or a merged share went over the budget.
    over: bool,
}

impl Groups {
    fn new(max: usize) -> Groups {
        Groups { max, index: Default::default(), groups: Vec::new(), overflow: None, over: false }
    }

    fn at(&mut self, labels: &[&str]) -> usize {
        if let Some(&at) = self.index.get(&LabelsRef(labels)) {
            return at;
        }
        if self.index.len() >= self.max {
            self.over = true;
            let next = self.groups.len();
            return *self.overflow.get_or_insert_with(|| {
                self.groups.push(Accumulated::default());
                next
            });
        }
        let at = self.groups.len();
        let owned: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        self.index.insert(owned.clone(), at);
        self.groups.push(Accumulated { labels: owned, ..Accumulated::default() });
        at
    }

    fn merge(&mut self, other: Groups) {
        self.over |= other.over;
        for (at, theirs) in other.groups.into_iter().enumerate() {
            if Some(at) == other.overflow {
                continue;
            }
            let refs: Vec<&str> = theirs.labels.iter().map(String::as_str).collect();
            let at = self.at(&refs);
            let group = &mut self.groups[at];
            group.counters.add(&theirs.counters);
            group.visitors.extend(theirs.visitors);
            group.revenue.merge(&theirs.revenue);
            group.visits.extend(theirs.visits);
            group.engaged.extend(theirs.engaged);
        }
    }

    /// Each group with its distinct visitors (and, where the query counts visits by their
    /// events, its distinct visits).
    fn finish(self, distinct_visits: bool) -> Vec<Group> {
        let distinct = |mut ids: Vec<u64>| {
            ids.sort_unstable();
            ids.dedup();
            ids.len() as u64
        };
        self.groups
            .into_iter()
            .map(|g| Group {
                labels: g.labels,
                counters: g.counters,
                visitors: distinct(g.visitors),
                revenue: g.revenue,
                visits: distinct_visits.then(|| distinct(g.visits)),
                engagement: engaged_per_visit(g.engaged),
            })
            .collect()
    }
}

/// What a group's engagement rows measured, per visit: engaged time summed over them, scroll
/// depth the greatest any reported (Plausible's `time_on_page` and `scroll_depth` per session).
fn engaged_per_visit(mut rows: Vec<(u64, i64, i64)>) -> Engaged {
    rows.sort_unstable_by_key(|(visit, ..)| *visit);
    let mut out = Engaged::default();
    for one_visit in rows.chunk_by(|a, b| a.0 == b.0) {
        out.visits += 1;
        out.engaged_ms += one_visit.iter().map(|(_, ms, _)| ms).sum::<i64>();
        let deepest = one_visit.iter().map(|(.., depth)| *depth).max().unwrap_or(-1);
        if deepest >= 0 {
            out.scrolled_visits += 1;
            out.scroll_depth_sum += deepest;
        }
    }
    out
}

/// The counters of an event row (events, page views); the rest are a visit's.
const EVENT_COUNTERS: usize = 2;

/// How a query counts visits, as Plausible does: grouped or filtered by an event's own field
/// (page, name, hostname, a prop, a goal), `visits` counts the distinct visits with an event in
/// the group; filtered by one, a visit's counters (visits, bounces, duration, views) count when
/// one of its events in the range passes the filters, wherever the visit entered.
struct VisitRule {
    /// `visits` is the number of distinct visits among a group's event rows.
    distinct: bool,
    /// With filters on an event's own field, when the query asks visit counters: the visits with
    /// an event that passes them.
    holding: Option<HashSet<u64>>,
}

/// Runs a query over `segments`, those of its site and range with the buckets it reads of each
/// (as a store finds them), on as many threads as there are cores (each takes every n-th
/// segment), merging their groups at the end.
pub fn execute_segments(
    segments: &[(Arc<Segment>, Bucket, Bucket)],
    query: &Query,
    budget: &WorkBudget,
) -> anyhow::Result<Vec<Row>> {
    // `has_done`: the visits with such events, found before the scan.
    let filters = compile_filters(&query.filters, segments, query.seconds, budget)?;
    // `visits` itself counts distinct visit ids here; the other visit metrics need the visit
    // counters of the visits that hold a passing event.
    let asks_visit_counters =
        query.metrics.iter().any(|m| matches!(m, Metric::BounceRate | Metric::VisitDuration | Metric::ViewsPerVisit));
    let reads_events = query.filters.iter().any(FilterExpr::reads_events);
    let groups_events = query
        .groupings
        .iter()
        .any(|g| matches!(g, Grouping::Prop(_)) || matches!(g, Grouping::Dim(d) if d.is_event_own()));
    let rule = VisitRule {
        distinct: (reads_events || groups_events) && query.metrics.contains(&Metric::Visits),
        holding: if reads_events && asks_visit_counters {
            Some(visits_with(segments, &filters.iter().collect::<Vec<_>>(), query.seconds, budget)?)
        } else {
            None
        },
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(segments.len()).max(1);
    let scan_share = |share: usize| -> anyhow::Result<Groups> {
        let mut groups = Groups::new(budget.max_groups);
        for (segment, lo, hi) in segments.iter().skip(share).step_by(threads) {
            budget.check_time()?;
            scan(segment, *lo, *hi, query, &filters, &rule, &mut groups)?;
        }
        Ok(groups)
    };
    let groups = if threads == 1 {
        scan_share(0)?
    } else {
        let shares: Vec<anyhow::Result<Groups>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|share| scope.spawn(move || scan_share(share))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a scan thread panicked"))))
                .collect()
        });
        let mut merged = Groups::new(budget.max_groups);
        for share in shares {
            merged.merge(share?);
        }
        merged
    };
    if groups.over {
        return Err(OverBudget::groups(budget.max_groups).into());
    }
    let mut groups = groups.finish(rule.distinct);
    // A group that only visit rows reached is no row of a query grouped by a prop (props are on
    // events; visit rows have none). Filtered by an event field, it is a row only when the query
    // asks the visit counters and a visit holding a passing event began in it (those counters
    // land in the hour and entry cell where the visit began, which may hold none of its passing
    // events).
    // Engagement rows count nothing but what they measured: a group they alone reached is a row
    // only when the query asks for that.
    let asks_engagement = query.asks_engagement();
    let engaged = |g: &Group| asks_engagement && g.engagement.visits > 0;
    if query.prop_grouping().is_some() {
        groups.retain(|g| g.counters.events > 0 || engaged(g));
    } else if reads_events {
        let counts_visits = rule.holding.is_some();
        groups.retain(|g| g.counters.events > 0 || (counts_visits && g.counters.visits > 0) || engaged(g));
    } else {
        groups.retain(|g| g.counters != Counters::default() || engaged(g));
    }
    Ok(finish(query, groups))
}

/// The ids of the visits with an event row in the range that passes every one of `exprs`.
fn visits_with(
    segments: &[(Arc<Segment>, Bucket, Bucket)],
    exprs: &[&Compiled],
    seconds: Option<(i64, i64)>,
    budget: &WorkBudget,
) -> anyhow::Result<HashSet<u64>> {
    let mut out = HashSet::new();
    for (segment, lo, hi) in segments {
        budget.check_time()?;
        let test = Test::All(exprs.iter().map(|e| Test::of(segment, e)).collect::<anyhow::Result<_>>()?).simplified();
        if matches!(test, Test::Const(false)) {
            continue;
        }
        let (first, last) = segment.buckets;
        let buckets = if *lo > first || *hi < last { Some(segment.buckets()?) } else { None };
        let scroll: Vec<&Compiled> = exprs.iter().flat_map(|e| scroll_goals(e)).collect();
        let (events, visits) = (row_events(segment, &scroll)?, segment.visits()?);
        let within = Within::of(segment, seconds)?;
        for row in 0..segment.rows {
            if let Some(b) = buckets
                && !(*lo..=*hi).contains(&Bucket::from(b[row]))
            {
                continue;
            }
            if !within.holds(row) {
                continue;
            }
            if events[row] > 0 && test.passes(row) {
                out.insert(visits[row]);
            }
        }
    }
    Ok(out)
}

/// Compiles `filters` for a scan of `segments`, with the visits of their `has_done` parts found
/// first (each looks for events passing its filter).
pub(super) fn compile_filters(
    filters: &[FilterExpr],
    segments: &[(Arc<Segment>, Bucket, Bucket)],
    seconds: Option<(i64, i64)>,
    budget: &WorkBudget,
) -> anyhow::Result<Vec<Compiled>> {
    let compiled: Vec<Compiled> = filters.iter().map(FilterExpr::compile).collect::<Result<_, _>>()?;
    for filter in &compiled {
        find_has_done_visits(filter, segments, seconds, budget)?;
    }
    Ok(compiled)
}

/// The test that `segment`'s rows pass every one of `filters`.
pub(super) fn passing_all<'s>(segment: &'s Segment, filters: &'s [Compiled]) -> anyhow::Result<Test<'s>> {
    Ok(Test::All(filters.iter().map(|f| Test::of(segment, f)).collect::<anyhow::Result<_>>()?).simplified())
}

/// Fills in the visits of every `has_done` in `expr` (each looks for events passing its filter).
pub(super) fn find_has_done_visits(
    expr: &Compiled,
    segments: &[(Arc<Segment>, Bucket, Bucket)],
    seconds: Option<(i64, i64)>,
    budget: &WorkBudget,
) -> anyhow::Result<()> {
    match expr {
        Compiled::Leaf(_) => {}
        Compiled::And(all) | Compiled::Or(all) => {
            for e in all {
                find_has_done_visits(e, segments, seconds, budget)?;
            }
        }
        Compiled::Not(inner) => find_has_done_visits(inner, segments, seconds, budget)?,
        Compiled::HasDone { inner, visits, .. } => {
            let found = visits_with(segments, &[inner.as_ref()], seconds, budget)?;
            let _ = visits.set(found);
        }
    }
    Ok(())
}

/// Which counters the query's metrics read, by index into [`COUNTERS`].
fn needed_counters(metrics: &[Metric]) -> [bool; COUNTERS.len()] {
    let mut needed = [false; COUNTERS.len()];
    for metric in metrics {
        let uses: &[usize] = match metric {
            Metric::Visitors
            | Metric::Percentage
            | Metric::ConversionRate
            | Metric::GroupConversionRate
            | Metric::Events
            | Metric::TotalRevenue
            | Metric::AverageRevenue => &[0],
            Metric::Pageviews => &[1],
            Metric::Visits | Metric::ExitRate => &[2],
            Metric::BounceRate => &[2, 3],
            Metric::VisitDuration => &[2, 4],
            Metric::ViewsPerVisit => &[2, 5],
            Metric::ScrollDepth | Metric::TimeOnPage => &[],
        };
        for &i in uses {
            needed[i] = true;
        }
    }
    needed
}

/// One part of a group key: a dimension's code or a time period within the segment.
enum Part<'a> {
    Dimension(&'a [String], &'a [u32]),
    Hour,
    Day,
    Week,
    Month,
}

/// A filter tree over one segment's rows: each comparison decided once per distinct value (per
/// code), then combined per row.
pub(super) enum Test<'s> {
    /// Every row passes, or none does.
    Const(bool),
    /// A row passes when its visit is (or, negated, is not) one of a `has_done`'s visits.
    InVisits(&'s [u64], &'s HashSet<u64>, bool),
    /// A row passes when its code's entry is true.
    Leaf(&'s [u32], Vec<bool>),
    /// A row passes when its scroll depth is at least this (a scroll goal's threshold).
    AtLeast(&'s [i64], i64),
    All(Vec<Test<'s>>),
    Any(Vec<Test<'s>>),
    Not(Box<Test<'s>>),
}

impl<'s> Test<'s> {
    pub(super) fn of(segment: &'s Segment, expr: &'s Compiled) -> anyhow::Result<Test<'s>> {
        Ok(match expr {
            Compiled::Leaf(matcher) => {
                let (pass, codes): (Vec<bool>, &[u32]) = match &matcher.filter.field {
                    Field::Goal => anyhow::bail!("event:goal filters must be expanded before the segments"),
                    Field::ScrollDepth => {
                        let threshold = matcher.filter.values.first().and_then(|v| v.parse::<i64>().ok());
                        let threshold =
                            threshold.ok_or_else(|| anyhow::anyhow!("a scroll depth filter has no threshold"))?;
                        let [.., depths] = segment.engagement()?;
                        return Ok(Test::AtLeast(depths, threshold));
                    }
                    Field::Dim(d) => {
                        let (values, codes) = segment.dimension(column_of(*d))?;
                        (values.iter().map(|v| matcher.passes(v)).collect(), codes)
                    }
                    Field::Name(d) => {
                        let (values, codes) = segment.dimension(column_of(*d))?;
                        (values.iter().map(|v| matcher.passes(&place_names::display(*d, v))).collect(), codes)
                    }
                    Field::Prop(name) => {
                        let (sets, codes) = segment.dimension(PROPS)?;
                        let value = |set: &String| value_in(set, name).unwrap_or_else(|| NO_PROP.into());
                        (sets.iter().map(|set| matcher.passes(&value(set))).collect(), codes)
                    }
                };
                Test::Leaf(codes, pass).simplified()
            }
            Compiled::And(all) => Test::All(all.iter().map(|e| Test::of(segment, e)).collect::<anyhow::Result<_>>()?),
            Compiled::Or(any) => Test::Any(any.iter().map(|e| Test::of(segment, e)).collect::<anyhow::Result<_>>()?),
            Compiled::Not(inner) => Test::Not(Box::new(Test::of(segment, inner)?)),
            Compiled::HasDone { negated, visits, .. } => {
                let visits =
                    visits.get().ok_or_else(|| anyhow::anyhow!("has_done's visits must be found before the scan"))?;
                if visits.is_empty() {
                    Test::Const(*negated)
                } else {
                    Test::InVisits(segment.visits()?, visits, *negated)
                }
            }
        }
        .simplified())
    }

    /// The same test with what is decided for every row folded into constants.
    pub(super) fn simplified(self) -> Test<'s> {
        match self {
            Test::Leaf(_, pass) if !pass.contains(&true) => Test::Const(false),
            Test::Leaf(_, pass) if !pass.contains(&false) => Test::Const(true),
            Test::All(all) => {
                let mut kept: Vec<Test<'s>> = Vec::new();
                for t in all.into_iter().map(Test::simplified) {
                    match t {
                        Test::Const(false) => return Test::Const(false),
                        Test::Const(true) => {}
                        other => kept.push(other),
                    }
                }
                if kept.len() <= 1 { kept.pop().unwrap_or(Test::Const(true)) } else { Test::All(kept) }
            }
            Test::Any(any) => {
                let mut kept: Vec<Test<'s>> = Vec::new();
                for t in any.into_iter().map(Test::simplified) {
                    match t {
                        Test::Const(true) => return Test::Const(true),
                        Test::Const(false) => {}
                        other => kept.push(other),
                    }
                }
                if kept.len() <= 1 { kept.pop().unwrap_or(Test::Const(false)) } else { Test::Any(kept) }
            }
            Test::Not(inner) => match inner.simplified() {
                Test::Const(b) => Test::Const(!b),
                other => Test::Not(Box::new(other)),
            },
            other => other,
        }
    }

    /// Whether every row passes (`true`) or none does (`false`), decided without reading one.
    pub(super) fn is_const(&self, value: bool) -> bool {
        matches!(self, Test::Const(v) if *v == value)
    }

    /// Whether row `row` passes.
    pub(super) fn passes(&self, row: usize) -> bool {
        match self {
            Test::Const(b) => *b,
            Test::Leaf(codes, pass) => pass[codes[row] as usize],
            Test::InVisits(ids, visits, negated) => visits.contains(&ids[row]) != *negated,
            Test::AtLeast(depths, threshold) => depths[row] >= *threshold,
            Test::All(all) => all.iter().all(|t| t.passes(row)),
            Test::Any(any) => any.iter().any(|t| t.passes(row)),
            Test::Not(inner) => !inner.passes(row),
        }
    }
}

/// Each row's second (`RowId::second`) for a question that needs it (`needs`: "funnels", "a
/// date_range to the second"); a segment written before rows kept their second cannot say,
/// which is a [`QueryError`] (a 400).
pub(super) fn known_seconds<'s>(segment: &'s Segment, needs: &str) -> anyhow::Result<&'s [i64]> {
    let at = segment.seconds()?;
    if at.contains(&UNKNOWN_SECOND) {
        return Err(QueryError(format!(
            "this range holds events stored by a release that kept no event times, which {needs} need; \
             reprocess it, or ask for a later range"
        ))
        .into());
    }
    Ok(at)
}

/// Which rows of a segment fall within a range's seconds (`Query::seconds`); every row does
/// for a range of whole hours (its buckets choose the rows).
pub(super) struct Within<'s>(Option<(&'s [i64], i64, i64)>);

impl<'s> Within<'s> {
    /// The rows of `segment` within `seconds`.
    pub(super) fn of(segment: &'s Segment, seconds: Option<(i64, i64)>) -> anyhow::Result<Within<'s>> {
        let Some((from, to)) = seconds else { return Ok(Within(None)) };
        Ok(Within(Some((known_seconds(segment, "ranges to the second")?, from, to))))
    }

    /// Whether row `row` is within the range.
    pub(super) fn holds(&self, row: usize) -> bool {
        self.0.is_none_or(|(at, from, to)| (from..=to).contains(&at[row]))
    }
}

/// The rows of `segment` that a question over stored events reads (funnels, prop names): rows
/// with events (as `events`, from [`row_events`], counts them), of a bucket in `lo..=hi`, within
/// the range's seconds, that pass the filters.
pub(super) fn event_rows<'a>(
    segment: &'a Segment,
    (lo, hi): (Bucket, Bucket),
    events: &'a [i64],
    within: &'a Within<'a>,
    passes: &'a Test<'a>,
) -> anyhow::Result<impl Iterator<Item = usize> + 'a> {
    let buckets = segment.buckets()?;
    Ok((0..segment.rows).filter(move |&row| {
        events[row] > 0 && (lo..=hi).contains(&Bucket::from(buckets[row])) && within.holds(row) && passes.passes(row)
    }))
}

/// The scroll goals' filters within `expr` (as `goals::goal_filter` writes them, compiled):
/// the engagement rows they pass count as conversions.
pub(super) fn scroll_goals(expr: &Compiled) -> Vec<&Compiled> {
    match expr {
        Compiled::And(all)
            if all.iter().any(|e| matches!(e, Compiled::Leaf(m) if m.filter.field == Field::ScrollDepth)) =>
        {
            vec![expr]
        }
        Compiled::Leaf(_) => Vec::new(),
        Compiled::And(all) | Compiled::Or(all) => all.iter().flat_map(scroll_goals).collect(),
        Compiled::Not(inner) | Compiled::HasDone { inner, .. } => scroll_goals(inner),
    }
}

/// The events each row of `segment` counts: its own (the events counter), and, for an
/// engagement row that one of `scroll` (scroll goals' filters) passes, its engagement events:
/// engagement events count as nothing but the scroll goals they convert.
pub(super) fn row_events<'s>(segment: &'s Segment, scroll: &[&'s Compiled]) -> anyhow::Result<Cow<'s, [i64]>> {
    let events = segment.counter(0)?;
    if scroll.is_empty() {
        return Ok(Cow::Borrowed(events));
    }
    let tests: Vec<Test<'s>> = scroll.iter().map(|e| Test::of(segment, e)).collect::<anyhow::Result<_>>()?;
    let [engagements, ..] = segment.engagement()?;
    let mut counted = events.to_vec();
    for (row, count) in counted.iter_mut().enumerate() {
        if engagements[row] > 0 && tests.iter().any(|t| t.passes(row)) {
            *count += engagements[row];
        }
    }
    Ok(Cow::Owned(counted))
}

/// Adds the rows of `segment` with a bucket in `lo..=hi` that pass the filters into `out`.
fn scan(
    segment: &Segment,
    lo: Bucket,
    hi: Bucket,
    query: &Query,
    filters: &[Compiled],
    rule: &VisitRule,
    out: &mut Groups,
) -> anyhow::Result<()> {
    let (first, last) = segment.buckets;
    let by_time = query.groupings.iter().any(Grouping::is_time);
    let range_first_day = query.buckets.start.div_euclid(24);
    let buckets = if lo > first || hi < last || by_time { Some(segment.buckets()?) } else { None };
    let test = passing_all(segment, filters)?;
    // With visits found by their events, a visit row may count where no row passes the filters.
    if matches!(test, Test::Const(false)) && rule.holding.as_ref().is_none_or(HashSet::is_empty) {
        return Ok(());
    }
    let asks_engagement = query.asks_engagement();
    let visit_ids =
        if rule.distinct || rule.holding.is_some() || asks_engagement { Some(segment.visits()?) } else { None };
    // Each row's events: engagement rows count those a scroll goal among the filters converts.
    let scroll: Vec<&Compiled> = filters.iter().flat_map(scroll_goals).collect();
    let row_events = row_events(segment, &scroll)?;
    let row_events: &[i64] = &row_events;
    let within = Within::of(segment, query.seconds)?;
    let mut filters: Vec<(&[u32], Vec<bool>)> = Vec::new();
    // A prop grouping: each prop set's value of the prop (the labels, per props code), and only
    // the rows whose set has the prop.
    let mut prop_labels: Vec<Vec<String>> = Vec::new();
    for grouping in &query.groupings {
        if let Grouping::Prop(name) = grouping {
            let (sets, codes) = segment.dimension(PROPS)?;
            let values: Vec<Option<String>> = sets.iter().map(|set| value_in(set, name)).collect();
            let pass: Vec<bool> = values.iter().map(Option::is_some).collect();
            if !pass.contains(&true) {
                return Ok(());
            }
            filters.push((codes, pass));
            prop_labels.push(values.into_iter().map(Option::unwrap_or_default).collect());
        }
    }
    let mut prop_labels = prop_labels.iter();
    let mut parts: Vec<(Part<'_>, u128)> = Vec::with_capacity(query.groupings.len());
    for grouping in &query.groupings {
        parts.push(match grouping {
            Grouping::Goal => anyhow::bail!("event:goal must be expanded before the segments"),
            Grouping::Dim(d) | Grouping::Name(d) => {
                let (values, codes) = segment.dimension(column_of(*d))?;
                (Part::Dimension(values, codes), values.len().max(1) as u128)
            }
            Grouping::Prop(_) => {
                let (_, codes) = segment.dimension(PROPS)?;
                let labels = prop_labels.next().map_or(&[][..], Vec::as_slice);
                (Part::Dimension(labels, codes), labels.len().max(1) as u128)
            }
            Grouping::Hour => (Part::Hour, (last - first + 1).max(1) as u128),
            Grouping::Day => (Part::Day, (last.div_euclid(24) - first.div_euclid(24) + 1).max(1) as u128),
            Grouping::Week => {
                let weeks = (week_start(last.div_euclid(24)) - week_start(first.div_euclid(24))) / 7 + 1;
                (Part::Week, weeks.max(1) as u128)
            }
            Grouping::Month => {
                let months = month_index(last.div_euclid(24)) - month_index(first.div_euclid(24)) + 1;
                (Part::Month, months.max(1) as u128)
            }
        });
    }
    let combinations = parts.iter().try_fold(1u128, |n, (_, radix)| n.checked_mul(*radix));
    let Some(combinations) = combinations else {
        anyhow::bail!("too many combinations of grouped values in one segment; group by fewer dimensions");
    };
    let mut needed = needed_counters(&query.metrics);
    // Groups that only visit rows reach are dropped by their events (see `execute_segments`)
    // under prop groupings and event filters, and visits count by their event rows: all need
    // the events counter.
    // Engagement rows (no counters) make groups too, which `execute_segments` drops when
    // nothing counted in them: that needs the events counter of every row.
    needed[0] = true;
    let events = if rule.distinct { Some(row_events) } else { None };
    let engagement = if asks_engagement { Some(segment.engagement()?) } else { None };
    let mut counters: Vec<(usize, &[i64])> = Vec::new();
    for (i, needed) in needed.iter().enumerate() {
        if *needed {
            counters.push((i, if i == 0 { row_events } else { segment.counter(i)? }));
        }
    }
    // A row adds its visitor only if it carries events (visit rows do not); `needed_counters`
    // loads events whenever visitors are asked for.
    let visitors = if query.metrics.iter().any(|m| matches!(m, Metric::Visitors | Metric::Percentage)) {
        Some((segment.visitors()?, row_events))
    } else {
        None
    };
    // Revenue: each row's currency code (`None` where it has none), amount and events.
    let revenue = if query.metrics.iter().any(|m| m.is_revenue()) {
        let (currencies, codes) = segment.dimension(CURRENCY)?;
        let known: Vec<Option<Currency>> = currencies.iter().map(|c| Currency::parse(c)).collect();
        Some((known, codes, segment.revenue()?, row_events))
    } else {
        None
    };

    // Local groups of this segment: their global index, counters and last visitor added.
    let dense_up_to = DENSE_GROUPS.max(segment.rows as u128);
    let is_dense = combinations <= dense_up_to;
    let mut dense: Vec<u32> = if is_dense { vec![u32::MAX; combinations as usize] } else { Vec::new() };
    let mut sparse: HashMap<u128, u32> = HashMap::new();
    let mut local: Vec<Local> = Vec::new();
    'rows: for row in 0..segment.rows {
        let bucket = match buckets {
            Some(b) => {
                let bucket = Bucket::from(b[row]);
                if bucket < lo || bucket > hi {
                    continue;
                }
                bucket
            }
            None => 0,
        };
        if !within.holds(row) {
            continue;
        }
        for (codes, pass) in &filters {
            if !pass[codes[row] as usize] {
                continue 'rows;
            }
        }
        // The event part of a row (events, page views, visitors, revenue) counts when the row
        // passes the filters; its visit part when its visit does (see `VisitRule`).
        let event_pass = test.passes(row);
        let visit_pass = match (&rule.holding, visit_ids) {
            // A row without visit counters adds nothing by its visit (and makes no group).
            (Some(holding), Some(ids)) => {
                holding.contains(&ids[row]) && counters.iter().any(|(i, v)| *i >= EVENT_COUNTERS && v[row] != 0)
            }
            _ => event_pass,
        };
        if !event_pass && !visit_pass {
            continue;
        }
        let mut key = 0u128;
        for (part, radix) in &parts {
            let value = match part {
                Part::Dimension(_, codes) => u128::from(codes[row]),
                Part::Hour => (bucket - first) as u128,
                Part::Day => (bucket.div_euclid(24) - first.div_euclid(24)) as u128,
                Part::Week => ((week_start(bucket.div_euclid(24)) - week_start(first.div_euclid(24))) / 7) as u128,
                Part::Month => (month_index(bucket.div_euclid(24)) - month_index(first.div_euclid(24))) as u128,
            };
            key = key * radix + value;
        }
        let slot = if is_dense { &mut dense[key as usize] } else { sparse.entry(key).or_insert(u32::MAX) };
        if *slot == u32::MAX {
            let global = match parts.as_slice() {
                // The common case, without allocating: one dimension.
                [(Part::Dimension(values, codes), _)] => out.at(&[values[codes[row] as usize].as_str()]),
                _ => {
                    let labels: Vec<Cow<'_, str>> = parts
                        .iter()
                        .map(|(part, _)| match part {
                            Part::Dimension(values, codes) => Cow::Borrowed(values[codes[row] as usize].as_str()),
                            Part::Hour => Cow::Owned(hour_label(bucket)),
                            Part::Day => Cow::Owned(day_label(bucket)),
                            Part::Week => Cow::Owned(week_label(bucket.div_euclid(24), range_first_day)),
                            Part::Month => Cow::Owned(month_label(bucket.div_euclid(24))),
                        })
                        .collect();
                    let refs: Vec<&str> = labels.iter().map(|l| l.as_ref()).collect();
                    out.at(&refs)
                }
            };
            *slot = u32::try_from(local.len())?;
            local.push(Local {
                global,
                sums: [0; COUNTERS.len()],
                last_visitor: None,
                revenue: RevenueSums::default(),
                last_visit: None,
            });
        }
        let group = &mut local[*slot as usize];
        for (i, values) in &counters {
            if (*i < EVENT_COUNTERS && event_pass) || (*i >= EVENT_COUNTERS && visit_pass) {
                group.sums[*i] += values[row];
            }
        }
        if let Some(events) = events
            && event_pass
            && events[row] > 0
            && let Some(ids) = visit_ids
            && group.last_visit != Some(ids[row])
        {
            group.last_visit = Some(ids[row]);
            out.groups[group.global].visits.push(ids[row]);
        }
        if let Some((ids, events)) = visitors
            && event_pass
            && events[row] > 0
            && group.last_visitor != Some(ids[row])
        {
            group.last_visitor = Some(ids[row]);
            out.groups[group.global].visitors.push(ids[row]);
        }
        if let Some((known, codes, amounts, events)) = &revenue
            && event_pass
            && let Some(currency) = known[codes[row] as usize]
        {
            group.revenue.add(currency, amounts[row], events[row]);
        }
        if let Some([engagements, engaged_ms, depth]) = engagement
            && event_pass
            && engagements[row] > 0
            && let Some(ids) = visit_ids
        {
            out.groups[group.global].engaged.push((ids[row], engaged_ms[row], depth[row]));
        }
    }
    for one in local {
        let group = &mut out.groups[one.global];
        group.counters.add(&Counters::from_array(one.sums));
        group.revenue.merge(&one.revenue);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::store::{Progress, Store};
    use crate::pipeline::flush::Flush;
    use crate::query::{Query, QueryRequest};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;
    use serde_json::json;
    use tally_model::event::{Event, EventId, LogEntry, VisitorIds};

    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn groups_past_the_budget_go_over_and_merging_keeps_it() {
        const MAX: usize = 1_000;
        let mut groups = Groups::new(MAX);
        let labels: Vec<String> = (0..=MAX).map(|i| i.to_string()).collect();
        for label in &labels[..MAX] {
            groups.at(&[label.as_str()]);
        }
        assert!(!groups.over, "exactly the budget is within it");
        assert_eq!(groups.at(&["0"]), 0, "a known group is found past the budget");
        let overflow = groups.at(&[labels[MAX].as_str()]);
        assert!(groups.over);
        assert_eq!(groups.at(&["another"]), overflow, "every new group shares the overflow group");
        let mut merged = Groups::new(MAX);
        merged.merge(groups);
        assert!(merged.over, "a share over the budget makes the whole over it");
    }

    fn event(at_ms: i64, visitor: u64, path: &str, country: &str) -> Event {
        Event {
            id: EventId(u128::from(visitor) << 64 | at_ms as u128),
            received_ms: at_ms,
            site: "a.com".into(),
            name: "pageview".into(),
            url: format!("https://a.com{path}"),
            referrer: Some("https://news.ycombinator.com/".into()),
            props: vec![],
            revenue: None,
            interactive: true,
            user_agent: UA.into(),
            country: Some(country.into()),
            visitor: VisitorIds { current: visitor, previous: visitor },
            region: None,
            city: None,
            engagement: None,
            hash_mode: false,
        }
    }

    /// A store holding `events`, applied the way the aggregator does (UTC buckets): each event
    /// its own flush, the first half persisted to Parquet (merged per day), the rest pending.
    fn store_with(name: &str, events: &[Event]) -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("tally-segment-exec-{name}-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (store, _) = Store::open(&path).expect("store");
        for (i, e) in events.iter().enumerate() {
            let mut flush = Flush::default();
            flush.add(&LogEntry::Event(Box::new(e.clone())), 0, &|_| None, &store).expect("adds");
            let progress = Progress { offset: i as u64 + 1, until_ms: 0 };
            store.apply(&flush, progress).expect("apply");
            // Each flush writes its visit state (a snapshot), so the next one finds it in the store.
            let mut state = crate::embedded::state::StateDelta::default();
            state.absorb(flush.sessions, flush.sightings, 1, progress.until_ms);
            store.write_state(&state, progress).expect("state");
            if i + 1 == events.len() / 2 {
                store.persist_segments(true).expect("persists");
            }
        }
        (store, path)
    }

    fn remove(path: &std::path::Path) {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(path.with_extension("state.redb"));
        let _ = std::fs::remove_dir_all(path.with_extension("segments"));
    }

    fn run(store: &Store, json: &str) -> Vec<Row> {
        let request: QueryRequest = serde_json::from_str(json).expect("request");
        let now: Timestamp = "1970-01-03T12:00:00Z".parse().expect("now");
        let query = Query::resolve(&request, &TimeZone::UTC, now).expect("valid query");
        let segments = store.segments_for(&query.site, query.buckets.clone()).expect("segments");
        execute_segments(&segments, &query, &WorkBudget::standard()).expect("executes")
    }

    #[test]
    fn visitors_over_a_range_are_distinct_not_summed_per_day() {
        // Visitor 1 on both days, visitor 2 on day one only.
        let events = [event(1_000, 1, "/", "DE"), event(2_000, 2, "/", "FR"), event(DAY_MS + 1_000, 1, "/", "DE")];
        let (store, path) = store_with("distinct", &events);
        let by_day = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visitors"],"date_range":["1970-01-01","1970-01-02"],"dimensions":["time:day"]}"#,
        );
        assert_eq!(by_day.iter().map(|r| r.metrics[0].clone()).collect::<Vec<_>>(), vec![json!(2), json!(1)]);
        let total = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visitors","visits","pageviews"],"date_range":["1970-01-01","1970-01-02"]}"#,
        );
        assert_eq!(total[0].metrics, vec![json!(2), json!(3), json!(3)]);
        remove(&path);
    }

    #[test]
    fn filters_groups_and_visit_metrics() {
        let events = [
            event(0, 1, "/", "DE"),
            event(60_000, 1, "/pricing", "DE"),
            event(0, 2, "/pricing", "FR"),
            event(0, 3, "/docs/a", "US"),
        ];
        let (store, path) = store_with("filters", &events);
        let de = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visitors","pageviews","bounce_rate","visit_duration","views_per_visit"],"date_range":["1970-01-01","1970-01-01"],"filters":[["is","visit:country",["DE"]]]}"#,
        );
        assert_eq!(de[0].metrics, vec![json!(1), json!(2), json!(0), json!(60), json!(2.0)]);
        let pages = run(
            &store,
            r#"{"site_id":"a.com","metrics":["pageviews"],"date_range":["1970-01-01","1970-01-01"],"dimensions":["event:page"],"filters":[["is_not","visit:country",["US"]]]}"#,
        );
        let pages: Vec<_> = pages.iter().map(|r| (r.dimensions[0].as_str(), r.metrics[0].clone())).collect();
        assert_eq!(pages, vec![("/pricing", json!(2)), ("/", json!(1))]);
        let docs = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visitors","bounce_rate"],"date_range":["1970-01-01","1970-01-01"],"filters":[["contains","event:page",["/docs"]]]}"#,
        );
        assert_eq!(docs[0].metrics, vec![json!(1), json!(100)]);
        let source = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":["1970-01-01","1970-01-01"],"dimensions":["visit:source","visit:browser"]}"#,
        );
        assert_eq!(source[0].dimensions, vec!["Hacker News".to_owned(), "Firefox".to_owned()]);
        remove(&path);
    }

    #[test]
    fn a_query_past_its_deadline_stops_with_the_time_budget_in_both_tiers() {
        let events = [event(1_000, 1, "/", "DE"), event(DAY_MS + 1_000, 2, "/", "FR")];
        let (store, path) = store_with("deadline", &events);
        let request: QueryRequest = serde_json::from_str(
            r#"{"site_id":"a.com","metrics":["visitors"],"date_range":["1970-01-01","1970-01-02"]}"#,
        )
        .expect("request");
        let now: Timestamp = "1970-01-03T12:00:00Z".parse().expect("now");
        let query = Query::resolve(&request, &TimeZone::UTC, now).expect("valid query");
        let spent = WorkBudget { deadline: std::time::Instant::now(), seconds: 7, max_groups: 10 };
        std::thread::sleep(std::time::Duration::from_millis(2));
        let segments = store.segments_for(&query.site, query.buckets.clone()).expect("segments");
        for outcome in
            [execute_segments(&segments, &query, &spent), crate::query::execute_rollups(&store, &query, &spent)]
        {
            let error = outcome.expect_err("out of time");
            assert_eq!(error.downcast_ref::<OverBudget>(), Some(&OverBudget::time(7)), "{error:#}");
        }
        remove(&path);
    }

    #[test]
    fn an_empty_range_answers_zeros() {
        let (store, path) = store_with("empty", &[]);
        let rows = run(&store, r#"{"site_id":"a.com","metrics":["visitors","bounce_rate"],"date_range":"day"}"#);
        assert_eq!(rows, vec![Row { metrics: vec![json!(0), json!(0)], dimensions: vec![] }]);
        remove(&path);
    }
}
