//! The embedded aggregate store (redb): per-dimension rollups with their visitor sightings
//! (tier 1), cells of counters with the visitors of each cell (tier 2, for filtered queries until
//! columnar segments replace them), open visits, drop counts, and how far into the log all of it
//! is applied. `keys.rs` holds the table layout.
//!
//! One [`Flush`] is applied in one transaction together with the log offset it reaches, so a
//! restart resumes exactly after the last applied entry: nothing lost, nothing counted twice.

mod keys;
mod rollups;

pub use keys::FIRST_GENERATION;
pub use rollups::RollupRead;

use crate::flush::{Flush, SessionLookup};
use anyhow::Context;
use keys::{CELL_VISITORS, CELLS, DROPS, FORMAT_VERSION, GENERATIONS, META, ROLLUPS, SESSIONS, SIGHTINGS, VERSION_KEY};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use siphasher::sip::SipHasher13;
use std::collections::BTreeMap;
use std::hash::Hasher;
use std::path::Path;
use tally_model::breakdown::{Sightings, Tallies};
use tally_model::rollup::{Bucket, CellKey, Counters, Rollup};
use tally_model::session::Session;

/// How long (in log time) a visitor id's sightings are kept after they last changed. An id lives
/// one UTC day, so live ids are dropped at most this long after their day ends; imported ids
/// stay this long after their import touched them.
const SIGHTINGS_KEPT_MS: i64 = 2 * 86_400_000;

/// How far the store has applied the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last log offset applied (0: none).
    pub offset: u64,
    /// Arrival time of the last applied entry, ms since the epoch (0: none).
    pub until_ms: i64,
}

/// The store. Reads may run concurrently with the single writer.
pub struct Store {
    db: Database,
}

/// A stable 64-bit id of a cell key (SipHash-1-3 with a fixed key of postcard bytes).
pub fn cell_id(key: &CellKey) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0x7461_6c6c_795f_6365, 0x6c6c_5f69_645f_7631);
    hasher.write(&postcard::to_allocvec(key).unwrap_or_default());
    hasher.finish()
}

/// What opening a store found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A store of the current format (or a new one).
    Current,
    /// A store of format 1 (cells only), emptied: the aggregator rebuilds it from the event log,
    /// which holds every accepted event since the data directory was made.
    RebuiltFromV1,
}

impl Store {
    /// Opens (or creates) the store at `path`. A format-1 store is emptied so that the
    /// aggregator rebuilds it from the log (the one-time migration to format 2).
    pub fn open(path: &Path) -> anyhow::Result<(Store, Opened)> {
        let db = Database::create(path).with_context(|| format!("opening store {}", path.display()))?;
        let txn = db.begin_write()?;
        let opened = {
            let meta = txn.open_table(META)?;
            let version = meta.get(VERSION_KEY)?.map(|v| v.value());
            let applied = meta.get("applied_offset")?.map_or(0, |v| v.value());
            match version {
                Some(FORMAT_VERSION) => Opened::Current,
                Some(other) => anyhow::bail!(
                    "store {} has format {other}, newer than this tally (format {FORMAT_VERSION}); use a newer release",
                    path.display()
                ),
                None if applied == 0 => Opened::Current,
                None => Opened::RebuiltFromV1,
            }
        };
        if opened == Opened::RebuiltFromV1 {
            txn.delete_table(CELLS)?;
            txn.delete_table(CELL_VISITORS)?;
            txn.delete_table(SESSIONS)?;
            txn.delete_table(DROPS)?;
            txn.delete_table(META)?;
        }
        txn.open_table(CELLS)?;
        txn.open_table(CELL_VISITORS)?;
        txn.open_table(ROLLUPS)?;
        txn.open_table(GENERATIONS)?;
        txn.open_table(SIGHTINGS)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(DROPS)?;
        txn.open_table(META)?.insert(VERSION_KEY, FORMAT_VERSION)?;
        txn.commit()?;
        Ok((Store { db }, opened))
    }

