//! The embedded event log: an append-only, durable sequence of encoded log entries (redb).
//!
//! Appends are group-committed by one writer thread: every request waiting at that moment goes
//! into one transaction and one fsync, and each caller is answered only after the commit. Entry
//! offsets start at 1; offset 0 means "before the first entry". This log stands where Kinesis
//! stands in the cloud deployment, and is kept for reprocessing. A failed commit (disk full, I/O
//! error) answers its callers with an error, and the next commit opens the file again
//! ([`SharedDatabase`]), so the log recovers once the fault clears.

use crate::embedded::database::SharedDatabase;
use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use tally_model::codec;
use tally_model::event::LogEntry;
use tokio::sync::{mpsc, oneshot, watch};

pub use crate::pipeline::import_lines::ImportId;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// Ids of entries appended with [`EventLog::append_unique`] (imports), so a re-run adds nothing.
const UNIQUE_IDS: TableDefinition<u128, ()> = TableDefinition::new("unique_ids");
/// What kind of ids [`UNIQUE_IDS`] holds: `"id_kind"` → [`TIME_ORDERED_IDS`] in a log whose ids
/// were all written by an importer that passes [`ImportId::before`]; absent in a log that may
/// hold ids of older releases, which are then looked up as well.
const ID_KIND: TableDefinition<&str, u8> = TableDefinition::new("unique_id_kind");
const TIME_ORDERED_IDS: u8 = 2;
/// Where earlier releases kept the daily salts; deleted on open.
const LEGACY_SALTS: TableDefinition<i64, [u8; 16]> = TableDefinition::new("salts");
/// Most waiting entries one commit takes.
const MAX_ENTRIES_PER_COMMIT: usize = 20_000;
/// Append requests that may wait for the writer before callers are slowed down.
const QUEUE_DEPTH: usize = 4_096;

/// The log could not take or give entries.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The writer failed to commit; the entries are not in the log.
    #[error("event log commit failed: {0}")]
    Commit(String),
    /// The writer has stopped (the process is shutting down).
    #[error("event log is closed")]
    Closed,
}

type Reply = oneshot::Sender<Result<Appended, LogError>>;

/// What one append request wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The offsets of the entries written (empty when none was).
    pub offsets: RangeInclusive<u64>,
    /// Entries not written because their id was already in the log.
    pub duplicates: usize,
}

/// One append request: entries, and for [`EventLog::append_unique`] their ids.
struct Append {
    entries: Vec<Vec<u8>>,
    ids: Option<Vec<ImportId>>,
    reply: Reply,
}

/// A handle to the log; clones share one writer.
#[derive(Clone)]
pub struct EventLog {
    db: Arc<SharedDatabase>,
    appends: mpsc::Sender<Append>,
    head: watch::Receiver<u64>,
    arrivals: Arc<Arrivals>,
}

/// The live requests between taking their arrival time and having their entries in the log:
/// by ticket, each one's arrival time.
#[derive(Debug, Default)]
struct Arrivals {
    under_way: std::sync::Mutex<(u64, std::collections::BTreeMap<u64, i64>)>,
}

/// A live request's arrival, from the moment its time is taken until it is dropped (once its
/// entries are in the log, or it gave up): while it lives, [`EventLog::arrived_until`] stays
/// before it, so a freshness never claims an arrival time whose events may still be coming.
#[derive(Debug)]
pub struct Arrival {
    arrivals: Arc<Arrivals>,
    ticket: u64,
    /// Its arrival time, ms since the epoch.
    pub received_ms: i64,
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.arrivals.under_way.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1.remove(&self.ticket);
    }
}

