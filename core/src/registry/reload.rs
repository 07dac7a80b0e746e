//! Keeping a server's snapshot current: [`Reloader::snapshot`] re-stats `registry.json` at most
//! every 250 ms and reloads it when it changed; a reload that fails keeps the previous
//! snapshot, so requests keep being served.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use super::file::RegistryFile;
use super::last_used::KeyUses;
use super::snapshot::Snapshot;
use super::types::{RegistryError, io_error};

/// How often [`Reloader::snapshot`] re-stats the file at most.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The live snapshot of one registry file and what decides when to read it again.
#[derive(Debug)]
pub(super) struct Reloader {
    /// Path of the registry file.
    path: PathBuf,
    /// Origin of `next_check_ns`.
    epoch: Instant,
    /// Nanoseconds after `epoch` when the file should be stat'ed again.
    next_check_ns: AtomicU64,
    /// The snapshot handed out; replaced wholesale on reload.
    current: RwLock<Arc<Snapshot>>,
    /// The stamp of the file as last read (`None`: missing); its lock also makes sure only one
    /// caller at a time stats and reloads.
    stamp: Mutex<Option<FileStamp>>,
    /// The record of key uses every snapshot handed out carries.
    pub(super) uses: Arc<KeyUses>,
}

impl Reloader {
    /// Reads the file at `path` now; its snapshots carry `uses`.
    pub(super) fn open(path: PathBuf, uses: Arc<KeyUses>) -> Result<Reloader, RegistryError> {
        let (stamp, mut snapshot) = read_snapshot(&path)?;
        snapshot.uses = Some(Arc::clone(&uses));
        Ok(Reloader {
            path,
            epoch: Instant::now(),
            next_check_ns: AtomicU64::new(nanos(CHECK_INTERVAL)),
            current: RwLock::new(Arc::new(snapshot)),
            stamp: Mutex::new(Some(stamp)),
            uses,
        })
    }

    /// The current snapshot.
    ///
    /// Re-stats the file at most every 250 ms and re-reads it if it changed. A reload that
    /// fails (say the file was hand-edited into invalid JSON) keeps the previous snapshot and
    /// logs a warning, so requests keep being served. Never blocks on I/O done by another
    /// caller: while one caller reloads, the others get the previous snapshot.
    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        if nanos(self.epoch.elapsed()) >= self.next_check_ns.load(Ordering::Relaxed) {
            let guard = match self.stamp.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            // Check again under the lock: another caller may have just reloaded.
            if let Some(mut stamp) = guard
                && nanos(self.epoch.elapsed()) >= self.next_check_ns.load(Ordering::Relaxed)
            {
                self.refresh(&mut stamp);
                let next = nanos(self.epoch.elapsed()).saturating_add(nanos(CHECK_INTERVAL));
                self.next_check_ns.store(next, Ordering::Relaxed);
            }
        }
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reloads the file now if it changed, waiting for a reload under way: after a write of
    /// this process, so that the next snapshot has it.
    pub(super) fn reload_now(&self) {
        let mut stamp = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh(&mut stamp);
        let next = nanos(self.epoch.elapsed()).saturating_add(nanos(CHECK_INTERVAL));
        self.next_check_ns.store(next, Ordering::Relaxed);
    }

    /// Stats the file and reloads it if its stamp differs from the last one seen.
    fn refresh(&self, last: &mut Option<FileStamp>) {
        let path = &self.path;
        let seen = match fs::metadata(path) {
            Ok(meta) => Some(FileStamp::of(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot stat the registry file; keeping the sites and keys loaded before");
                return;
            }
        };
        if seen == *last {
            return;
        }
        if seen.is_none() {
            tracing::warn!(path = %path.display(), "the registry file has disappeared; keeping the sites and keys loaded before");
            *last = None;
            return;
        }
        match read_snapshot(path) {
            Ok((stamp, mut snapshot)) => {
                tracing::debug!(
                    path = %path.display(),
                    sites = snapshot.sites.len(),
                    keys = snapshot.keys.len(),
                    "reloaded the registry"
                );
                snapshot.uses = Some(Arc::clone(&self.uses));
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
                *last = Some(stamp);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the registry; keeping the sites and keys loaded before");
                // Remember the bad version so the warning is not repeated every 250 ms; any
                // later change (e.g. the fix) alters the stamp again.
                *last = seen;
            }
        }
    }
}

/// What identifies one version of the registry file.
///
/// Writers replace the file by renaming a new one over it, which gives it a new inode (the
/// temporary file is created while the old one still exists, so it cannot reuse its inode).
/// Comparing the inode as well as the modification time and length therefore detects every
/// write even where the file system's mtime granularity is coarse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    /// Last modification time, if the platform reports it.
    modified: Option<SystemTime>,
    /// Length in bytes.
    len: u64,
    /// Device and inode number (zero where not available).
    inode: (u64, u64),
}