    /// How far the log is applied.
    pub fn progress(&self) -> anyhow::Result<Progress> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let get = |k| -> anyhow::Result<i64> { Ok(meta.get(k)?.map_or(0, |v| v.value())) };
        Ok(Progress { offset: u64::try_from(get("applied_offset")?).unwrap_or(0), until_ms: get("applied_until_ms")? })
    }

    /// Applies one flush atomically, with the log position it reaches; deletes visits that
    /// ended before `expire_sessions_before_ms`.
    pub fn apply(
        &self,
        flush: &Flush,
        progress: Progress,
        expire_sessions_before_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut cells = txn.open_table(CELLS)?;
            let mut visitors = txn.open_table(CELL_VISITORS)?;
            for ((site, _), rollup) in &flush.rollups {
                add_cells(&mut cells, site, rollup)?;
                for (bucket, key, visitor) in &rollup.visitors {
                    visitors.insert((site.as_str(), *bucket, cell_id(key), *visitor), ())?;
                }
            }
            rollups::add(&txn, flush)?;
            let touched = progress.until_ms;
            write_sightings(&mut txn.open_table(SIGHTINGS)?, flush, touched, expire_sessions_before_ms.is_some())?;
            write_sessions(&mut txn.open_table(SESSIONS)?, flush, touched, expire_sessions_before_ms)?;
            let mut drops = txn.open_table(DROPS)?;
            for ((site, reason), n) in &flush.drops {
                let key = (site.as_str(), reason.as_str());
                let old = drops.get(key)?.map_or(0, |v| v.value());
                drops.insert(key, old + n)?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert("applied_offset", i64::try_from(progress.offset)?)?;
            meta.insert("applied_until_ms", progress.until_ms)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Calls `visit` for every cell of `site` in buckets `from..to`.
    pub fn scan_cells(
        &self,
        site: &str,
        buckets: std::ops::Range<Bucket>,
        mut visit: impl FnMut(Bucket, u64, &CellKey, &Counters),
    ) -> anyhow::Result<()> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CELLS)?;
        for item in table.range((site, buckets.start, 0)..(site, buckets.end, 0))? {
            let (key, value) = item?;
            let (_, bucket, id) = key.value();
            let (cell, counters): (CellKey, Counters) =
                postcard::from_bytes(value.value()).context("decoding a cell")?;
            visit(bucket, id, &cell, &counters);
        }
        Ok(())
    }

    /// Calls `visit` for every (bucket, cell id, visitor) of `site` in buckets `from..to`.
    pub fn scan_visitors(
        &self,
        site: &str,
        buckets: std::ops::Range<Bucket>,
        mut visit: impl FnMut(Bucket, u64, u64),
    ) -> anyhow::Result<()> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CELL_VISITORS)?;
        for item in table.range((site, buckets.start, 0, 0)..(site, buckets.end, 0, 0))? {
            let (key, _) = item?;
            let (_, bucket, id, visitor) = key.value();
            visit(bucket, id, visitor);
        }
        Ok(())
    }

    /// Drop counts of a site ("" for drops that belong to no site), by reason.
    pub fn drops(&self, site: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DROPS)?;
        let mut out = BTreeMap::new();
        for item in table.range((site, "")..)? {
            let (key, count) = item?;
            let (s, reason) = key.value();
            if s != site {
                break;
            }
            out.insert(reason.to_owned(), count.value());
        }
        Ok(out)
    }
}

fn add_cells(cells: &mut redb::Table<'_, (&str, i64, u64), &[u8]>, site: &str, rollup: &Rollup) -> anyhow::Result<()> {
    for ((bucket, key), delta) in &rollup.cells {
        let id = cell_id(key);
        let mut counters = match cells.get((site, *bucket, id))? {
            Some(old) => postcard::from_bytes::<(CellKey, Counters)>(old.value()).context("decoding a cell")?.1,
            None => Counters::default(),
        };
        counters.add(delta);
        cells.insert((site, *bucket, id), postcard::to_allocvec(&(key, counters))?.as_slice())?;
    }
    Ok(())
}

/// Writes visits with the log time that touched them (`touched_ms`); deletes visits whose last
/// event and last touch are both before `expire_before_ms` (imported visits have old events but
/// a recent touch, so an import in progress keeps its open visits).
fn write_sessions(
    table: &mut redb::Table<'_, (&str, u64), &[u8]>,
    flush: &Flush,
    touched_ms: i64,
    expire_before_ms: Option<i64>,
) -> anyhow::Result<()> {
    for ((site, visitor), session) in &flush.sessions {
        match session {
            Some(s) => {
                table.insert((site.as_str(), *visitor), postcard::to_allocvec(&(touched_ms, s))?.as_slice())?;
            }
            None => {
                table.remove((site.as_str(), *visitor))?;
            }
        }
    }
    if let Some(before) = expire_before_ms {
        table.retain(|_, bytes| {
            postcard::from_bytes::<(i64, Session)>(bytes).is_ok_and(|(touched, s)| touched.max(s.last_ms) >= before)
        })?;
    }
    Ok(())
}

