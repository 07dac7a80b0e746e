//! Tier 1 in the embedded store: writing per-dimension rollup deltas into the active generation
//! (a row that nets to zero is removed), and reading one breakdown of a site over a period range.

use super::keys::{FIRST_GENERATION, GENERATIONS, PROP_OVERFLOW, PROP_ROWS, ROLLUPS, rollup_key, rollup_range};
use super::{Store, decode_tallies};
use crate::pipeline::flush::Flush;
use redb::{ReadableTable, WriteTransaction};
use std::collections::HashMap;
use tally_model::breakdown::{Grain, RowKey, Slot, Tallies, day_of};
use tally_model::props::{MAX_PROP_ROWS_PER_DAY, row_name};

/// Adds a flush's rollup deltas to the rows of each day's active generation. A prop row that is
/// new on its day is kept only while the day holds fewer than [`MAX_PROP_ROWS_PER_DAY`]; past
/// that its name is marked overflowed for the day ([`PROP_OVERFLOW`]).
pub(super) fn add(txn: &WriteTransaction, flush: &Flush) -> anyhow::Result<()> {
    let mut table = txn.open_table(ROLLUPS)?;
    let generations = txn.open_table(GENERATIONS)?;
    let mut prop_rows = txn.open_table(PROP_ROWS)?;
    let mut overflow = txn.open_table(PROP_OVERFLOW)?;
    let mut active: HashMap<(&str, i64), u32> = HashMap::new();
    for ((site, _), breakdown) in &flush.breakdowns {
        // Day rows before hour rows, so that a prop's day row decides for its hour rows.
        let days = breakdown.rows().filter(|(row, _)| row.grain == Grain::Day);
        let hours = breakdown.rows().filter(|(row, _)| row.grain == Grain::Hour);
        for (row, delta) in days.chain(hours) {
            let day = match row.grain {
                Grain::Hour => day_of(row.at),
                Grain::Day => row.at,
            };
            let generation = match active.get(&(site.as_str(), day)) {
                Some(g) => *g,
                None => {
                    let g = generations.get((site.as_str(), day))?.map_or(FIRST_GENERATION, |v| v.value());
                    active.insert((site.as_str(), day), g);
                    g
                }
            };
            let key = rollup_key(site, generation, &row);
            let old = table.get(key)?.map(|v| decode_tallies(v.value())).transpose()?;
            if row.slot == Slot::Props && old.is_none() {
                let day_key = rollup_key(site, generation, &RowKey { grain: Grain::Day, at: day, ..row });
                let admitted = match row.grain {
                    // A new hour row of a prop whose day row exists (or was just admitted).
                    Grain::Hour => table.get(day_key)?.is_some(),
                    Grain::Day => {
                        let held = prop_rows.get((site.as_str(), generation, day))?.map_or(0, |v| v.value());
                        let admitted = held < MAX_PROP_ROWS_PER_DAY;
                        if admitted {
                            prop_rows.insert((site.as_str(), generation, day), held + 1)?;
                        }
                        admitted
                    }
                };
                if !admitted {
                    overflow.insert((site.as_str(), generation, day, row_name(row.value).unwrap_or_default()), ())?;
                    continue;
                }
            }
            let mut tallies = old.unwrap_or_default();
            tallies.add(delta);
            if tallies.is_zero() {
                // Nothing left (an exit row whose visits moved on): no row, no answer row.
                table.remove(key)?;
            } else {
                table.insert(key, postcard::to_allocvec(&tallies)?.as_slice())?;
            }
        }
    }
    Ok(())
}

/// Reading tier 1: one breakdown of a site over a period range.
pub trait RollupRead {
    /// Whether prop `name` passed the prop-row cap on any local day of `first_day..=last_day`
    /// (then its rollup rows there are incomplete: the segments answer).
    fn props_overflowed(&self, site: &str, name: &str, first_day: i64, last_day: i64) -> anyhow::Result<bool>;

    /// Calls `visit(at, value, tallies)` for every row of `slot` at `grain` with `at` in
    /// `first..=last` (hour buckets or local days), each from its day's active generation.
    fn rollup_rows(
        &self,
        site: &str,
        grain: Grain,
        slot: Slot,
        first: i64,
        last: i64,
        visit: &mut dyn FnMut(i64, &str, &Tallies),
    ) -> anyhow::Result<()>;
}

impl Store {
    /// The site's first local day with rollups in any generation (`None`: none yet).
    pub fn first_day(&self, site: &str) -> anyhow::Result<Option<i64>> {
        let txn = self.db.read()?;
        let generations = txn.open_table(GENERATIONS)?;
        let mut in_use = std::collections::BTreeSet::from([FIRST_GENERATION]);
        for item in generations.range((site, i64::MIN)..=(site, i64::MAX))? {
            in_use.insert(item?.1.value());
        }
        let table = txn.open_table(ROLLUPS)?;
        let (day, total) = (Grain::Day.code(), Slot::Total.code());
        let mut first: Option<i64> = None;
        for generation in in_use {
            let range = (site, generation, day, total, i64::MIN, "")..=(site, generation, day, total, i64::MAX, "");
            if let Some(item) = table.range(range)?.next() {
                let at = item?.0.value().4;
                first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        Ok(first)
    }
}

impl RollupRead for Store {
    fn props_overflowed(&self, site: &str, name: &str, first_day: i64, last_day: i64) -> anyhow::Result<bool> {
        let runs = self.generation_runs(site, first_day, last_day)?;
        let txn = self.db.read()?;
        let table = txn.open_table(PROP_OVERFLOW)?;
        for (from_day, to_day, generation) in runs {
            for day in from_day..=to_day {
                if table.get((site, generation, day, name))?.is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn rollup_rows(
        &self,
        site: &str,
        grain: Grain,
        slot: Slot,
        first: i64,
        last: i64,
        visit: &mut dyn FnMut(i64, &str, &Tallies),
    ) -> anyhow::Result<()> {
        let day = |at: i64| if grain == Grain::Hour { day_of(at) } else { at };
        // Runs of consecutive days that read the same generation, each one contiguous scan.
        let runs = self.generation_runs(site, day(first), day(last))?;
        let txn = self.db.read()?;
        let table = txn.open_table(ROLLUPS)?;
        for (from_day, to_day, generation) in runs {
            let (lo, hi) = match grain {
                Grain::Hour => (first.max(from_day * 24), last.min(to_day * 24 + 23)),
                Grain::Day => (from_day, to_day),
            };
            for item in table.range(rollup_range(site, generation, grain, slot, lo, hi))? {
                let (key, value) = item?;
                let (_, _, _, _, at, text) = key.value();
                visit(at, text, &decode_tallies(value.value())?);
            }
        }
        Ok(())
    }
}
