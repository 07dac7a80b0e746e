//! Tier 2 in the embedded store: columnar segments of segment rows
//! (`tally_model::segment`), for filtered and multi-dimension queries.
//!
//! Each flush adds one in-memory segment per site, kept in the store's pending table in the same
//! transaction as the flush, so a restart finds every acknowledged row exactly once. On a cadence
//! ([`PersistPolicy`]) the pending segments are merged into one Parquet file per (site,
//! generation, local day), compacting a day's files once there are many; the new files and the
//! removal of what they replace commit in one transaction, and the catalog swaps under one lock,
//! so a query sees every row exactly once, before, during and after a persist. A file that no
//! committed transaction lists (a persist killed half-way) is deleted on open.

pub use crate::columnar::{COUNTERS, Column, Segment};

use super::keys::{SEGMENT_FILES, SEGMENT_PENDING};
use crate::columnar::parquet_file;
use crate::columnar::segment::{Origin, from_pending_blob};
use crate::embedded::database::SharedDatabase;
use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tally_model::breakdown::day_of;
use tally_model::rollup::Bucket;
use tally_model::segment::SegmentRows;

/// When pending segments are persisted to Parquet.
#[derive(Debug, Clone, Copy)]
pub struct PersistPolicy {
    /// Persist once this many rows are pending.
    pub rows: usize,
    /// Persist once the oldest pending segment is this old.
    pub every: Duration,
    /// Merge a day's files into one once it has this many.
    pub compact_at: usize,
}

impl Default for PersistPolicy {
    fn default() -> Self {
        PersistPolicy { rows: 1_000_000, every: Duration::from_secs(300), compact_at: 4 }
    }
}

/// What one persist did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Pending segments it moved into files.
    pub pending: usize,
    /// Files it wrote.
    pub files_written: usize,
    /// Older files it merged into new ones.
    pub files_compacted: usize,
    /// Rows it wrote.
    pub rows: usize,
}

/// The segments of every site, and how to persist them.
pub struct Segments {
    dir: PathBuf,
    catalog: RwLock<HashMap<String, Vec<Arc<Segment>>>>,
    next_seq: Mutex<u64>,
    oldest_pending: Mutex<Option<Instant>>,
    policy: PersistPolicy,
    /// Held by the one persist that may run at a time.
    persisting: Mutex<()>,
}

impl Segments {
    /// Loads the catalog: files listed in the store (columns load on first use) and pending
    /// segments; deletes files in `dir` that the store does not list.
    pub fn open(db: &Database, dir: PathBuf, policy: PersistPolicy) -> anyhow::Result<Segments> {
        let txn = db.begin_read()?;
        let mut catalog: HashMap<String, Vec<Arc<Segment>>> = HashMap::new();
        let mut listed: HashSet<PathBuf> = HashSet::new();
        let mut max_seq = 0u64;
        for item in txn.open_table(SEGMENT_FILES)?.iter()? {
            let (key, value) = item?;
            let (site, generation, day, seq) = key.value();
            let (rows, _) = value.value();
            let path = file_path(&dir, site, generation, day, seq);
            listed.insert(path.clone());
            max_seq = max_seq.max(seq);
            let segment = Segment::on_disk(site, generation, day, seq, usize::try_from(rows)?, path);
            catalog.entry(site.to_owned()).or_default().push(Arc::new(segment));
        }
        let mut pending = 0;
        for item in txn.open_table(SEGMENT_PENDING)?.iter()? {
            let (seq, blob) = item?;
            let segment = from_pending_blob(seq.value(), blob.value()).context("loading a pending segment")?;
            max_seq = max_seq.max(seq.value());
            pending += 1;
            catalog.entry(segment.site.clone()).or_default().push(Arc::new(segment));
        }
        remove_unlisted(&dir, &listed)?;
        let oldest = (pending > 0).then(Instant::now);
        Ok(Segments {
            dir,
            catalog: RwLock::new(catalog),
            next_seq: Mutex::new(max_seq + 1),
            oldest_pending: Mutex::new(oldest),
            policy,
            persisting: Mutex::new(()),
        })
    }

