//! Segment rows: what events contribute to the columnar tier (tier 2), dictionary-encoded as they
//! are added.
//!
//! An event adds one *event row* (its bucket, visitor id, visit id and cell key: its own name,
//! hostname and page, its visit's other dimensions, with its event counters), and, when it
//! changes its visit, one *visit row* (the visit's start bucket and entry cell, with the visit
//! counters' change). The visit id ([`visit_id`]) tells which events and visit rows belong to one
//! visit, so that queries can count the visits that contain an event (Plausible's meaning of
//! `visits` filtered or grouped by an event's page or name, and of `has_done`).
//! Rows with the same identity ([`RowId`]: bucket, visitor, visit, second, scroll depth, dimension
//! values) are one row with summed counters, which
//! changes no answer: every answer sums counters and counts distinct visitors among the rows with
//! `events > 0` (a visit row never adds a visitor, as in the cells it replaces).
//!
//! An engagement event adds an *engagement row* ([`SegmentRows::add_engagement`]): no counters,
//! only what it measured ([`EngagementSums`]), which the `scroll_depth` and `time_on_page`
//! metrics read.
//!
//! An event with revenue has its currency in the [`CURRENCY`] column and its amount in the row's
//! `revenue_micros`; since the currency is part of the row's identity, a row's revenue is in one
//! currency and its `events` are the events that carried it.

use crate::dimension::Dimension;
use crate::event::Engagement;
use crate::money::Money;
use crate::rollup::{Bucket, Counters};
use crate::session::Contribution;

type Fast = foldhash::fast::FixedState;
type HashMap<K, V> = hashbrown::HashMap<K, V, Fast>;

/// How many dimension columns a row has: one per cell dimension, in [`Dimension::CELL`] order,
/// then [`PROPS`] and [`CURRENCY`].
pub const DIMENSIONS: usize = Dimension::CELL.len() + 2;

/// The column of an event's custom props: its prop set as [`crate::props::set_text`] writes it
/// (`""` for events without props and for visit rows).
pub const PROPS: usize = Dimension::CELL.len();

/// The column of an event's revenue currency (`""` for events without revenue and visit rows).
pub const CURRENCY: usize = Dimension::CELL.len() + 1;

/// The sums a row carries: its counters, its revenue in micro-units of its currency, and what
/// engagement events measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSums {
    /// Event and visit counters.
    pub counters: Counters,
    /// Revenue in micro-units of the row's [`CURRENCY`] (0 without one).
    pub revenue_micros: i128,
    /// What its engagement events measured (only engagement rows have any).
    pub engagement: EngagementSums,
}

impl Default for RowSums {
    fn default() -> RowSums {
        RowSums { counters: Counters::default(), revenue_micros: 0, engagement: EngagementSums::NONE }
    }
}

impl RowSums {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &RowSums) {
        self.counters.add(&other.counters);
        self.revenue_micros += other.revenue_micros;
        self.engagement.add(&other.engagement);
    }
}

/// What a row's engagement events measured: how many there were, their engaged time, and the
/// deepest scroll any of them reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngagementSums {
    /// Engagement events.
    pub events: i64,
    /// Their engaged time, summed, in milliseconds.
    pub engaged_ms: i64,
    /// The greatest scroll depth they reported, percent; -1 when none reported one.
    pub max_scroll_depth: i64,
}

impl EngagementSums {
    /// No engagement events.
    pub const NONE: EngagementSums = EngagementSums { events: 0, engaged_ms: 0, max_scroll_depth: -1 };

    /// Adds `other` into `self` (sums, and the greater scroll depth).
    pub fn add(&mut self, other: &EngagementSums) {
        self.events += other.events;
        self.engaged_ms += other.engaged_ms;
        self.max_scroll_depth = self.max_scroll_depth.max(other.max_scroll_depth);
    }
}

