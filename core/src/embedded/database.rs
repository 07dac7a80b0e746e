//! A redb database that recovers from I/O faults without a restart.
//!
//! After one failed write (disk full, an I/O error) redb refuses every later operation until the
//! database is closed and opened again, even once the fault has cleared. Every user of the file
//! therefore takes the database from here for one operation at a time; an I/O error closes it,
//! marks it failing (for `/api/health`), and the next operation opens it again, which redb
//! repairs from its last commit. Nothing committed is lost and nothing uncommitted was
//! acknowledged, so recovery neither loses nor duplicates.

use anyhow::Context;
use redb::{
    CommitError, Database, DatabaseError, ReadTransaction, ReadableDatabase, StorageError, TableError,
    TransactionError, WriteTransaction,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How long after a failed reopen the next operation tries again (so that a full disk is not
/// asked once per request).
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// One database file, reopened after an I/O fault.
pub struct SharedDatabase {
    path: PathBuf,
    open: RwLock<Option<Arc<Database>>>,
    fault: Mutex<Option<Fault>>,
}

#[derive(Debug, Clone)]
struct Fault {
    error: String,
    retry_at: Instant,
}

impl SharedDatabase {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<SharedDatabase> {
        let db = Database::create(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(SharedDatabase::from_open(path, db))
    }

    /// Wraps a database already opened at `path`.
    pub fn from_open(path: &Path, db: Database) -> SharedDatabase {
        SharedDatabase { path: path.to_owned(), open: RwLock::new(Some(Arc::new(db))), fault: Mutex::new(None) }
    }

    /// The database, opened again if a fault closed it. Hold it for one operation only: while
    /// anyone holds the closed one, it cannot be opened again.
    pub fn get(&self) -> anyhow::Result<Arc<Database>> {
        if let Some(db) = self.open.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            return Ok(db.clone());
        }
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = open.as_ref() {
            return Ok(db.clone());
        }
        let mut fault = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = fault.as_ref()
            && Instant::now() < f.retry_at
        {
            anyhow::bail!("{} is failing: {}", self.path.display(), f.error);
        }
        match Database::create(&self.path) {
            Ok(db) => {
                tracing::warn!(path = %self.path.display(), "database open again after an I/O fault");
                let db = Arc::new(db);
                *open = Some(db.clone());
                Ok(db)
            }
            Err(error) => {
                let error = format!("{} cannot be opened again yet: {error}", self.path.display());
                *fault = Some(Fault { error: error.clone(), retry_at: Instant::now() + RETRY_AFTER });
                anyhow::bail!(error)
            }
        }
    }

    /// Runs `op` on the database; if it fails with an I/O error, closes the database so that the
    /// next operation opens it again.
    pub fn with<T>(&self, op: impl FnOnce(&Database) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let db = self.get()?;
        let outcome = op(&db);
        drop(db);
        if let Err(error) = &outcome
            && is_io_fault(error)
        {
            self.fault(error);
        }
        outcome
    }

    /// A read transaction.
    pub fn read(&self) -> anyhow::Result<ReadTransaction> {
        self.with(|db| Ok(db.begin_read()?))
    }

    /// A write transaction, to be committed with [`SharedDatabase::commit`].
    pub fn begin_write(&self) -> anyhow::Result<WriteTransaction> {
        self.with(|db| Ok(db.begin_write()?))
    }

    /// Commits `txn`: an I/O error closes the database, a commit ends a fault.
    pub fn commit(&self, txn: WriteTransaction) -> anyhow::Result<()> {
        match txn.commit() {
            Ok(()) => {
                self.committed();
                Ok(())
            }
            Err(error) => {
                let error = anyhow::Error::from(error);
                if is_io_fault(&error) {
                    self.fault(&error);
                }
                Err(error)
            }
        }
    }

    /// Runs `op` in one write transaction and commits it, as [`SharedDatabase::with`]; a commit
    /// ends a fault.
    pub fn write<T>(&self, op: impl FnOnce(&WriteTransaction) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let out = self.with(|db| {
            let txn = db.begin_write()?;
            let out = op(&txn)?;
            txn.commit()?;
            Ok(out)
        })?;
        self.committed();
        Ok(out)
    }

    /// Records that a write committed: the fault, if any, is over.
    pub fn committed(&self) {
        let mut fault = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        if fault.take().is_some() {
            tracing::warn!(path = %self.path.display(), "database writes again after an I/O fault");
        }
    }

    /// While failing, tries an empty write (at most every 200 ms), so that health turns good once
    /// the fault has cleared even when nothing else writes.
    pub fn probe(&self) {
        let due = self
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|f| Instant::now() >= f.retry_at);
        if due && let Err(error) = self.write(|_| Ok(())) {
            tracing::debug!(error = format!("{error:#}"), "database still failing");
            if let Some(f) = self.fault.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                f.retry_at = Instant::now() + RETRY_AFTER;
            }
        }
    }

    /// Records an I/O fault and closes the database (once the last holder lets go of it).
    pub fn fault(&self, error: &anyhow::Error) {
        tracing::error!(path = %self.path.display(), error = format!("{error:#}"), "database I/O fault; it will be opened again");
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Fault { error: format!("{error:#}"), retry_at: Instant::now() + RETRY_AFTER });
        *self.open.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// `Err` with the last fault from an I/O error until a write commits again.
    pub fn health(&self) -> Result<(), String> {
        match self.fault.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            Some(fault) => Err(fault.error.clone()),
            None => Ok(()),
        }
    }
}