    /// The next sequence number: one more than any the store lists (a number an uncommitted
    /// persist used is free again, its file deleted on open).
    fn take_seq(&self) -> u64 {
        let mut next = self.next_seq.lock().unwrap_or_else(|e| e.into_inner());
        let seq = *next;
        *next += 1;
        seq
    }

    /// The pending segments of one flush: per site and generation, the rows whose day reads that
    /// generation (`generation_of(site, day)`).
    pub fn prepare(
        &self,
        rows: &crate::pipeline::flush::FastMap<crate::pipeline::flush::Lineage, SegmentRows>,
        mut generation_of: impl FnMut(&str, i64) -> anyhow::Result<u32>,
    ) -> anyhow::Result<Vec<Segment>> {
        let mut out = Vec::new();
        for ((site, _sub), rows) in rows {
            let days: BTreeSet<i64> = rows.rows.keys().map(|id| day_of(id.bucket)).collect();
            let mut by_generation: BTreeMap<u32, HashSet<i64>> = BTreeMap::new();
            for day in days {
                by_generation.entry(generation_of(site, day)?).or_default().insert(day);
            }
            let only = by_generation.len() == 1;
            for (generation, days) in by_generation {
                let keep = |b: Bucket| only || days.contains(&day_of(b));
                if let Some(segment) =
                    Segment::from_rows(site, generation, rows, keep, false, Origin::Pending(self.take_seq()))
                {
                    out.push(segment);
                }
            }
        }
        Ok(out)
    }

    /// Writes `pending` into the pending table of `txn`, commits it, and makes the segments
    /// visible to queries: under the catalog's lock, so a query that sees the commit's progress
    /// also sees its rows.
    pub fn commit_with(&self, db: &SharedDatabase, txn: WriteTransaction, pending: Vec<Segment>) -> anyhow::Result<()> {
        {
            let mut table = txn.open_table(SEGMENT_PENDING)?;
            for segment in &pending {
                if let Origin::Pending(seq) = segment.origin {
                    table.insert(seq, segment.pending_blob()?.as_slice())?;
                }
            }
        }
        let mut catalog = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        db.commit(txn)?;
        if !pending.is_empty() {
            self.oldest_pending.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
        }
        for segment in pending {
            catalog.entry(segment.site.clone()).or_default().push(Arc::new(segment));
        }
        Ok(())
    }

    /// Forgets `site`'s persisted segments of local days before `before_day` and deletes their
    /// files (waiting for a persist in progress); returns how many. A pending segment of such a
    /// day goes once it is persisted, at the next call.
    pub fn trim_before(&self, db: &SharedDatabase, site: &str, before_day: i64) -> anyhow::Result<usize> {
        let _persisting = self.persisting.lock().unwrap_or_else(|e| e.into_inner());
        let old: Vec<Arc<Segment>> = {
            let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
            let Some(segments) = catalog.get(site) else { return Ok(0) };
            segments
                .iter()
                .filter(|s| matches!(s.origin, Origin::File { day, .. } if day < before_day))
                .cloned()
                .collect()
        };
        if old.is_empty() {
            return Ok(0);
        }
        let txn = db.begin_write()?;
        {
            let mut files = txn.open_table(SEGMENT_FILES)?;
            for segment in &old {
                if let Origin::File { day, seq, .. } = &segment.origin {
                    files.remove((site, segment.generation, *day, *seq))?;
                }
            }
        }
        {
            let mut catalog = self.catalog.write().unwrap_or_else(|e| e.into_inner());
            db.commit(txn)?;
            let gone: HashSet<*const Segment> = old.iter().map(Arc::as_ptr).collect();
            if let Some(segments) = catalog.get_mut(site) {
                segments.retain(|s| !gone.contains(&Arc::as_ptr(s)));
            }
        }
        for segment in &old {
            if let Origin::File { path, .. } = &segment.origin
                && let Err(error) = std::fs::remove_file(path)
            {
                // The store no longer lists it: the next start deletes it.
                tracing::warn!(path = %path.display(), %error, "could not delete a segment file past the retention");
            }
        }
        Ok(old.len())
    }

