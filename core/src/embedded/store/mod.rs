//! The embedded aggregate store (redb, plus Parquet files for persisted segments): per-dimension
//! rollups with their visitor sightings (tier 1), columnar segments for filtered queries (tier 2,
//! `segments/`), open visits, drop counts, and how far into the log all of it is applied.
//! `keys.rs` holds the table layout.
//!
//! One [`Flush`] is applied in one transaction together with the log offset it reaches, so a
//! restart resumes exactly after the last applied entry: nothing lost, nothing counted twice.
//! The visit state (open visits, visitor sightings) lives in a database of its own,
//! `<store>.state.redb`, written by state snapshots ([`crate::embedded::state`]) while flushes
//! commit to the store's.

mod changes;
mod keys;
mod retention;
mod rollups;
pub mod segments;

pub use keys::FIRST_GENERATION;
pub use rollups::RollupRead;
pub use segments::{PersistPolicy, Persisted, Segment};

use crate::embedded::database::SharedDatabase;
use crate::embedded::state::{StateDelta, sightings_kept, visit_kept};
use crate::pipeline::flush::{Flush, SessionLookup};
use anyhow::Context;
use keys::{
    DROPS, FORMAT_VERSION, GENERATIONS, META, PROP_OVERFLOW, PROP_ROWS, ROLLUPS, SEGMENT_FILES, SEGMENT_PENDING,
    SESSIONS, SIGHTINGS, STATE_META, STATE_OFFSET_KEY, VERSION_KEY,
};
use redb::{Database, ReadableTable, ReadableTableMetadata};
use segments::Segments;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tally_model::breakdown::{Sightings, Tallies};
use tally_model::rollup::Bucket;
use tally_model::session::Session;

/// How far the store has applied the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last log offset applied (0: none).
    pub offset: u64,
    /// Arrival time of the last applied entry, ms since the epoch (0: none).
    pub until_ms: i64,
}

/// The store. Reads may run concurrently with the single writer (of each database).
pub struct Store {
    /// How many retention trims deleted something: part of the answer cache's version, since
    /// a trim changes answers without moving the applied offset.
    trims: std::sync::atomic::AtomicU64,
    /// The days each applied flush changed, for the answer cache.
    changes: changes::Changes,
    db: SharedDatabase,
    /// The visit state as of the last state snapshot.
    state: SharedDatabase,
    segments: Segments,
}

/// What opening a store found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A store of the current format (or a new one).
    Current,
    /// A store of an older format (1: cells only; 2: rollups and cells; 3 and 4: fewer
    /// dimensions; 5: no revenue; 6: sightings by value text; 7 and 8: no region or city),
    /// emptied: the aggregator rebuilds it from the event log, which holds every accepted event
    /// since the data directory was made.
    Rebuilt {
        /// The format it had.
        from: i64,
    },
}

impl Store {
    /// Opens (or creates) the store at `path`, its segment files in `<path>.segments/`, with
    /// the default [`PersistPolicy`].
    pub fn open(path: &Path) -> anyhow::Result<(Store, Opened)> {
        Store::open_with(path, PersistPolicy::default())
    }

    /// Opens (or creates) the store at `path`, its visit state at `<path>.state.redb`. A store of
    /// an older format is emptied so that the aggregator rebuilds it from the log (the one-time
    /// migration to this format).
    pub fn open_with(path: &Path, policy: PersistPolicy) -> anyhow::Result<(Store, Opened)> {
        let db = Database::create(path).with_context(|| format!("opening store {}", path.display()))?;
        let state_path = path.with_extension("state.redb");
        let state =
            Database::create(&state_path).with_context(|| format!("opening visit state {}", state_path.display()))?;
        let segment_dir = path.with_extension("segments");
        let txn = db.begin_write()?;
        let opened = {
            let meta = txn.open_table(META)?;
            let version = meta.get(VERSION_KEY)?.map(|v| v.value());
            let applied = meta.get("applied_offset")?.map_or(0, |v| v.value());
            match version {
                Some(FORMAT_VERSION) => Opened::Current,
                Some(other) if other > FORMAT_VERSION => anyhow::bail!(
                    "store {} has format {other}, newer than this tally (format {FORMAT_VERSION}); use a newer release",
                    path.display()
                ),
                Some(older) => Opened::Rebuilt { from: older },
                None if applied == 0 => Opened::Current,
                None => Opened::Rebuilt { from: 1 },
            }
        };
        if let Opened::Rebuilt { .. } = opened {
            let tables: Vec<redb::UntypedTableHandle> = txn.list_tables()?.collect();
            for table in tables {
                txn.delete_table(table)?;
            }
            if segment_dir.exists() {
                std::fs::remove_dir_all(&segment_dir).with_context(|| format!("emptying {}", segment_dir.display()))?;
            }
        }
        txn.open_table(ROLLUPS)?;
        txn.open_table(PROP_ROWS)?;
        txn.open_table(PROP_OVERFLOW)?;
        txn.open_table(GENERATIONS)?;
        txn.open_table(SEGMENT_FILES)?;
        txn.open_table(SEGMENT_PENDING)?;
        txn.open_table(DROPS)?;
        let applied = {
            let mut meta = txn.open_table(META)?;
            meta.insert(VERSION_KEY, FORMAT_VERSION)?;
            progress_in(&meta)?.offset
        };
        txn.commit()?;
        open_state(&state, matches!(opened, Opened::Rebuilt { .. }), applied)?;
        let segments = Segments::open(&db, segment_dir, policy)?;
        let (db, state) = (SharedDatabase::from_open(path, db), SharedDatabase::from_open(&state_path, state));
        let trims = std::sync::atomic::AtomicU64::new(0);
        Ok((Store { trims, changes: changes::Changes::default(), db, state, segments }, opened))
    }