impl EventLog {
    /// Opens (or creates) the log at `path` and starts its writer thread.
    pub fn open(path: &Path) -> anyhow::Result<EventLog> {
        let db = Database::create(path).with_context(|| format!("opening event log {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        let no_ids = txn.open_table(UNIQUE_IDS)?.is_empty()?;
        let legacy = {
            let mut kind = txn.open_table(ID_KIND)?;
            let known = kind.get("id_kind")?.map(|v| v.value());
            if known.is_none() && no_ids {
                kind.insert("id_kind", TIME_ORDERED_IDS)?;
            }
            known.is_none() && !no_ids
        };
        // Salts lived here before they moved to `salts.json` (see `pipeline::salts`).
        txn.delete_table(LEGACY_SALTS)?;
        txn.commit()?;
        let last = last_offset(&db)?;
        let db = Arc::new(SharedDatabase::from_open(path, db));
        let (head_tx, head) = watch::channel(last);
        let (appends, requests) = mpsc::channel(QUEUE_DEPTH);
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("tally-log-writer".into())
            .spawn(move || write_loop(&writer_db, requests, &head_tx, legacy))?;
        Ok(EventLog { db, appends, head, arrivals: Arc::default() })
    }

    /// Takes a live request's arrival time (now), holding its place until the returned
    /// [`Arrival`] is dropped: keep it until the request's entries are appended.
    pub fn arrive(&self) -> Arrival {
        let mut under_way = self.arrivals.under_way.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let received_ms = jiff::Timestamp::now().as_millisecond();
        under_way.0 += 1;
        let ticket = under_way.0;
        under_way.1.insert(ticket, received_ms);
        Arrival { arrivals: self.arrivals.clone(), ticket, received_ms }
    }

    /// Up to when (ms since the epoch, before `now_ms`) every live request that arrived is in
    /// the log as far as [`EventLog::head`] read *after* this call shows: `now_ms`, or just
    /// before the oldest request still on its way in.
    pub fn arrived_until(&self, now_ms: i64) -> i64 {
        let under_way = self.arrivals.under_way.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        under_way.1.values().min().map_or(now_ms, |oldest| (*oldest - 1).min(now_ms))
    }

    /// Appends entries durably; returns their offsets once they are committed to disk.
    pub async fn append(&self, entries: Vec<Vec<u8>>) -> Result<RangeInclusive<u64>, LogError> {
        Ok(self.send(entries, None).await?.offsets)
    }

    /// Appends the entries whose id (`ids[i]` for `entries[i]`) was never appended this way
    /// before, in the same transaction that records the ids: an import that runs again, or
    /// resumes after a crash, adds nothing twice.
    pub async fn append_unique(&self, entries: Vec<Vec<u8>>, ids: Vec<ImportId>) -> Result<Appended, LogError> {
        self.send(entries, Some(ids)).await
    }

    async fn send(&self, entries: Vec<Vec<u8>>, ids: Option<Vec<ImportId>>) -> Result<Appended, LogError> {
        let (reply, answer) = oneshot::channel();
        self.appends.send(Append { entries, ids, reply }).await.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// Up to `max` entries after offset `after`, in order.
    pub fn read_after(&self, after: u64, max: usize) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        self.db.with(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ENTRIES)?;
            let mut out = Vec::new();
            for item in table.range(after.saturating_add(1)..)?.take(max) {
                let (offset, bytes) = item?;
                out.push((offset.value(), bytes.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// The offset of the last committed entry, updated after every commit.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    /// Deletes entries from the start of the log while they are at or below offset `upto` and
    /// arrived before `cutoff_ms`, at most `max` in one transaction (so that appends wait for
    /// one small commit at most); returns how many it deleted. It stops at the first entry that
    /// is newer, so an entry is kept at least as long as the retention, and the log's start
    /// moves forward under steady traffic, keeping its size level.
    pub fn trim(&self, upto: u64, cutoff_ms: i64, max: usize) -> anyhow::Result<usize> {
        let txn = self.db.begin_write()?;
        let deleted = {
            let mut table = txn.open_table(ENTRIES)?;
            let mut old = Vec::new();
            for item in table.range(..=upto)?.take(max) {
                let (offset, bytes) = item?;
                match codec::decode(bytes.value()).map(|entry| received_ms(&entry)) {
                    Ok(at) if at < cutoff_ms => old.push(offset.value()),
                    Ok(_) => break,
                    // An entry no reader can decode counts as old: the aggregator skipped it.
                    Err(_) => old.push(offset.value()),
                }
            }
            for offset in &old {
                table.remove(offset)?;
            }
            old.len()
        };
        self.db.commit(txn)?;
        Ok(deleted)
    }

    /// Visits entries from the newest back, at most `max`, while `visit` returns true.
    pub fn scan_newest_first(&self, max: usize, mut visit: impl FnMut(&[u8]) -> bool) -> anyhow::Result<()> {
        let txn = self.db.read()?;
        let table = txn.open_table(ENTRIES)?;
        for item in table.iter()?.rev().take(max) {
            let (_, bytes) = item?;
            if !visit(bytes.value()) {
                break;
            }
        }
        Ok(())
    }

    /// The bytes the entries and the imported ids occupy.
    pub fn table_bytes(&self) -> anyhow::Result<(u64, u64)> {
        self.db.with(|db| {
            let txn = db.begin_read()?;
            let size = |s: redb::TableStats| s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes();
            Ok((size(txn.open_table(ENTRIES)?.stats()?), size(txn.open_table(UNIQUE_IDS)?.stats()?)))
        })
    }

    /// The database the log lives in, for small tables that share its file (salts).
    pub fn database(&self) -> Arc<SharedDatabase> {
        self.db.clone()
    }

    /// `Err` with the last I/O fault until a commit succeeds again; while failing, tries an
    /// empty commit (at most every 200 ms) to see whether the fault has cleared.
    pub fn health(&self) -> Result<(), String> {
        self.db.probe();
        self.db.health()
    }
}

fn received_ms(entry: &LogEntry) -> i64 {
    match entry {
        LogEntry::Event(event) => event.received_ms,
        LogEntry::Drop(drop) => drop.received_ms,
        LogEntry::Drops(drops) => drops.received_ms,
    }
}

fn last_offset(db: &Database) -> anyhow::Result<u64> {
    let txn = db.begin_read()?;
    let table = txn.open_table(ENTRIES)?;
    Ok(table.last()?.map_or(0, |(offset, _)| offset.value()))
}

/// The writer: group-commits what is waiting. `legacy`: the log may hold ids of older releases.
fn write_loop(db: &SharedDatabase, mut requests: mpsc::Receiver<Append>, head: &watch::Sender<u64>, legacy: bool) {
    while let Some(first) = requests.blocking_recv() {
        let mut count = first.entries.len();
        let mut batch = vec![first];
        while count < MAX_ENTRIES_PER_COMMIT {
            let Ok(next) = requests.try_recv() else { break };
            count += next.entries.len();
            batch.push(next);
        }
        match db.write(|txn| commit(txn, &batch, legacy)) {
            Ok((last, new_last, written)) => {
                // The head moves before anyone hears back, so a caller that reads it after its
                // append returned sees its own entries.
                head.send_replace(new_last);
                let mut start = last + 1;
                for (request, (n, duplicates)) in batch.into_iter().zip(written) {
                    let end = start + n as u64;
                    // A caller that went away no longer needs its answer.
                    let _ = request.reply.send(Ok(Appended { offsets: start..=end.saturating_sub(1), duplicates }));
                    start = end;
                }
            }
            Err(error) => {
                tracing::error!(%error, entries = count, "event log commit failed");
                for request in batch {
                    let _ = request.reply.send(Err(LogError::Commit(error.to_string())));
                }
            }
        }
    }
}

/// Writes a batch of requests in one transaction; returns the last offset before and after it
/// and, per request, the entries written and the duplicates skipped. The last offset is read
/// from the table, so that a commit after a failed one starts where the file really ends.
type Written = (u64, u64, Vec<(usize, usize)>);
fn commit(txn: &WriteTransaction, batch: &[Append], legacy: bool) -> anyhow::Result<Written> {
    let mut written = Vec::with_capacity(batch.len());
    let last;
    let mut offset;
    {
        let mut table = txn.open_table(ENTRIES)?;
        last = table.last()?.map_or(0, |(offset, _)| offset.value());
        offset = last;
        let mut unique = txn.open_table(UNIQUE_IDS)?;
        for request in batch {
            let (mut n, mut duplicates) = (0, 0);
            for (i, entry) in request.entries.iter().enumerate() {
                if let Some(id) = request.ids.as_ref().and_then(|ids| ids.get(i)) {
                    let imported_before = match id.before {
                        Some(before) if legacy => unique.get(before)?.is_some(),
                        _ => false,
                    };
                    if imported_before || unique.insert(id.id, ())?.is_some() {
                        duplicates += 1;
                        continue;
                    }
                }
                offset += 1;
                n += 1;
                table.insert(offset, entry.as_slice())?;
            }
            written.push((n, duplicates));
        }
    }
    Ok((last, offset, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("tally-log-{name}-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn import_id(id: u128, before: u128) -> Vec<ImportId> {
        vec![ImportId { id, before: Some(before) }]
    }

    #[tokio::test]
    async fn lines_imported_by_an_older_release_still_count_as_imported() {
        let path = fresh("legacy");
        {
            // What an older release left: ids as whole hashes, no id kind.
            let db = Database::create(&path).expect("test setup");
            let txn = db.begin_write().expect("test setup");
            txn.open_table(UNIQUE_IDS).expect("test setup").insert(7u128, ()).expect("test setup");
            txn.commit().expect("test setup");
        }
        let log = EventLog::open(&path).expect("test setup");
        let again = log.append_unique(vec![vec![1]], import_id(1 << 64 | 7, 7)).await.expect("appends");
        assert_eq!(again.duplicates, 1, "the line an older release imported is skipped");
        let new = log.append_unique(vec![vec![2]], import_id(2 << 64 | 8, 8)).await.expect("appends");
        assert_eq!((new.duplicates, new.offsets), (0, 1..=1));
        let twice = log.append_unique(vec![vec![2]], import_id(2 << 64 | 8, 8)).await.expect("appends");
        assert_eq!(twice.duplicates, 1, "and a line imported now is skipped the next time");
        drop(log);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_new_log_looks_up_only_the_ids_it_records() {
        let path = fresh("new");
        let log = EventLog::open(&path).expect("test setup");
        let first = log.append_unique(vec![vec![1]], import_id(5, 9)).await.expect("appends");
        assert_eq!(first.duplicates, 0);
        drop(log);
        // Reopened (once its writer thread has let go of the file), the log still knows it holds
        // no older ids: an id that equals another line's former id is not taken for that line.
        let log = (0..100)
            .find_map(|_| {
                let opened = EventLog::open(&path).ok();
                if opened.is_none() {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                opened
            })
            .expect("the log opens again");
        let other = log.append_unique(vec![vec![2]], import_id(6, 5)).await.expect("appends");
        assert_eq!(other.duplicates, 0);
        let same = log.append_unique(vec![vec![1]], import_id(5, 9)).await.expect("appends");
        assert_eq!(same.duplicates, 1);
        drop(log);
        let _ = std::fs::remove_file(&path);
    }
}