    /// The segments of `site` in `generation` that may hold buckets of `lo..=hi`.
    pub fn of(&self, site: &str, generation: u32, lo: Bucket, hi: Bucket) -> Vec<Arc<Segment>> {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        let Some(segments) = catalog.get(site) else { return Vec::new() };
        segments
            .iter()
            .filter(|s| s.generation == generation && s.buckets.0 <= hi && s.buckets.1 >= lo)
            .cloned()
            .collect()
    }

    /// The bytes of the persisted files.
    pub fn file_bytes(&self) -> u64 {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        catalog
            .values()
            .flatten()
            .filter_map(|s| if let Origin::File { path, .. } = &s.origin { std::fs::metadata(path).ok() } else { None })
            .map(|m| m.len())
            .sum()
    }

    /// Whether the policy says it is time to persist.
    pub fn persist_due(&self) -> bool {
        let oldest = *self.oldest_pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(oldest) = oldest else { return false };
        if oldest.elapsed() >= self.policy.every {
            return true;
        }
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        let rows: usize =
            catalog.values().flatten().filter(|s| matches!(s.origin, Origin::Pending(_))).map(|s| s.rows).sum();
        rows >= self.policy.rows
    }

    /// Persists the pending segments if the policy says it is time, or all of them with
    /// `force`. Flushes may go on meanwhile: a persist moves the segments that were pending when
    /// it began. One persist runs at a time; without `force`, a call while one runs does nothing.
    pub fn persist_if_due(&self, db: &SharedDatabase, force: bool) -> anyhow::Result<Persisted> {
        let _running = if force {
            self.persisting.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            match self.persisting.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(Persisted::default()),
            }
        };
        if !force && !self.persist_due() {
            return Ok(Persisted::default());
        }
        let pending: Vec<Arc<Segment>> = {
            let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
            catalog.values().flatten().filter(|s| matches!(s.origin, Origin::Pending(_))).cloned().collect()
        };
        if pending.is_empty() {
            return Ok(Persisted::default());
        }
        self.persist(db, pending)
    }

    /// Writes one day's file from the rows of `inputs` in that day (none if they hold none).
    fn write_day(
        &self,
        site: &str,
        generation: u32,
        day: i64,
        inputs: &[Arc<Segment>],
    ) -> anyhow::Result<Option<Segment>> {
        let mut merged = SegmentRows::default();
        for input in inputs {
            input.add_rows_to(&mut merged, day * 24, day * 24 + 23)?;
        }
        let seq = self.take_seq();
        let path = file_path(&self.dir, site, generation, day, seq);
        let origin = Origin::File { day, seq, path: path.clone() };
        let Some(segment) = Segment::from_rows(site, generation, &merged, |_| true, true, origin) else {
            return Ok(None);
        };
        parquet_file::write(&segment, &path)?;
        Ok(Some(segment))
    }

    fn persist(&self, db: &SharedDatabase, pending: Vec<Arc<Segment>>) -> anyhow::Result<Persisted> {
        let started = Instant::now();
        // What each (site, generation, day) gets: the pending segments that reach into it.
        let mut days: BTreeMap<(String, u32, i64), Vec<Arc<Segment>>> = BTreeMap::new();
        for segment in &pending {
            let buckets = segment.buckets()?;
            let seen: BTreeSet<i64> = buckets.iter().map(|b| day_of(Bucket::from(*b))).collect();
            for day in seen {
                days.entry((segment.site.clone(), segment.generation, day)).or_default().push(segment.clone());
            }
        }
        let mut replaced: Vec<Arc<Segment>> = Vec::new();
        let mut report = Persisted { pending: pending.len(), ..Persisted::default() };
        for ((site, generation, day), inputs) in &mut days {
            let existing = self.of(site, *generation, *day * 24, *day * 24 + 23);
            let files: Vec<Arc<Segment>> =
                existing.into_iter().filter(|s| matches!(&s.origin, Origin::File { day: d, .. } if d == day)).collect();
            if files.len() + 1 >= self.policy.compact_at {
                report.files_compacted += files.len();
                replaced.extend(files.iter().cloned());
                inputs.extend(files);
            }
        }
        let work: Vec<_> = days.into_iter().collect();
        // Days are independent files: written on every core.
        let threads = std::thread::available_parallelism().map_or(1, usize::from).min(work.len()).max(1);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let written: Vec<Segment> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> anyhow::Result<Vec<Segment>> {
                        let mut out = Vec::new();
                        loop {
                            let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(((site, generation, day), inputs)) = work.get(at) else { return Ok(out) };
                            out.extend(self.write_day(site, *generation, *day, inputs)?);
                        }
                    })
                })
                .collect();
            let mut written = Vec::new();
            for worker in workers {
                written.extend(worker.join().map_err(|_| anyhow::anyhow!("a segment writer panicked"))??);
            }
            anyhow::Ok(written)
        })?;
        report.files_written = written.len();
        report.rows = written.iter().map(|s| s.rows).sum();
        sync_dirs(&written);
        let txn = db.begin_write()?;
        {
            let mut files = txn.open_table(SEGMENT_FILES)?;
            for segment in &written {
                if let Origin::File { day, seq, path } = &segment.origin {
                    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
                    files.insert(
                        (segment.site.as_str(), segment.generation, *day, *seq),
                        (segment.rows as u64, bytes),
                    )?;
                }
            }
            for segment in &replaced {
                if let Origin::File { day, seq, .. } = &segment.origin {
                    files.remove((segment.site.as_str(), segment.generation, *day, *seq))?;
                }
            }
            let mut table = txn.open_table(SEGMENT_PENDING)?;
            for segment in &pending {
                if let Origin::Pending(seq) = segment.origin {
                    table.remove(seq)?;
                }
            }
        }
        {
            let mut catalog = self.catalog.write().unwrap_or_else(|e| e.into_inner());
            db.commit(txn)?;
            let gone: HashSet<*const Segment> = pending.iter().chain(&replaced).map(Arc::as_ptr).collect();
            for segments in catalog.values_mut() {
                segments.retain(|s| !gone.contains(&Arc::as_ptr(s)));
            }
            for segment in written {
                // Columns were built here; queries load them again from the file when they need
                // them, so a long import does not keep its history in memory.
                let Origin::File { day, seq, path } = segment.origin else { continue };
                let on_disk = Segment::on_disk(&segment.site, segment.generation, day, seq, segment.rows, path);
                catalog.entry(segment.site.clone()).or_default().push(Arc::new(on_disk));
            }
            let still_pending = catalog.values().flatten().any(|s| matches!(s.origin, Origin::Pending(_)));
            *self.oldest_pending.lock().unwrap_or_else(|e| e.into_inner()) = still_pending.then(Instant::now);
        }
        for segment in &replaced {
            if let Origin::File { path, .. } = &segment.origin {
                let _ = std::fs::remove_file(path);
            }
        }
        tracing::info!(
            pending = report.pending,
            files = report.files_written,
            compacted = report.files_compacted,
            rows = report.rows,
            took_ms = started.elapsed().as_millis() as u64,
            "persisted segments"
        );
        Ok(report)
    }
}

