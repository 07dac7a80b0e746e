//! The embedded store's tables and key layout: the one place that says how rows are keyed, used
//! by the writer ([`super::Store::apply`]) and the readers alike.
//!
//! Every rollup key carries its data generation (design decision 7): reprocessing writes a new
//! generation beside the active one, and [`GENERATIONS`] says which one a site's day reads.

use redb::TableDefinition;
use tally_model::breakdown::{Grain, RowKey, Slot};

/// The store's format version, kept in [`META`] under [`VERSION_KEY`]. Version 1 (cells only)
/// had no version entry; version 2 had rollups and cells; version 3 had rollups and segments of
/// 15 dimensions; version 4 added the visit's entry page, entry page hostname and referrer;
/// version 5 adds exit-page rows (visits and sightings track their exit page) and custom props
/// (prop rows with their cap, a props column in segments); version 6 adds revenue (per-currency
/// sums in rollup rows, a currency and a revenue column in segments); version 7 keeps the values in
/// sightings as their hashes; version 8 writes the visit state in snapshots, up to
/// [`STATE_OFFSET_KEY`]; version 9 adds the region and city (two more segment columns, two more
/// values in each stored visit's entry cell); version 10 keeps the visit state (sessions,
/// sightings, the offset they reach) in a database of its own beside the store's, so that a state
/// snapshot is written while flushes commit; version 11 adds each segment row's visit id;
/// version 12 adds the engagement columns of segments, and counts no engagement event (older
/// formats counted the `engagement` events of Plausible's tracker as custom events); version 13
/// keeps each segment row's second (a visit's events merged only within one second), which
/// funnels read.
pub const FORMAT_VERSION: i64 = 13;
/// The [`STATE_META`] key of the log offset the stored visit state (sessions, sightings) reaches.
pub const STATE_OFFSET_KEY: &str = "state_offset";
/// The [`META`] key of the format version.
pub const VERSION_KEY: &str = "store_version";

/// The generation every site and day reads until a reprocess switches it.
pub const FIRST_GENERATION: u32 = 1;

/// Tables of formats 1 and 2 that format 3 no longer has (cells and their visitors): a rebuild
/// deletes every table, and the tests check these are gone.
#[cfg(test)]
pub const RETIRED_TABLES: [&str; 2] = ["cells", "cell_visitors"];
/// Persisted segments: (site, generation, local day, sequence number) → (rows, bytes). A Parquet
/// file that is not listed here is not part of the store (a persist that did not commit).
pub const SEGMENT_FILES: TableDefinition<(&str, u32, i64, u64), (u64, u64)> = TableDefinition::new("segment_files");
/// Segments not yet persisted, one per flush and site: sequence number → postcard(PendingBlob).
pub const SEGMENT_PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("segment_pending");
/// [`RollupKey`] → postcard(Tallies).
pub const ROLLUPS: TableDefinition<RollupKey, &[u8]> = TableDefinition::new("rollups");
/// (site, generation, local day) → how many distinct prop rows the day's rollups hold (at most
/// `tally_model::props::MAX_PROP_ROWS_PER_DAY`).
pub const PROP_ROWS: TableDefinition<(&str, u32, i64), u32> = TableDefinition::new("prop_rows");
/// (site, generation, local day, prop name) → (): names that had a value past the day's cap, so
/// that queries by them over that day read the segments.
pub const PROP_OVERFLOW: TableDefinition<(&str, u32, i64, &str), ()> = TableDefinition::new("prop_overflow");
/// (site, local day) → the active generation of that day's rollups (absent: [`FIRST_GENERATION`]).
pub const GENERATIONS: TableDefinition<(&str, i64), u32> = TableDefinition::new("generations");
/// In the state database: (site, visitor id) → postcard((touched_ms, Sightings)).
pub const SIGHTINGS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("sightings");
/// In the state database: (site, visitor id) → postcard((touched_ms, Session)).
pub const SESSIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("sessions");
/// (site or "", reason) → count.
pub const DROPS: TableDefinition<(&str, &str), u64> = TableDefinition::new("drops");
/// Progress ("applied_offset", "applied_until_ms") and [`VERSION_KEY`].
pub const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
/// In the state database: [`STATE_OFFSET_KEY`].
pub const STATE_META: TableDefinition<&str, i64> = TableDefinition::new("state_meta");

/// A rollup row's key: (site, generation, grain code, slot code, hour bucket or day, value).
/// Ordered so that one breakdown of one site over a period range is one contiguous scan.
pub type RollupKey = (&'static str, u32, u8, u8, i64, &'static str);

/// The key of a row of `site` in `generation`.
pub fn rollup_key<'a>(site: &'a str, generation: u32, row: &RowKey<'a>) -> (&'a str, u32, u8, u8, i64, &'a str) {
    (site, generation, row.grain.code(), row.slot.code(), row.at, row.value)
}

/// The key range of one breakdown over the periods `first..=last`: from the first key of `first`
/// to the first key after `last`.
pub fn rollup_range(
    site: &str,
    generation: u32,
    grain: Grain,
    slot: Slot,
    first: i64,
    last: i64,
) -> std::ops::Range<(&str, u32, u8, u8, i64, &'static str)> {
    let (g, s) = (grain.code(), slot.code());
    (site, generation, g, s, first, "")..(site, generation, g, s, last.saturating_add(1), "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::dimension::Dimension;

    #[test]
    fn key_layout_is_pinned() {
        let row = RowKey { grain: Grain::Day, at: 20_423, slot: Slot::Of(Dimension::Page), value: "/pricing" };
        assert_eq!(format!("{:?}", rollup_key("a.com", 1, &row)), r#"("a.com", 1, 1, 3, 20423, "/pricing")"#);
        let range = rollup_range("a.com", 1, Grain::Hour, Slot::Total, 24, 47);
        assert_eq!(format!("{range:?}"), r#"("a.com", 1, 0, 0, 24, "")..("a.com", 1, 0, 0, 48, "")"#);
    }
}
