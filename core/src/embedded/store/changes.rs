//! Which local days of which site each applied flush changed, in memory: the answer cache keys an
//! answer by the last change to the days it covers, so that answers over closed days stay cached
//! while live traffic changes today.

use crate::pipeline::flush::Flush;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{PoisonError, RwLock};
use tally_model::breakdown::Grain;

/// Per site and local day (days since 1970-01-01): the log offset of the last flush that
/// changed it since the store was opened.
#[derive(Debug, Default)]
pub struct Changes {
    days: RwLock<HashMap<String, BTreeMap<i64, u64>>>,
}

impl Changes {
    /// Records the days `flush`, applied up to log offset `offset`, changed: every day one of
    /// its rollup rows or segment rows falls on (a visit that goes on changes the day it began;
    /// engagement events change segment rows only).
    pub fn note(&self, flush: &Flush, offset: u64) {
        // The distinct days first, outside the lock.
        let rollups = flush.breakdowns.iter().map(|((site, _), breakdown)| {
            let changed = breakdown
                .rows()
                .map(|(key, _)| if key.grain == Grain::Hour { key.at.div_euclid(24) } else { key.at })
                .collect::<BTreeSet<i64>>();
            (site.as_str(), changed)
        });
        let segments = flush.segments.iter().map(|((site, _), rows)| {
            let changed = rows.rows.keys().map(|row| row.bucket.div_euclid(24)).collect::<BTreeSet<i64>>();
            (site.as_str(), changed)
        });
        let touched: Vec<(&str, BTreeSet<i64>)> = rollups.chain(segments).collect();
        let mut days = self.days.write().unwrap_or_else(PoisonError::into_inner);
        for (site, changed) in touched {
            if !days.contains_key(site) {
                days.insert(site.to_owned(), BTreeMap::new());
            }
            let Some(stamps) = days.get_mut(site) else { continue };
            for day in changed {
                stamps.insert(day, offset);
            }
        }
    }

    /// The offset of the last change to `site`'s days `first..=last` since the store was
    /// opened (0: none).
    pub fn last_change(&self, site: &str, first: i64, last: i64) -> u64 {
        let days = self.days.read().unwrap_or_else(PoisonError::into_inner);
        days.get(site).map_or(0, |stamps| stamps.range(first..=last).map(|(_, at)| *at).max().unwrap_or(0))
    }
}