impl FileStamp {
    /// The stamp of a file from its metadata.
    fn of(meta: &fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let inode = (0, 0);
        FileStamp { modified: meta.modified().ok(), len: meta.len(), inode }
    }
}

/// Reads and validates the registry file, with the stamp of the very version read.
fn read_snapshot(path: &Path) -> Result<(FileStamp, Snapshot), RegistryError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    // Stat the open handle, not the path, so the stamp belongs to the bytes read.
    let stamp = FileStamp::of(&file.metadata().map_err(io_error(path))?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_error(path))?;
    let (_, snapshot) = RegistryFile::decode(&bytes, path)?;
    Ok((stamp, snapshot))
}

/// A duration in nanoseconds, saturating.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use crate::registry::test_support::{TempDir, snapshot_of};
    use crate::registry::{FILE_NAME, Registry, RegistryError, add_site};
    use std::fs;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn open_creates_dir_and_empty_file() {
        let tmp = TempDir::new("open");
        let dir = tmp.path().join("nested").join("data");
        let snap = snapshot_of(&dir);
        assert_eq!(snap.sites().count(), 0);
        let text = fs::read_to_string(dir.join(FILE_NAME)).expect("read");
        assert!(text.contains("\"version\": 1"));
    }

    #[test]
    fn registry_sees_changes_made_after_open() {
        let tmp = TempDir::new("reload");
        let registry = Registry::open(tmp.path()).expect("open");
        let clone = registry.clone();
        assert!(registry.snapshot().site("example.com").is_none());
        add_site(tmp.path(), "example.com", Some("America/New_York")).expect("add");
        thread::sleep(Duration::from_millis(300));
        let snap = clone.snapshot();
        let site = snap.site("example.com").expect("reloaded");
        assert_eq!(site.timezone_name, "America/New_York");

        // A second change of the same length is still seen (new inode).
        add_site(tmp.path(), "exampl2.com", None).expect("add");
        thread::sleep(Duration::from_millis(300));
        assert!(registry.snapshot().site("exampl2.com").is_some());
    }

    #[test]
    fn corrupt_file_after_open_keeps_the_old_snapshot() {
        let tmp = TempDir::new("corrupt");
        add_site(tmp.path(), "example.com", None).expect("add");
        let registry = Registry::open(tmp.path()).expect("open");
        assert!(registry.snapshot().site("example.com").is_some());

        let path = tmp.path().join(FILE_NAME);
        fs::write(&path, b"{\"version\":1,\"sites\":[{\"domain\":").expect("corrupt");
        thread::sleep(Duration::from_millis(300));
        assert!(registry.snapshot().site("example.com").is_some());

        // Writers refuse to clobber it, and opening it fails with a useful message.
        let err = add_site(tmp.path(), "other.org", None).expect_err("corrupt");
        assert!(matches!(err, RegistryError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("registry.json"), "{err}");
        assert!(matches!(Registry::open(tmp.path()), Err(RegistryError::Corrupt { .. })));

        // A newer format is reported as such and also keeps the old snapshot.
        fs::write(&path, b"{\"version\":2,\"sites\":[],\"things\":[]}").expect("newer");
        assert!(matches!(Registry::open(tmp.path()), Err(RegistryError::NewerVersion(2))));
        thread::sleep(Duration::from_millis(300));
        assert!(registry.snapshot().site("example.com").is_some());

        // Once fixed, the change is picked up.
        fs::write(
            &path,
            b"{\"version\":1,\"sites\":[{\"domain\":\"fixed.com\",\"timezone\":\"Etc/UTC\",\"created\":\"2026-11-28T23:00:00Z\"}],\"keys\":[]}",
        )
        .expect("fix");
        thread::sleep(Duration::from_millis(300));
        let snap = registry.snapshot();
        assert!(snap.site("fixed.com").is_some());
        assert!(snap.site("example.com").is_none());
    }
}