/// A row's identity: rows with the same identity are one row, their sums added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowId {
    /// The local hour.
    pub bucket: Bucket,
    /// The visitor id it counts under.
    pub visitor: u64,
    /// Its visit's id ([`visit_id`]).
    pub visit: u64,
    /// For event and engagement rows, the second its events arrived in (Unix seconds): a
    /// visit's events merge only within one second, so the rows keep the order of a visitor's
    /// events (funnels read it, to the second, as Plausible orders them). For visit rows, the
    /// second the visit started, the same for all of a visit's changes.
    pub second: i64,
    /// An engagement row's reported scroll depth, percent (-1: none reported, and every other
    /// row): engagement events merge only with equal depths, so a scroll-depth threshold counts
    /// exactly the events that reached it.
    pub depth: i8,
    /// The dictionary code of each dimension value.
    pub codes: [u32; DIMENSIONS],
}

/// The second (Unix seconds) an instant in ms falls in.
pub fn second_of(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// The id of the visit that `start_visitor` started at `started_ms` (a visit's identity, as
/// [`Contribution::visit_key`] gives it), mixed into 64 bits: the same on every flush and
/// process, distinct for distinct visits but with a chance of about 2⁻⁶⁴ a pair.
pub fn visit_id(start_visitor: u64, started_ms: i64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        // SplitMix64's finaliser.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    mix(start_visitor ^ mix(started_ms as u64).rotate_left(17))
}

/// The column of a cell dimension (its index in [`Dimension::CELL`]). The exit dimensions have no
/// column: the query planner never sends them to the segments.
pub fn column_of(dimension: Dimension) -> usize {
    Dimension::CELL.iter().position(|(d, _)| *d == dimension).unwrap_or(PROPS)
}

/// The distinct values of one column, each with its code (its index).
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    /// Values by code.
    pub values: Vec<String>,
    /// The code of each value (a table of codes hashed by their value: each value is kept once).
    codes: hashbrown::HashTable<u32>,
}

/// Two dictionaries are equal when they hold the same values under the same codes.
impl PartialEq for Dictionary {
    fn eq(&self, other: &Dictionary) -> bool {
        self.values == other.values
    }
}

impl Eq for Dictionary {}

fn value_hash(value: &str) -> u64 {
    use std::hash::BuildHasher;
    Fast::default().hash_one(value)
}

impl Dictionary {
    /// The code of `value`, adding it if new.
    pub fn code(&mut self, value: &str) -> u32 {
        let values = &mut self.values;
        let entry =
            self.codes.entry(value_hash(value), |&c| values[c as usize] == value, |&c| value_hash(&values[c as usize]));
        *entry
            .or_insert_with(|| {
                values.push(value.to_owned());
                u32::try_from(values.len() - 1).unwrap_or(u32::MAX)
            })
            .get()
    }
}

/// The segment rows of one site, as one flush produces them.
#[derive(Debug, Clone, Default)]
pub struct SegmentRows {
    /// One dictionary per dimension column.
    pub dictionaries: [Dictionary; DIMENSIONS],
    /// Sums per row.
    pub rows: HashMap<RowId, RowSums>,
    /// The codes of each visit's entry cell, per [`Contribution::visit_key`]: a visit's rows
    /// share all but their own name, hostname and page, so its values are looked up once.
    visits: HashMap<(u64, i64), [u32; Dimension::CELL.len()]>,
}

/// Two sets of rows are equal when their dictionaries and rows are.
impl PartialEq for SegmentRows {
    fn eq(&self, other: &SegmentRows) -> bool {
        self.dictionaries == other.dictionaries && self.rows == other.rows
    }
}

impl Eq for SegmentRows {}

