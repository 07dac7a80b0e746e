//! The data directory is private to the user who runs Tally: it holds the day's salts, key
//! hashes and the event log. Every file Tally creates is 0600 and every directory 0700 (the
//! process's umask is 077), and at start a data directory with looser modes is reported and
//! tightened.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Makes every file and directory this process creates private to its user.
pub fn restrict_new_files() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Tightens `dir` to 0700 and what it holds to 0600 (0700 for directories, one level of them
/// deep, as `store.segments/`), warning about each that was looser. A missing directory is fine.
pub fn check_data_dir(dir: &Path) -> std::io::Result<()> {
    tighten(dir)?;
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        tighten(&path)?;
        if path.is_dir()
            && let Ok(inner) = std::fs::read_dir(&path)
        {
            for inner in inner.flatten() {
                tighten(&inner.path())?;
            }
        }
    }
    Ok(())
}

/// Removes group and other permissions from `path`, warning when there were any.
fn tighten(path: &Path) -> std::io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let private = mode & 0o700;
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), now = format!("{private:o}"), "the data directory was readable by others: tightened");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loose_data_directory_is_tightened() {
        let dir = std::env::temp_dir().join(format!("tally-privacy-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("store.segments")).expect("a test file");
        std::fs::write(dir.join("registry.json"), "{}").expect("a test file");
        std::fs::write(dir.join("store.segments").join("a.parquet"), "x").expect("a test file");
        for (path, mode) in [(&dir, 0o755), (&dir.join("registry.json"), 0o644), (&dir.join("store.segments"), 0o775)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("a test file");
        }
        std::fs::set_permissions(dir.join("store.segments").join("a.parquet"), std::fs::Permissions::from_mode(0o666))
            .expect("a test file");
        check_data_dir(&dir).expect("a test file");
        let mode = |p: &Path| std::fs::metadata(p).expect("a test file").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("registry.json")), 0o600);
        assert_eq!(mode(&dir.join("store.segments")), 0o700);
        assert_eq!(mode(&dir.join("store.segments").join("a.parquet")), 0o600);
        std::fs::remove_dir_all(&dir).expect("a test file");
    }
}
