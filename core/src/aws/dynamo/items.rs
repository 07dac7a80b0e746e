//! The key design of the aggregate table and the updates a flush makes to it.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | cell counters | `c|{site}|{local day}|{region}|{sub}` | `{bucket:012}|{cell id:016x}` |
//! | drop count | `d|{site}|{region}|{sub}` | reason |
//! | visitor sketch | `v|{site}|{local day}|{region}|{sub}` | `{bucket:012}` |
//!
//! Region and sub-partition are the item's writer lineage: at any moment one consumer (the
//! holder of the shard that carries `site#sub` in that region) writes it, so Global Tables'
//! last-writer-wins never meets two concurrent writers. A day's cells of one lineage share a
//! partition, so a query reads one partition per (day, region, sub-partition).

use crate::pipeline::flush::Flush;
use serde::{Deserialize, Serialize};
use tally_model::reject::DropReason;
use tally_model::rollup::{Bucket, CellKey, Counters};

/// A stable 64-bit id of a cell key (SipHash-1-3 with a fixed key of postcard bytes).
pub fn cell_id(key: &CellKey) -> u64 {
    use std::hash::Hasher;
    let mut hasher = siphasher::sip::SipHasher13::new_with_keys(0x7461_6c6c_795f_6365, 0x6c6c_5f69_645f_7631);
    hasher.write(&postcard::to_allocvec(key).unwrap_or_default());
    hasher.finish()
}

/// One change a flush makes to the aggregate table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// Counter deltas of one cell.
    Cell {
        /// The site.
        site: String,
        /// The site's sub-partition (lineage).
        sub: u16,
        /// The local hour.
        bucket: Bucket,
        /// The cell's dimension values.
        key: Box<CellKey>,
        /// The deltas.
        counters: Counters,
    },
    /// Visitor ids seen in one hour of one lineage, to add to its distinct-count sketch.
    Visitors {
        /// The site.
        site: String,
        /// The site's sub-partition (lineage).
        sub: u16,
        /// The local hour.
        bucket: Bucket,
        /// The visitor ids, sorted, each once.
        ids: Vec<u64>,
    },
    /// Drop count deltas.
    Drop {
        /// The site, or "" for drops that name none.
        site: String,
        /// Why.
        reason: DropReason,
        /// How many.
        count: u64,
    },
}

impl Update {
    /// The item's `pk` and `sk` in `region`.
    pub fn key(&self, region: &str) -> (String, String) {
        match self {
            Update::Cell { site, sub, bucket, key, .. } => (
                format!("c|{site}|{}|{region}|{sub}", bucket.div_euclid(24)),
                format!("{bucket:012}|{:016x}", cell_id(key)),
            ),
            Update::Visitors { site, sub, bucket, .. } => {
                (format!("v|{site}|{}|{region}|{sub}", bucket.div_euclid(24)), format!("{bucket:012}"))
            }
            Update::Drop { site, reason, .. } => (format!("d|{site}|{region}|0"), reason.as_str().to_owned()),
        }
    }
}

/// The counters stored in a cell item (attributes `ev`, `pv`, `vi`, `bo`, `du`, `vp`, as
/// `apply` adds them; a missing attribute is zero).
pub fn counters_of(item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> Counters {
    let n = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    Counters {
        events: n("ev"),
        pageviews: n("pv"),
        visits: n("vi"),
        bounces: n("bo"),
        duration_ms: n("du"),
        visit_pageviews: n("vp"),
    }
}

/// The updates of a flush, in a stable order. Visits are not among them: they are the shard
/// worker's state, kept in snapshots (see `snapshots`).
pub fn updates(flush: &Flush) -> Vec<Update> {
    let mut out = Vec::new();
    for ((site, sub), rollup) in &flush.rollups {
        for ((bucket, key), counters) in &rollup.cells {
            out.push(Update::Cell {
                site: site.clone(),
                sub: *sub,
                bucket: *bucket,
                key: Box::new(key.clone()),
                counters: *counters,
            });
        }
    }
    for ((site, sub), rollup) in &flush.rollups {
        let mut by_bucket: std::collections::BTreeMap<Bucket, Vec<u64>> = std::collections::BTreeMap::new();
        for (bucket, _, visitor) in &rollup.visitors {
            by_bucket.entry(*bucket).or_default().push(*visitor);
        }
        for (bucket, mut ids) in by_bucket {
            ids.sort_unstable();
            ids.dedup();
            out.push(Update::Visitors { site: site.clone(), sub: *sub, bucket, ids });
        }
    }
    for ((site, reason), count) in &flush.drops {
        out.push(Update::Drop { site: site.clone(), reason: *reason, count: *count });
    }
    out.sort_by_cached_key(|u| u.key(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_snapshots() {
        // Stored items are found by these keys: a change here orphans every stored item.
        let cell = Update::Cell {
            site: "a.com".into(),
            sub: 2,
            bucket: 490_000,
            key: Box::default(),
            counters: Counters::default(),
        };
        assert_eq!(
            cell.key("eu-west-1"),
            ("c|a.com|20416|eu-west-1|2".into(), format!("000000490000|{:016x}", cell_id(&CellKey::default())))
        );
        let drop = Update::Drop { site: String::new(), reason: DropReason::Bot, count: 1 };
        assert_eq!(drop.key("us-east-1"), ("d||us-east-1|0".into(), "bot".into()));
    }
}