    /// How many retention trims deleted something since the store was opened.
    pub fn trims(&self) -> u64 {
        self.trims.load(std::sync::atomic::Ordering::Acquire)
    }

    /// How far the log is applied.
    pub fn progress(&self) -> anyhow::Result<Progress> {
        progress_in(&self.db.read()?.open_table(META)?)
    }

    /// The log offset up to which the stored visit state (open visits, sightings) is written: the
    /// applied offset of the last flush that wrote a state snapshot (0: none).
    pub fn state_offset(&self) -> anyhow::Result<u64> {
        let txn = self.state.read()?;
        let meta = txn.open_table(STATE_META)?;
        Ok(meta.get(STATE_OFFSET_KEY)?.map_or(0, |v| u64::try_from(v.value()).unwrap_or(0)))
    }

    /// Applies one flush atomically, with the log position it reaches. Its visit state is not
    /// written: [`Store::write_state`] does that every so often (see [`crate::embedded::state`]).
    pub fn apply(&self, flush: &Flush, progress: Progress) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        let pending = {
            let generations = txn.open_table(GENERATIONS)?;
            self.segments.prepare(&flush.segments, |site, day| {
                Ok(generations.get((site, day))?.map_or(FIRST_GENERATION, |v| v.value()))
            })?
        };
        {
            rollups::add(&txn, flush)?;
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
        self.segments.commit_with(&self.db, txn, pending)?;
        self.changes.note(flush, progress.offset);
        Ok(())
    }

    /// What answers over `site`'s local days `first..=last` depend on besides the query: the
    /// last flush that changed one of those days, and the retention trims. Equal versions mean
    /// equal answers.
    pub fn answer_version(&self, site: &str, first: i64, last: i64) -> u64 {
        self.changes.last_change(site, first, last) ^ (self.trims() << 48)
    }

    /// Writes a state snapshot to the state database (beside the flushes, which commit to the
    /// store's): `delta` is what committed flushes changed since the last snapshot, and
    /// `progress` where the last of them reaches.
    pub fn write_state(&self, delta: &StateDelta, progress: Progress) -> anyhow::Result<()> {
        let txn = self.state.begin_write()?;
        {
            let meta = txn.open_table(STATE_META)?;
            let stored_until = meta.get(STATE_OFFSET_KEY)?.map_or(0, |v| v.value());
            if delta.is_empty() && stored_until == i64::try_from(progress.offset)? {
                return Ok(());
            }
        }
        write_snapshot(&txn, progress, delta)?;
        self.state.commit(txn)
    }

    /// Persists pending segments to Parquet if the persist policy says it is time, or now with
    /// `force`; flushes may be applied meanwhile.
    pub fn persist_segments(&self, force: bool) -> anyhow::Result<Persisted> {
        self.segments.persist_if_due(&self.db, force)
    }

    /// Whether the persist policy says pending segments should be persisted now.
    pub fn persist_due(&self) -> bool {
        self.segments.persist_due()
    }