impl SegmentRows {
    /// Adds what one event with the prop set `props` ([`crate::props::set_text`]) and revenue
    /// `money` contributes: its event row (bucket, visitor, its cell's values, prop set,
    /// currency) and, if it changed its visit, the visit's row.
    pub fn add(&mut self, c: &Contribution<'_>, props: &str, money: Option<Money>) {
        let revenue = money.map_or(0, |m| i128::from(m.micros));
        let currency = money.as_ref().map_or("", |m| m.currency.as_str());
        let entry = self.entry_codes(c);
        let mut codes = [0u32; DIMENSIONS];
        for (i, (dimension, _)) in Dimension::CELL.iter().enumerate() {
            codes[i] = if dimension.is_event_own() { self.dictionaries[i].code(c.value(*dimension)) } else { entry[i] };
        }
        codes[PROPS] = self.dictionaries[PROPS].code(props);
        codes[CURRENCY] = self.dictionaries[CURRENCY].code(currency);
        let visit = visit_id(c.start_visitor, c.visit_started_ms);
        let event_row =
            RowId { bucket: c.bucket, visitor: c.visitor, visit, second: second_of(c.at_ms), depth: -1, codes };
        self.add_codes(
            event_row,
            &RowSums { counters: c.counters, revenue_micros: revenue, engagement: EngagementSums::NONE },
        );
        if !c.visit.is_zero() {
            codes[..entry.len()].copy_from_slice(&entry);
            codes[PROPS] = self.dictionaries[PROPS].code("");
            codes[CURRENCY] = self.dictionaries[CURRENCY].code("");
            let visit_row = RowId {
                bucket: c.visit_bucket,
                visitor: c.visitor,
                visit,
                second: second_of(c.visit_started_ms),
                depth: -1,
                codes,
            };
            self.add_codes(
                visit_row,
                &RowSums { counters: c.visit, revenue_micros: 0, engagement: EngagementSums::NONE },
            );
        }
    }

    /// Adds one engagement event of the visit `visit` (which it changes in nothing): an
    /// *engagement row* of its bucket, visitor, visit and cell (named [`crate::event::ENGAGEMENT`], with its own
    /// hostname, page and prop set, its visit's other values) that has no counters, only
    /// [`EngagementSums`]. `c` is what the visit's events contribute, with the engagement's own
    /// bucket, name, hostname and page.
    pub fn add_engagement(&mut self, c: &Contribution<'_>, props: &str, engagement: &Engagement) {
        let entry = self.entry_codes(c);
        let mut codes = [0u32; DIMENSIONS];
        for (i, (dimension, _)) in Dimension::CELL.iter().enumerate() {
            codes[i] = if dimension.is_event_own() { self.dictionaries[i].code(c.value(*dimension)) } else { entry[i] };
        }
        codes[PROPS] = self.dictionaries[PROPS].code(props);
        codes[CURRENCY] = self.dictionaries[CURRENCY].code("");
        let sums = EngagementSums {
            events: 1,
            engaged_ms: i64::from(engagement.engaged_ms),
            max_scroll_depth: engagement.scroll_depth.map_or(-1, i64::from),
        };
        let row = RowId {
            bucket: c.bucket,
            visitor: c.visitor,
            visit: visit_id(c.start_visitor, c.visit_started_ms),
            second: second_of(c.at_ms),
            depth: engagement.scroll_depth.map_or(-1, |d| i8::try_from(d).unwrap_or(i8::MAX)),
            codes,
        };
        self.add_codes(row, &RowSums { counters: Counters::default(), revenue_micros: 0, engagement: sums });
    }

    /// The codes of the entry cell of the visit of `c`, looked up on its first event here.
    fn entry_codes(&mut self, c: &Contribution<'_>) -> [u32; Dimension::CELL.len()] {
        if let Some(known) = self.visits.get(&c.visit_key()) {
            return *known;
        }
        let mut codes = [0u32; Dimension::CELL.len()];
        for (i, (dimension, _)) in Dimension::CELL.iter().enumerate() {
            codes[i] = self.dictionaries[i].code(dimension.value(c.entry));
        }
        self.visits.insert(c.visit_key(), codes);
        codes
    }

