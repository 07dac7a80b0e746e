//! The key design of the aggregate table.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | rollup delta | `r\|{site}\|{gen}\|{region}\|{sub}\|d\|{local day}` | `{flush time s:012}\|{shard}\|{flush:020}\|{part:03}` | `rows`, `parts`, `ttl` |
//! | folded rollup | `r\|{site}\|{gen}\|{region}\|{sub}\|s\|{slot group}` | `{local day + 10⁶:07}\|{part:03}` | `rows`, `parts`, `upto` |
//! | drop count | `d\|{site}\|{region}\|0` | reason | `dropped`, `w_{shard}` |
//!
//! Region and sub-partition are the item's writer lineage (decision 6): at any moment one
//! consumer, the holder of the shard that carries `site#sub` in that region, writes it, so
//! Global Tables' last-writer-wins never meets two concurrent writers. `gen` is the generation of
//! the rows (decision 7; only the first exists until reprocessing comes).
//!
//! A flush writes one immutable **delta** per lineage and local day it touched: every row it
//! changed there, all breakdowns together, so a flush costs about one small item per site
//! instead of one per cell. Deltas expire (TTL) long after they are folded. A **fold** adds a
//! day's deltas into one item per slot group ([`slot_group`]) and day, which records the flush
//! time it holds deltas up to (`upto`): a reader takes the fold items of its slot's group for
//! the days of its range in one Query per lineage, and per day the deltas written after that
//! day's `upto`.
//! Reading an older fold item (eventual consistency, replication) only means reading more
//! deltas, never counting one twice.

use std::fmt::Write;
use tally_model::breakdown::Slot;
use tally_model::dimension::Dimension;

/// The generation of every row written (reprocessing, decision 7, will add others).
pub const GENERATION: u32 = 1;

/// The key prefix of a lineage's rollup items.
pub fn lineage_prefix(site: &str, region: &str, sub: u16) -> String {
    format!("r|{site}|{GENERATION}|{region}|{sub}")
}

/// The partition of a lineage's deltas of one local day.
pub fn delta_pk(site: &str, region: &str, sub: u16, day: i64) -> String {
    format!("{}|d|{day}", lineage_prefix(site, region, sub))
}

/// A delta part's sort key: written at `time_s` by flush `seq` of `shard`.
pub fn delta_sk(time_s: i64, shard: &str, seq: u64, part: usize) -> String {
    format!("{time_s:012}|{shard}|{seq:020}|{part:03}")
}

/// The smallest sort key of a delta written after `time_s`.
pub fn deltas_after(time_s: i64) -> String {
    format!("{:012}|", time_s.saturating_add(1).max(0))
}

/// The flush time, shard and flush number of a delta sort key (without its part).
pub fn delta_flush(sk: &str) -> Option<(i64, &str)> {
    let (head, _part) = sk.rsplit_once('|')?;
    Some((head.get(..12)?.parse().ok()?, head))
}

/// The group of a slot's folded rows: the slots whose values are many (pages, referrers, props,
/// places, campaigns) each have items of their own, the rest (few values each) share group 0,
/// so that folding a small site's day writes a few items, not one per slot, and reading one
/// breakdown reads little else.
pub fn slot_group(slot: Slot) -> u8 {
    match slot {
        Slot::Total => 0,
        Slot::Props => 1,
        Slot::Of(d) => match d {
            Dimension::Page => 2,
            Dimension::EntryPage => 3,
            Dimension::ExitPage | Dimension::ExitPageHostname => 4,
            Dimension::Referrer => 5,
            Dimension::UtmCampaign | Dimension::UtmContent | Dimension::UtmTerm => 6,
            Dimension::Region | Dimension::City => 7,
            _ => 0,
        },
    }
}

/// How many slot groups there are ([`slot_group`] gives 0 to this minus one).
pub const SLOT_GROUPS: u8 = 8;

/// The group of the slot with code `code` ([`Slot::code`]); 0 for a code no slot has.
pub fn group_of_code(code: u8) -> u8 {
    let slot = Slot::all().chain(std::iter::once(Slot::Props)).find(|s| s.code() == code);
    slot.map_or(0, slot_group)
}

/// The partition of a lineage's folded rows of one slot group.
pub fn fold_pk(site: &str, region: &str, sub: u16, group: u8) -> String {
    format!("{}|s|{group}", lineage_prefix(site, region, sub))
}

/// A fold part's sort key.
pub fn fold_sk(day: i64, part: usize) -> String {
    let mut sk = fold_day(day);
    let _ = write!(sk, "|{part:03}");
    sk
}

/// The sort-key prefix of a day's fold parts (days offset so that they sort as numbers).
pub fn fold_day(day: i64) -> String {
    format!("{:07}", day + 1_000_000)
}

/// The local day of a fold sort key.
pub fn fold_day_of(sk: &str) -> Option<i64> {
    Some(sk.get(..7)?.parse::<i64>().ok()? - 1_000_000)
}

/// The drop counts item of a site (or `""`) in a region.
pub fn drop_pk(site: &str, region: &str) -> String {
    format!("d|{site}|{region}|0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_snapshots() {
        // Stored items are found by these keys: a change here orphans every stored item.
        assert_eq!(delta_pk("a.com", "eu-west-1", 2, 20_416), "r|a.com|1|eu-west-1|2|d|20416");
        let sk = delta_sk(1_764_000_000, "shardId-000000000001", 7, 0);
        assert_eq!(sk, "001764000000|shardId-000000000001|00000000000000000007|000");
        assert_eq!(delta_flush(&sk), Some((1_764_000_000, "001764000000|shardId-000000000001|00000000000000000007")));
        assert!(
            deltas_after(1_763_999_999).as_str() <= sk.as_str() && sk.as_str() < deltas_after(1_764_000_000).as_str()
        );
        assert_eq!(fold_pk("a.com", "eu-west-1", 2, 3), "r|a.com|1|eu-west-1|2|s|3");
        assert_eq!(slot_group(Slot::Of(Dimension::Page)), 2);
        assert_eq!(slot_group(Slot::Of(Dimension::Country)), 0);
        assert_eq!(group_of_code(Slot::Props.code()), 1);
        assert_eq!(group_of_code(Slot::Of(Dimension::City).code()), 7);
        assert_eq!(fold_sk(20_416, 1), "1020416|001");
        assert_eq!(fold_day_of("1020416|001"), Some(20_416));
        assert_eq!(drop_pk("", "us-east-1"), "d||us-east-1|0");
    }
}
