//! Tier 1 in the embedded store: writing per-dimension rollup deltas into the active generation
//! (a row that nets to zero is removed), and reading one breakdown of a site over a period range.

use super::keys::{FIRST_GENERATION, GENERATIONS, ROLLUPS, rollup_key, rollup_range};
use super::{Store, decode_tallies};
use crate::flush::Flush;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use std::collections::HashMap;
use tally_model::breakdown::{Grain, Slot, Tallies, day_of};

/// Adds a flush's rollup deltas to the rows of each day's active generation.
pub(super) fn add(txn: &WriteTransaction, flush: &Flush) -> anyhow::Result<()> {
    let mut table = txn.open_table(ROLLUPS)?;
    let generations = txn.open_table(GENERATIONS)?;
    let mut active: HashMap<(&str, i64), u32> = HashMap::new();
    for ((site, _), breakdown) in &flush.breakdowns {
        for (row, delta) in breakdown.rows() {
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
            let mut tallies = match table.get(key)? {
                Some(old) => decode_tallies(old.value())?,
                None => Tallies::default(),
            };
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

impl RollupRead for Store {
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
        let txn = self.db.begin_read()?;
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