/// The path of a persisted segment: `<dir>/<site>/g<generation>/<local date>.<seq>.parquet`.
fn file_path(dir: &Path, site: &str, generation: u32, day: i64, seq: u64) -> PathBuf {
    let safe: String =
        site.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let date = crate::pipeline::timebucket::bucket_start(day * 24).date();
    dir.join(safe).join(format!("g{generation}")).join(format!("{date}.{seq}.parquet"))
}

/// Deletes every file under `dir` that is not in `listed`.
fn remove_unlisted(dir: &Path, listed: &HashSet<PathBuf>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            remove_unlisted(&path, listed)?;
        } else if !listed.contains(&path) {
            tracing::info!(path = %path.display(), "removing a segment file no commit lists");
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Syncs the directories new files were renamed into, so the renames survive a crash.
fn sync_dirs(written: &[Segment]) {
    let dirs: BTreeSet<&Path> = written
        .iter()
        .filter_map(|s| if let Origin::File { path, .. } = &s.origin { path.parent() } else { None })
        .collect();
    for dir in dirs {
        if let Ok(handle) = std::fs::File::open(dir) {
            let _ = handle.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::store::{Progress, Store};
    use crate::pipeline::flush::Flush;
    use tally_model::event::{Event, EventId, LogEntry, VisitorIds};

    fn event(at_ms: i64, visitor: u64, path: &str) -> LogEntry {
        LogEntry::Event(Box::new(Event {
            id: EventId(u128::from(visitor) << 64 | at_ms as u128),
            received_ms: at_ms,
            site: "a.com".into(),
            name: "pageview".into(),
            url: format!("https://a.com{path}"),
            referrer: None,
            props: vec![],
            revenue: None,
            interactive: true,
            user_agent: "curl/8".into(),
            country: Some("DE".into()),
            visitor: VisitorIds { current: visitor, previous: visitor },
            region: None,
            city: None,
            engagement: None,
            hash_mode: false,
        }))
    }

    /// The events over every segment the store lists for days 0..10, and how many are files.
    fn rows_and_files(store: &Store) -> (i64, usize) {
        let segments = store.segments_for("a.com", 0..24 * 10).expect("segments");
        let mut events = 0;
        for (segment, _, _) in &segments {
            events += segment.counter(0).expect("events").iter().sum::<i64>();
        }
        let files = segments.iter().filter(|(s, _, _)| matches!(s.origin, Origin::File { .. })).count();
        (events, files)
    }

    #[test]
    fn persists_merge_per_day_compact_and_survive_a_half_done_persist() {
        let path = std::env::temp_dir().join(format!("tally-segments-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("state.redb"));
        let _ = std::fs::remove_dir_all(path.with_extension("segments"));
        let policy = PersistPolicy { rows: usize::MAX, every: Duration::from_secs(3600), compact_at: 3 };
        let (store, _) = Store::open_with(&path, policy).expect("store");
        let day = 86_400_000;
        for round in 0..4u64 {
            let mut flush = Flush::default();
            for (i, at) in [1_000, day + 1_000, day + 2_000].into_iter().enumerate() {
                flush.add(&event(at, round * 10 + i as u64, "/"), 0, &|_| None, &store).expect("adds");
            }
            store.apply(&flush, Progress { offset: round + 1, until_ms: 0 }).expect("apply");
            assert_eq!(rows_and_files(&store).0, 3 * (round as i64 + 1), "pending rows count at once");
            let persisted = store.persist_segments(true).expect("persists");
            assert_eq!(persisted.files_written, 2, "one file per day");
        }
        // Day files: 1, 2, then 3 merged into 1, then 2 again.
        assert_eq!(rows_and_files(&store), (12, 4));
        drop(store);
        // A persist that wrote its file but did not commit leaves a file no transaction lists.
        let dir = path.with_extension("segments");
        let listed =
            std::fs::read_dir(dir.join("a.com").join("g1")).expect("dir").next().expect("a file").expect("entry");
        let stray = dir.join("a.com").join("g1").join("1970-01-01.999.parquet");
        std::fs::copy(listed.path(), &stray).expect("copy");
        let (store, _) = Store::open_with(&path, policy).expect("reopens");
        assert!(!stray.exists(), "the unlisted file is deleted on open");
        assert_eq!(rows_and_files(&store), (12, 4), "every row once after the restart");
        drop(store);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(dir);
    }
}