/// Whether `error` is (or wraps) an I/O failure of redb, after which the database must be opened
/// again.
pub fn is_io_fault(error: &anyhow::Error) -> bool {
    let storage = |e: &StorageError| matches!(e, StorageError::Io(_) | StorageError::PreviousIo);
    error.chain().any(|e| {
        if let Some(e) = e.downcast_ref::<StorageError>() {
            return storage(e);
        }
        if let Some(e) = e.downcast_ref::<redb::Error>() {
            return matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo);
        }
        match (
            e.downcast_ref::<TransactionError>(),
            e.downcast_ref::<CommitError>(),
            e.downcast_ref::<TableError>(),
            e.downcast_ref::<DatabaseError>(),
        ) {
            (Some(TransactionError::Storage(s)), ..)
            | (_, Some(CommitError::Storage(s)), ..)
            | (_, _, Some(TableError::Storage(s)), _)
            | (.., Some(DatabaseError::Storage(s))) => storage(s),
            _ => e.downcast_ref::<std::io::Error>().is_some(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableDefinition;

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    #[test]
    fn io_errors_are_told_from_others() {
        let io = || std::io::Error::other("no space left on device");
        assert!(is_io_fault(&anyhow::Error::from(CommitError::Storage(StorageError::Io(io())))));
        assert!(is_io_fault(&anyhow::Error::from(TransactionError::Storage(StorageError::PreviousIo))));
        assert!(is_io_fault(&anyhow::Error::from(StorageError::Io(io())).context("writing")));
        assert!(!is_io_fault(&anyhow::Error::from(StorageError::ValueTooLarge(1 << 40))));
        assert!(!is_io_fault(&anyhow::anyhow!("a bug")));
    }

    #[test]
    fn a_fault_closes_the_database_and_the_next_use_opens_it_with_what_was_committed() {
        let path = std::env::temp_dir().join(format!("tally-shared-db-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let db = SharedDatabase::open(&path).expect("opens");
        db.write(|txn| Ok(txn.open_table(T)?.insert(1, 10).map(|_| ())?)).expect("writes");
        db.fault(&anyhow::anyhow!("pretend the disk filled"));
        assert!(db.health().is_err(), "failing until opened again");
        assert!(db.read().is_err(), "not opened again at once");
        std::thread::sleep(RETRY_AFTER + Duration::from_millis(50));
        let value = db.with(|d| Ok(d.begin_read()?.open_table(T)?.get(1)?.map(|v| v.value()))).expect("reopens");
        assert_eq!(value, Some(10));
        assert!(db.health().is_err(), "a read does not show that writes work again");
        std::thread::sleep(RETRY_AFTER + Duration::from_millis(50));
        db.probe();
        assert_eq!(db.health(), Ok(()), "a write does");
        drop(db);
        let _ = std::fs::remove_file(&path);
    }
}
