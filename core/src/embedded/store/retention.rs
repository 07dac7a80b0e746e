//! Aggregate retention: deleting a site's rollups, prop bookkeeping, generation switches and
//! persisted segment files of the local days before a cutoff, one site per transaction.

use super::Store;
use super::keys::{FIRST_GENERATION, GENERATIONS, PROP_OVERFLOW, PROP_ROWS, ROLLUPS};
use redb::ReadableTable;
use std::cell::Cell;
use std::collections::BTreeSet;
use tally_model::breakdown::Grain;

impl Store {
    /// Deletes what `site` aggregated for local days before `before_day` (days since
    /// 1970-01-01); returns the rows and files deleted. Queries of later days answer as before:
    /// every row holds only its own hour or day.
    pub fn trim_aggregates(&self, site: &str, before_day: i64) -> anyhow::Result<usize> {
        let txn = self.db.begin_write()?;
        let deleted = Cell::new(0usize);
        {
            let mut generations = txn.open_table(GENERATIONS)?;
            let mut in_use: BTreeSet<u32> = BTreeSet::from([FIRST_GENERATION]);
            for item in generations.range((site, i64::MIN)..=(site, i64::MAX))? {
                in_use.insert(item?.1.value());
            }
            // Every row in a range goes; counting them on the way.
            let gone = || {
                deleted.set(deleted.get() + 1);
                false
            };
            generations.retain_in((site, i64::MIN)..(site, before_day), |_, _| gone())?;
            let mut rollups = txn.open_table(ROLLUPS)?;
            let mut prop_rows = txn.open_table(PROP_ROWS)?;
            let mut prop_overflow = txn.open_table(PROP_OVERFLOW)?;
            for &generation in &in_use {
                for (grain, before) in [(Grain::Hour, before_day.saturating_mul(24)), (Grain::Day, before_day)] {
                    for slot in 0..=u8::MAX {
                        let range = (site, generation, grain.code(), slot, i64::MIN, "")
                            ..(site, generation, grain.code(), slot, before, "");
                        rollups.retain_in(range, |_, _| gone())?;
                    }
                }
                prop_rows.retain_in((site, generation, i64::MIN)..(site, generation, before_day), |_, _| gone())?;
                prop_overflow
                    .retain_in((site, generation, i64::MIN, "")..(site, generation, before_day, ""), |_, _| gone())?;
            }
        }
        self.db.commit(txn)?;
        let deleted = deleted.get() + self.segments.trim_before(&self.db, site, before_day)?;
        if deleted > 0 {
            self.trims.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(deleted)
    }
}