    /// Adds sums to a row given by its codes into [`SegmentRows::dictionaries`].
    pub fn add_codes(&mut self, row: RowId, sums: &RowSums) {
        self.rows.entry(row).or_default().add(sums);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{CellKey, Rollup};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// A cell key's values, one per dimension column (no props).
    fn values(key: &CellKey) -> Vec<String> {
        let mut values: Vec<String> = Dimension::CELL.iter().map(|(d, _)| d.value(key).to_owned()).collect();
        values.extend([String::new(), String::new()]);
        values
    }

    /// What a contribution borrows, owned: bucket, visitor, the event's own page, page views,
    /// visit bucket, entry cell (the event's other values), visit change.
    type Owned = (Bucket, u64, String, i64, Bucket, CellKey, Counters);

    fn arb_contribution() -> impl Strategy<Value = Owned> {
        let entry = ("[ab]", "[xy]", "[DF]").prop_map(|(page, source, country)| CellKey {
            page,
            source,
            country,
            ..CellKey::default()
        });
        let visit =
            (0i64..2, -1i64..2, 0i64..50, 0i64..2).prop_map(|(visits, bounces, duration_ms, visit_pageviews)| {
                Counters { visits, bounces, duration_ms, visit_pageviews, ..Counters::default() }
            });
        (0i64..3, 0u64..3, "[ab]", 0i64..2, 0i64..3, entry, visit)
    }

    /// When the visit of an entry cell and start bucket started: one visit per (visitor, entry,
    /// start bucket), as a visit's events share its entry cell.
    fn started_ms(entry: &CellKey, visit_bucket: Bucket) -> i64 {
        let bit = |on: bool| i64::from(on);
        visit_bucket * 8 + bit(entry.page == "b") * 4 + bit(entry.source == "y") * 2 + bit(entry.country == "F")
    }

    /// The contribution of an owned one.
    fn contribution<'a>(owned: &'a Owned, exit: &'a crate::session::Exit) -> Contribution<'a> {
        let (bucket, visitor, page, pageviews, visit_bucket, entry, visit) = owned;
        Contribution {
            bucket: *bucket,
            name: &entry.name,
            hostname: &entry.hostname,
            page,
            counters: Counters { events: 1, pageviews: *pageviews, ..Counters::default() },
            visitor: *visitor,
            visit_bucket: *visit_bucket,
            entry,
            visit: *visit,
            exit,
            exit_moved: None,
            start_visitor: *visitor,
            visit_started_ms: started_ms(entry, *visit_bucket),
            at_ms: *bucket * 3_600_000,
        }
    }

    proptest! {
        /// Grouped by any cell, segment rows give the cells' counters and visitors: the segments
        /// answer exactly what the cells they replace answered.
        #[test]
        fn rows_sum_to_the_cells(contributions in proptest::collection::vec(arb_contribution(), 0..30)) {
            let mut rows = SegmentRows::default();
            let mut cells = Rollup::default();
            let exit = crate::session::Exit::default();
            for owned in &contributions {
                let c = contribution(owned, &exit);
                rows.add(&c, "", None);
                cells.add_contribution(&c);
            }
            let mut counters: BTreeMap<(Bucket, Vec<String>), Counters> = BTreeMap::new();
            let mut visitors: BTreeSet<(Bucket, Vec<String>, u64)> = BTreeSet::new();
            for (&RowId { bucket, visitor, codes, .. }, c) in &rows.rows {
                let key: Vec<String> = (0..DIMENSIONS).map(|i| rows.dictionaries[i].values[codes[i] as usize].clone()).collect();
                counters.entry((bucket, key.clone())).or_default().add(&c.counters);
                if c.counters.events > 0 {
                    visitors.insert((bucket, key, visitor));
                }
            }
            let cell_counters: BTreeMap<_, _> = cells.cells.iter().map(|((b, k), c)| ((*b, values(k)), *c)).collect();
            let cell_visitors: BTreeSet<_> = cells.visitors.iter().map(|(b, k, v)| (*b, values(k), *v)).collect();
            prop_assert_eq!(counters, cell_counters);
            prop_assert_eq!(visitors, cell_visitors);
        }
    }
}