    /// The segments a query of `site` over `buckets` scans, each with the bucket range it
    /// counts: per run of days that read the same generation, that generation's segments.
    pub fn segments_for(
        &self,
        site: &str,
        buckets: std::ops::Range<Bucket>,
    ) -> anyhow::Result<Vec<(Arc<Segment>, Bucket, Bucket)>> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let (first, last) = (buckets.start, buckets.end - 1);
        let mut out = Vec::new();
        for (from_day, to_day, generation) in self.generation_runs(site, first.div_euclid(24), last.div_euclid(24))? {
            let (lo, hi) = (first.max(from_day * 24), last.min(to_day * 24 + 23));
            out.extend(self.segments.of(site, generation, lo, hi).into_iter().map(|s| (s, lo, hi)));
        }
        Ok(out)
    }

    /// Runs of consecutive days `first..=last` of `site` that read the same generation.
    pub(crate) fn generation_runs(&self, site: &str, first: i64, last: i64) -> anyhow::Result<Vec<(i64, i64, u32)>> {
        let txn = self.db.read()?;
        let generations = txn.open_table(GENERATIONS)?;
        let mut switched: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
        for item in generations.range((site, first)..=(site, last))? {
            let (key, generation) = item?;
            switched.insert(key.value().1, generation.value());
        }
        let mut runs: Vec<(i64, i64, u32)> = Vec::new();
        for d in first..=last {
            let generation = switched.get(&d).copied().unwrap_or(FIRST_GENERATION);
            match runs.last_mut() {
                Some(run) if run.2 == generation => run.1 = d,
                _ => runs.push((d, d, generation)),
            }
        }
        Ok(runs)
    }

    /// `Err` with the last I/O fault of the store's databases until they commit again; while
    /// failing, tries an empty commit (at most every 200 ms) to see whether the fault cleared.
    pub fn health(&self) -> Result<(), String> {
        self.db.probe();
        self.state.probe();
        self.db.health().and(self.state.health())
    }

    /// Drop counts of a site ("" for drops that belong to no site), by reason.
    pub fn drops(&self, site: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        let txn = self.db.read()?;
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

/// Writes visit state rows (each with the log time that touched it) in key order, so that each
/// B-tree page is visited once, not once per key on it; a row that is `None` or no longer `live`
/// is deleted.
fn write_in_key_order<V: serde::Serialize>(
    table: &mut redb::Table<'_, (&str, u64), &[u8]>,
    mut rows: Vec<(&(String, u64), i64, Option<&V>)>,
    live: impl Fn(i64, &V) -> bool,
) -> anyhow::Result<()> {
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for ((site, visitor), touched, value) in rows {
        match value.filter(|v| live(touched, v)) {
            Some(value) => {
                table.insert((site.as_str(), *visitor), postcard::to_allocvec(&(touched, value))?.as_slice())?;
            }
            None => {
                table.remove((site.as_str(), *visitor))?;
            }
        }
    }
    Ok(())
}

/// The progress kept in the `meta` table.
fn progress_in(meta: &impl ReadableTable<&'static str, i64>) -> anyhow::Result<Progress> {
    let get = |k| -> anyhow::Result<i64> { Ok(meta.get(k)?.map_or(0, |v| v.value())) };
    Ok(Progress { offset: u64::try_from(get("applied_offset")?).unwrap_or(0), until_ms: get("applied_until_ms")? })
}

/// Writes a state snapshot: the delta's visits and sightings, and the offset they reach. It also
/// expires state at log time `progress.until_ms`: visits whose last event and last touch are both
/// older than the session timeout (imported visits have old events but a recent touch, so an
/// import in progress keeps its open visits), and sightings untouched for two days
/// ([`visit_kept`] and [`sightings_kept`]). State that is already expired is not written, and an
/// older copy of it in the store is deleted.
fn write_snapshot(txn: &redb::WriteTransaction, progress: Progress, delta: &StateDelta) -> anyhow::Result<()> {
    let touched = progress.until_ms;
    let mut sessions = txn.open_table(SESSIONS)?;
    write_in_key_order(
        &mut sessions,
        delta.sessions.iter().map(|(id, (t, v))| (id, *t, v.as_ref())).collect(),
        |t, visit| visit_kept(t, visit.last_ms, touched),
    )?;
    let mut sightings = txn.open_table(SIGHTINGS)?;
    write_in_key_order(
        &mut sightings,
        delta.sightings.iter().map(|(id, (t, s))| (id, *t, Some(s))).collect(),
        |t, _| sightings_kept(t, touched),
    )?;
    // Only the prefix is decoded: (touched, started_ms, last_ms, …).
    sessions.retain(|_, bytes| {
        postcard::take_from_bytes::<(i64, i64, i64)>(bytes)
            .is_ok_and(|((t, _, last_ms), _)| visit_kept(t, last_ms, touched))
    })?;
    sightings
        .retain(|_, bytes| postcard::take_from_bytes::<i64>(bytes).is_ok_and(|(t, _)| sightings_kept(t, touched)))?;
    txn.open_table(STATE_META)?.insert(STATE_OFFSET_KEY, i64::try_from(progress.offset)?)?;
    Ok(())
}

/// Makes the visit-state database's tables. It is emptied when the store was (a rebuild), or
/// when it reaches further than the store has applied (a store file replaced or deleted): the
/// aggregator then replays the log from the start into the visit state.
fn open_state(state: &Database, store_rebuilt: bool, applied: u64) -> anyhow::Result<()> {
    let txn = state.begin_write()?;
    let offset = txn.open_table(STATE_META)?.get(STATE_OFFSET_KEY)?.map_or(0, |v| v.value());
    if store_rebuilt || u64::try_from(offset).unwrap_or(0) > applied {
        let tables: Vec<redb::UntypedTableHandle> = txn.list_tables()?.collect();
        for table in tables {
            txn.delete_table(table)?;
        }
    }
    txn.open_table(SESSIONS)?;
    txn.open_table(SIGHTINGS)?;
    let mut meta = txn.open_table(STATE_META)?;
    if meta.get(STATE_OFFSET_KEY)?.is_none() {
        // No visit state yet.
        meta.insert(STATE_OFFSET_KEY, 0)?;
    }
    drop(meta);
    txn.commit()?;
    Ok(())
}

impl Store {
    /// The bytes each table occupies (stored, metadata and fragmented bytes of its pages).
    pub fn table_bytes(&self) -> anyhow::Result<BTreeMap<&'static str, u64>> {
        let txn = self.db.read()?;
        let state = self.state.read()?;
        let size = |s: redb::TableStats| s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes();
        let segment_file_bytes = self.segments.file_bytes();
        Ok(BTreeMap::from([
            (
                "rollups",
                size(txn.open_table(ROLLUPS)?.stats()?)
                    + size(txn.open_table(PROP_ROWS)?.stats()?)
                    + size(txn.open_table(PROP_OVERFLOW)?.stats()?),
            ),
            ("generations", size(txn.open_table(GENERATIONS)?.stats()?)),
            ("sightings", size(state.open_table(SIGHTINGS)?.stats()?)),
            ("segment_files", segment_file_bytes + size(txn.open_table(SEGMENT_FILES)?.stats()?)),
            ("segment_pending", size(txn.open_table(SEGMENT_PENDING)?.stats()?)),
            ("sessions", size(state.open_table(SESSIONS)?.stats()?)),
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
        let txn = self.state.read()?;
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
    use redb::TableHandle;

    #[test]
    fn older_formats_are_emptied_for_a_rebuild_and_a_newer_one_refused() {
        let path = std::env::temp_dir().join(format!("tally-store-old-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let cells: redb::TableDefinition<(&str, i64, u64), &[u8]> = redb::TableDefinition::new("cells");
        let formats = [
            (None, 1),
            (Some(2), 2),
            (Some(3), 3),
            (Some(4), 4),
            (Some(5), 5),
            (Some(6), 6),
            (Some(7), 7),
            (Some(8), 8),
            (Some(9), 9),
        ];
        for (version, from) in formats {
            {
                // What older formats left: progress (format 1 without a version), and tables
                // this format no longer has.
                let db = Database::create(&path).expect("db");
                let txn = db.begin_write().expect("txn");
                let mut meta = txn.open_table(META).expect("meta");
                meta.insert("applied_offset", 42).expect("insert");
                if let Some(v) = version {
                    meta.insert(VERSION_KEY, v).expect("insert");
                }
                drop(meta);
                txn.open_table(cells).expect("cells").insert(("a.com", 1, 7), [1u8].as_slice()).expect("insert");
                txn.commit().expect("commit");
            }
            let (store, opened) = Store::open(&path).expect("opens");
            assert_eq!(opened, Opened::Rebuilt { from });
            assert_eq!(
                store.progress().expect("progress"),
                Progress::default(),
                "the aggregator starts from the log's start"
            );
            let txn = store.db.read().expect("txn");
            let names: Vec<String> = txn.list_tables().expect("tables").map(|t| t.name().to_owned()).collect();
            assert!(!names.iter().any(|n| keys::RETIRED_TABLES.contains(&n.as_str())), "{names:?}");
        }
        let (store, again) = Store::open(&path).expect("opens");
        assert_eq!(again, Opened::Current, "the current format is kept as it is");
        assert_eq!(store.state_offset().expect("state offset"), 0, "an emptied store has no visit state");
        drop(store);
        {
            let db = Database::create(&path).expect("db");
            let txn = db.begin_write().expect("txn");
            txn.open_table(META).expect("meta").insert(VERSION_KEY, FORMAT_VERSION + 1).expect("insert");
            txn.commit().expect("commit");
        }
        let newer = Store::open(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(newer.contains("newer than this tally"), "{newer}");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("state.redb"));
        let _ = std::fs::remove_dir_all(path.with_extension("segments"));
    }
}
