//! Changing `registry.json` atomically: writers take an exclusive lock on `registry.lock`, read
//! the current file, apply their change, write `registry.json.tmp`, fsync it, rename it over
//! `registry.json` and fsync the directory, so readers never see a half-written file and no
//! writer loses another's change.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::file::{FORMAT_VERSION, RegistryFile};
use super::snapshot::Snapshot;
use super::types::{RegistryError, io_error};

/// File name of the registry inside the data directory.
pub(super) const FILE_NAME: &str = "registry.json";
/// Temporary file written before it is renamed over [`FILE_NAME`].
pub(super) const TMP_NAME: &str = "registry.json.tmp";
/// File whose exclusive lock serialises writers.
pub(super) const LOCK_NAME: &str = "registry.lock";

/// Whether a change wants the file written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The change altered the file: write it.
    Changed,
    /// Nothing changed: leave the file (and its stamp) alone.
    Unchanged,
}

/// Applies a change to the registry file under the writers' lock and always writes the result.
///
/// `change` sees the current file and a validated snapshot of it; if it succeeds, the result
/// is validated again and atomically replaces the file. A corrupt current file is never
/// overwritten.
pub(super) fn update<T>(
    data_dir: &Path,
    change: impl FnOnce(&mut RegistryFile, &Snapshot) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    update_if(data_dir, |file, snapshot| change(file, snapshot).map(|result| (result, Outcome::Changed)))
}

/// As [`update`], but writes the file only when `change` says it changed something.
pub(super) fn update_if<T>(
    data_dir: &Path,
    change: impl FnOnce(&mut RegistryFile, &Snapshot) -> Result<(T, Outcome), RegistryError>,
) -> Result<T, RegistryError> {
    let lock = lock_writers(data_dir)?;
    let path = data_dir.join(FILE_NAME);
    let (mut file, snapshot) = match fs::read(&path) {
        Ok(bytes) => RegistryFile::decode(&bytes, &path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => (RegistryFile::empty(), Snapshot::default()),
        Err(e) => return Err(io_error(&path)(e)),
    };
    let (result, write) = change(&mut file, &snapshot)?;
    if write == Outcome::Unchanged {
        return Ok(result);
    }
    file.version = FORMAT_VERSION;
    Snapshot::from_file(&file).map_err(|reason| RegistryError::Corrupt {
        path: path.clone(),
        reason: format!("refusing to write an invalid registry: {reason}"),
    })?;
    replace_file(data_dir, &file)?;
    drop(lock);
    Ok(result)
}

/// Writes an empty registry file unless, under the writers' lock, one exists.
pub(super) fn create_if_missing(data_dir: &Path) -> Result<(), RegistryError> {
    let lock = lock_writers(data_dir)?;
    let path = data_dir.join(FILE_NAME);
    match fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            replace_file(data_dir, &RegistryFile::empty())?;
        }
        Err(e) => return Err(io_error(&path)(e)),
    }
    drop(lock);
    Ok(())
}

/// Creates `data_dir` if needed and takes the writers' exclusive lock, which is released when
/// the returned file is dropped (closed). Blocks while another writer holds it.
fn lock_writers(data_dir: &Path) -> Result<File, RegistryError> {
    fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    let lock_path = data_dir.join(LOCK_NAME);
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_error(&lock_path))?;
    lock.lock().map_err(io_error(&lock_path))?;
    Ok(lock)
}

/// Atomically replaces the registry file with `file`: writes and fsyncs the temporary file,
/// renames it over the registry file and fsyncs the directory. Call with the lock held.
fn replace_file(data_dir: &Path, file: &RegistryFile) -> Result<(), RegistryError> {
    let path = data_dir.join(FILE_NAME);
    let bytes = file.encode(&path)?;
    let tmp_path = data_dir.join(TMP_NAME);
    let written = write_synced(&tmp_path, &bytes).and_then(|()| fs::rename(&tmp_path, &path).map_err(io_error(&path)));
    if let Err(e) = written {
        // Best effort: a stale temporary file is harmless, as the next writer truncates it.
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }
    sync_dir(data_dir)
}

/// Writes `bytes` to a new file at `path` and flushes it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut file = File::create(path).map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Flushes a directory's entries (here: the rename) to disk.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

/// Directories can't be opened for syncing here; the rename is as durable as the platform
/// makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), RegistryError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::add_site;
    use crate::registry::test_support::{TempDir, snapshot_of};
    use std::thread;

    #[test]
    fn concurrent_writers_all_land() {
        let tmp = TempDir::new("concurrent");
        let dir = tmp.path().to_owned();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let dir = dir.clone();
                thread::spawn(move || add_site(&dir, &format!("site{i}.example.com"), None).map(|s| s.domain))
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread").expect("add");
        }
        let snap = snapshot_of(&dir);
        assert_eq!(snap.sites().count(), 8);
        for i in 0..8 {
            assert!(snap.site(&format!("site{i}.example.com")).is_some(), "site{i}");
        }
    }

    #[test]
    fn an_unchanged_update_leaves_the_file_alone() {
        let tmp = TempDir::new("unchanged");
        add_site(tmp.path(), "example.com", None).expect("add");
        let path = tmp.path().join(FILE_NAME);
        let before = fs::metadata(&path).expect("stat");
        update_if(tmp.path(), |_, _| Ok(((), Outcome::Unchanged))).expect("update");
        let after = fs::metadata(&path).expect("stat");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(before.ino(), after.ino(), "the file was replaced");
        }
        assert_eq!(before.modified().ok(), after.modified().ok());
        assert!(!tmp.path().join(TMP_NAME).exists());
    }
}
