//! Segment rows: what events contribute to the columnar tier (tier 2), dictionary-encoded as they
//! are added.
//!
//! An event adds one *event row* (its bucket, visitor id and cell key: its own name, hostname and
//! page, its visit's other dimensions, with its event counters), and, when it changes its visit,
//! one *visit row* (the visit's start bucket and entry cell, with the visit counters' change).
//! Rows with the same (bucket, visitor, dimension values) are one row with summed counters, which
//! changes no answer: every answer sums counters and counts distinct visitors among the rows with
//! `events > 0` (a visit row never adds a visitor, as in the cells it replaces).

use crate::dimension::Dimension;
use crate::rollup::{Bucket, CellKey, Counters};
use crate::session::Contribution;

type Fast = foldhash::fast::FixedState;
type HashMap<K, V> = hashbrown::HashMap<K, V, Fast>;

/// How many dimension columns a row has: one per cell dimension, in [`Dimension::CELL`] order,
/// then [`PROPS`].
pub const DIMENSIONS: usize = Dimension::CELL.len() + 1;

/// The column of an event's custom props: its prop set as [`crate::props::set_text`] writes it
/// (`""` for events without props and for visit rows).
pub const PROPS: usize = Dimension::CELL.len();

/// A row's identity: bucket, visitor id and the dictionary code of each dimension value.
pub type RowId = (Bucket, u64, [u32; DIMENSIONS]);

/// The column of a cell dimension (its index in [`Dimension::CELL`]). The exit dimensions have no
/// column: the query planner never sends them to the segments.
pub fn column_of(dimension: Dimension) -> usize {
    Dimension::CELL.iter().position(|(d, _)| *d == dimension).unwrap_or(PROPS)
}

/// The distinct values of one column, each with its code (its index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dictionary {
    /// Values by code.
    pub values: Vec<String>,
    codes: HashMap<String, u32>,
}

impl Dictionary {
    /// The code of `value`, adding it if new.
    pub fn code(&mut self, value: &str) -> u32 {
        if let Some(&code) = self.codes.get(value) {
            return code;
        }
        let code = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value.to_owned());
        self.codes.insert(value.to_owned(), code);
        code
    }
}

/// The segment rows of one site, as one flush produces them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentRows {
    /// One dictionary per dimension column.
    pub dictionaries: [Dictionary; DIMENSIONS],
    /// Counters per row.
    pub rows: HashMap<RowId, Counters>,
}

impl SegmentRows {
    /// Adds what one event with the prop set `props` ([`crate::props::set_text`]) contributes.
    pub fn add(&mut self, c: &Contribution, props: &str) {
        self.add_row(c.bucket, c.visitor, &c.key, props, &c.counters);
        if !c.visit.is_zero() {
            self.add_row(c.visit_bucket, c.visitor, &c.entry, "", &c.visit);
        }
    }

    /// Adds counters to the row of (bucket, visitor, key, prop set).
    pub fn add_row(&mut self, bucket: Bucket, visitor: u64, key: &CellKey, props: &str, counters: &Counters) {
        let mut codes = [0u32; DIMENSIONS];
        for (i, (dimension, _)) in Dimension::CELL.iter().enumerate() {
            codes[i] = self.dictionaries[i].code(dimension.value(key));
        }
        codes[PROPS] = self.dictionaries[PROPS].code(props);
        self.add_codes((bucket, visitor, codes), counters);
    }

    /// Adds counters to a row given by its codes into [`SegmentRows::dictionaries`].
    pub fn add_codes(&mut self, row: RowId, counters: &Counters) {
        self.rows.entry(row).or_default().add(counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::Rollup;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// A cell key's values, one per dimension column (no props).
    fn values(key: &CellKey) -> Vec<String> {
        let mut values: Vec<String> = Dimension::CELL.iter().map(|(d, _)| d.value(key).to_owned()).collect();
        values.push(String::new());
        values
    }

    fn arb_contribution() -> impl Strategy<Value = Contribution> {
        let key = ("[ab]", "[xy]", "[DF]").prop_map(|(page, source, country)| CellKey {
            page,
            source,
            country,
            ..CellKey::default()
        });
        let visit =
            (0i64..2, -1i64..2, 0i64..50, 0i64..2).prop_map(|(visits, bounces, duration_ms, visit_pageviews)| {
                Counters { visits, bounces, duration_ms, visit_pageviews, ..Counters::default() }
            });
        (0i64..3, 0u64..3, key.clone(), 0i64..2, 0i64..3, key, visit).prop_map(
            |(bucket, visitor, key, pageviews, visit_bucket, entry, visit)| Contribution {
                bucket,
                key,
                counters: Counters { events: 1, pageviews, ..Counters::default() },
                visitor,
                visit_bucket,
                entry,
                visit,
                exit: crate::session::Exit::default(),
                exit_moved: None,
                start_visitor: visitor,
            },
        )
    }

    proptest! {
        /// Grouped by any cell, segment rows give the cells' counters and visitors: the segments
        /// answer exactly what the cells they replace answered.
        #[test]
        fn rows_sum_to_the_cells(contributions in proptest::collection::vec(arb_contribution(), 0..30)) {
            let mut rows = SegmentRows::default();
            let mut cells = Rollup::default();
            for c in &contributions {
                rows.add(c, "");
                cells.add_contribution(c);
            }
            let mut counters: BTreeMap<(Bucket, Vec<String>), Counters> = BTreeMap::new();
            let mut visitors: BTreeSet<(Bucket, Vec<String>, u64)> = BTreeSet::new();
            for (&(bucket, visitor, codes), c) in &rows.rows {
                let key: Vec<String> = (0..DIMENSIONS).map(|i| rows.dictionaries[i].values[codes[i] as usize].clone()).collect();
                counters.entry((bucket, key.clone())).or_default().add(c);
                if c.events > 0 {
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