/// Writes the sightings this flush changed; with `expire`, deletes those untouched for
/// [`SIGHTINGS_KEPT_MS`] of log time.
fn write_sightings(
    table: &mut redb::Table<'_, (&str, u64), &[u8]>,
    flush: &Flush,
    touched_ms: i64,
    expire: bool,
) -> anyhow::Result<()> {
    for ((site, visitor), seen) in &flush.sightings {
        table.insert((site.as_str(), *visitor), postcard::to_allocvec(&(touched_ms, seen))?.as_slice())?;
    }
    if expire {
        let before = touched_ms - SIGHTINGS_KEPT_MS;
        table.retain(|_, bytes| postcard::from_bytes::<(i64, Sightings)>(bytes).is_ok_and(|(t, _)| t >= before))?;
    }
    Ok(())
}

impl Store {
    /// The bytes each table occupies (stored, metadata and fragmented bytes of its pages).
    pub fn table_bytes(&self) -> anyhow::Result<BTreeMap<&'static str, u64>> {
        let txn = self.db.begin_read()?;
        let size = |s: redb::TableStats| s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes();
        Ok(BTreeMap::from([
            ("rollups", size(txn.open_table(ROLLUPS)?.stats()?)),
            ("generations", size(txn.open_table(GENERATIONS)?.stats()?)),
            ("sightings", size(txn.open_table(SIGHTINGS)?.stats()?)),
            ("cells", size(txn.open_table(CELLS)?.stats()?)),
            ("cell_visitors", size(txn.open_table(CELL_VISITORS)?.stats()?)),
            ("sessions", size(txn.open_table(SESSIONS)?.stats()?)),
            ("drops", size(txn.open_table(DROPS)?.stats()?)),
        ]))
    }
}

/// Open visits and sightings as of one read transaction, for building one flush: a lookup per
/// event then costs a B-tree search, not a transaction.
pub struct StateReader {
    sessions: redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>,
    sightings: redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>,
}

impl Store {
    /// A reader of the state committed so far.
    pub fn state_reader(&self) -> anyhow::Result<StateReader> {
        let txn = self.db.begin_read()?;
        Ok(StateReader { sessions: txn.open_table(SESSIONS)?, sightings: txn.open_table(SIGHTINGS)? })
    }
}

impl SessionLookup for StateReader {
    fn session(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Session>> {
        let found = self.sessions.get((site, visitor))?;
        let decoded = found.map(|v| postcard::from_bytes::<(i64, Session)>(v.value()).context("decoding a session"));
        Ok(decoded.transpose()?.map(|(_, s)| s))
    }

    fn sightings(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Sightings>> {
        let found = self.sightings.get((site, visitor))?;
        let decoded = found.map(|v| postcard::from_bytes::<(i64, Sightings)>(v.value()).context("decoding sightings"));
        Ok(decoded.transpose()?.map(|(_, s)| s))
    }
}

impl SessionLookup for Store {
    fn session(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Session>> {
        self.state_reader()?.session(site, visitor)
    }

    fn sightings(&self, site: &str, visitor: u64) -> anyhow::Result<Option<Sightings>> {
        self.state_reader()?.sightings(site, visitor)
    }
}

/// Decodes a stored row.
fn decode_tallies(bytes: &[u8]) -> anyhow::Result<Tallies> {
    postcard::from_bytes(bytes).context("decoding a rollup row")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_1_store_is_emptied_for_a_rebuild_and_a_newer_one_refused() {
        let path = std::env::temp_dir().join(format!("tally-store-v1-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            // What format 1 left: cells and progress, no version.
            let db = Database::create(&path).expect("db");
            let txn = db.begin_write().expect("txn");
            txn.open_table(META).expect("meta").insert("applied_offset", 42).expect("insert");
            txn.open_table(CELLS).expect("cells").insert(("a.com", 1, 7), [1u8].as_slice()).expect("insert");
            txn.commit().expect("commit");
        }
        let (store, opened) = Store::open(&path).expect("opens");
        assert_eq!(opened, Opened::RebuiltFromV1);
        assert_eq!(
            store.progress().expect("progress"),
            Progress::default(),
            "the aggregator starts from the log's start"
        );
        let mut cells = 0;
        store.scan_cells("a.com", 0..10, |_, _, _, _| cells += 1).expect("scan");
        assert_eq!(cells, 0);
        drop(store);
        let (_, again) = Store::open(&path).expect("opens");
        assert_eq!(again, Opened::Current, "format 2 is kept as it is");
        {
            let db = Database::create(&path).expect("db");
            let txn = db.begin_write().expect("txn");
            txn.open_table(META).expect("meta").insert(VERSION_KEY, FORMAT_VERSION + 1).expect("insert");
            txn.commit().expect("commit");
        }
        let newer = Store::open(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(newer.contains("newer than this tally"), "{newer}");
        let _ = std::fs::remove_file(path);
    }
}
