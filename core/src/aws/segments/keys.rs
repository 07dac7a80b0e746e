//! The key layout of segment objects, used by writer, folder and reader alike.
//!
//! | object | key |
//! |---|---|
//! | a flush's rows of one lineage and local day | `seg/{site}/{gen}/{local day + 10⁶:07}/{region}/{sub}/d{flush time s:012}-{shard}-{flush:020}.parquet` |
//! | a fold of a lineage's day up to a flush time | `seg/{site}/{gen}/{local day + 10⁶:07}/{region}/{sub}/f{upto s:012}.parquet` |
//!
//! A day's objects of every lineage share one prefix (a reader lists them at once), and the days
//! of a site sort as numbers (its first day is the first common prefix under the site's).

use crate::aws::dynamo::items::{GENERATION, fold_day, fold_day_of};

/// The prefix of a site's segment objects.
pub fn site_prefix(site: &str) -> String {
    format!("seg/{site}/{GENERATION}/")
}

/// The prefix of a site's objects of one local day, every lineage.
pub fn day_prefix(site: &str, day: i64) -> String {
    format!("{}{}/", site_prefix(site), fold_day(day))
}

/// The prefix of one lineage's objects of one local day.
pub fn lineage_prefix(site: &str, day: i64, region: &str, sub: u16) -> String {
    format!("{}{region}/{sub}/", day_prefix(site, day))
}

/// The object of flush `seq` of `shard`, written at `time_s`, for a lineage's day.
pub fn flush_key(lineage: &str, time_s: i64, shard: &str, seq: u64) -> String {
    format!("{lineage}d{time_s:012}-{shard}-{seq:020}.parquet")
}

/// The fold of a lineage's day up to flush time `upto`.
pub fn fold_key(lineage: &str, upto: i64) -> String {
    format!("{lineage}f{upto:012}.parquet")
}

/// What an object under a day prefix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A flush's rows, written at this time (s).
    Flush(i64),
    /// A fold of the flushes written up to this time (s).
    Fold(i64),
}

/// A key's lineage prefix (`…/{region}/{sub}/`) and kind, or `None` for a key of another shape.
pub fn parse(key: &str) -> Option<(&str, Kind)> {
    let (lineage, name) = key.rsplit_once('/')?;
    let lineage = &key[..lineage.len() + 1];
    let time = |s: &str| s.get(..12).and_then(|t| t.parse::<i64>().ok());
    let kind = match name.split_at_checked(1)? {
        ("d", rest) => Kind::Flush(time(rest)?),
        ("f", rest) => Kind::Fold(time(rest)?),
        _ => return None,
    };
    name.ends_with(".parquet").then_some((lineage, kind))
}

/// The local day of a day prefix (`seg/{site}/{gen}/{day}/`).
pub fn day_of_prefix(prefix: &str) -> Option<i64> {
    fold_day_of(prefix.trim_end_matches('/').rsplit('/').next()?)
}

/// The objects a reader takes from a day's keys: per lineage its newest fold and the flush
/// objects written after it (older folds and folded flushes are left for the folder to delete).
pub fn live(keys: &[String]) -> Vec<String> {
    let mut newest_fold: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for key in keys {
        if let Some((lineage, Kind::Fold(upto))) = parse(key) {
            let held = newest_fold.entry(lineage).or_insert(upto);
            *held = (*held).max(upto);
        }
    }
    let mut out: Vec<String> = keys
        .iter()
        .filter(|key| match parse(key) {
            Some((lineage, Kind::Fold(upto))) => newest_fold.get(lineage) == Some(&upto),
            Some((lineage, Kind::Flush(time))) => newest_fold.get(lineage).is_none_or(|upto| time > *upto),
            None => false,
        })
        .cloned()
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_snapshots() {
        // Stored objects are found by these keys: a change here orphans every stored object.
        let lineage = lineage_prefix("a.com", 20_416, "eu-west-1", 2);
        assert_eq!(lineage, "seg/a.com/1/1020416/eu-west-1/2/");
        let flush = flush_key(&lineage, 1_764_000_000, "shardId-000000000001", 7);
        assert_eq!(
            flush,
            "seg/a.com/1/1020416/eu-west-1/2/d001764000000-shardId-000000000001-00000000000000000007.parquet"
        );
        assert_eq!(parse(&flush), Some((lineage.as_str(), Kind::Flush(1_764_000_000))));
        assert_eq!(parse(&fold_key(&lineage, 5)), Some((lineage.as_str(), Kind::Fold(5))));
        assert_eq!(parse("seg/a.com/1/1020416/eu-west-1/2/x.parquet"), None);
        assert_eq!(day_of_prefix(&day_prefix("a.com", -3)), Some(-3));
    }

    #[test]
    fn readers_take_the_newest_fold_and_what_came_after_it() {
        let (a, b) = (lineage_prefix("s", 1, "r", 0), lineage_prefix("s", 1, "r", 1));
        let keys = vec![
            flush_key(&a, 10, "x", 1),
            flush_key(&a, 20, "x", 2),
            fold_key(&a, 10),
            fold_key(&a, 15),
            flush_key(&a, 30, "x", 3),
            flush_key(&b, 5, "y", 1),
        ];
        let mut want =
            vec![flush_key(&a, 20, "x", 2), fold_key(&a, 15), flush_key(&a, 30, "x", 3), flush_key(&b, 5, "y", 1)];
        want.sort();
        assert_eq!(live(&keys), want);
    }
}
