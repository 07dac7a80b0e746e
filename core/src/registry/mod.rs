//! Sites and API keys, kept in `<data_dir>/registry.json` so that the CLI can change them while
//! the server runs; [`Registry`] is the server's live handle on them.
//!
//! - `types.rs`: [`Site`], [`KeyScope`] (with its [`Scope`], `stats` or `admin`, expiry and last
//!   use) and [`RegistryError`].
//! - `file.rs`: the file format (`RegistryFile`, its version, decoding and encoding).
//! - `snapshot.rs`: [`Snapshot`], one validated view of the file, and its lookups.
//! - `atomic_write.rs`: every change goes through the writers' lock, a temporary file, fsync,
//!   rename and a directory fsync, so readers never see a half-written file.
//! - `reload.rs`: the server re-stats the file at most every 250 ms and reloads it when it
//!   changed; a reload that fails keeps the previous snapshot.
//! - `sites.rs`: [`add_site`] and [`add_site_for_key`].
//! - `keys.rs`: [`create_key_with`] (scope, expiry), [`revoke_key`], [`key_id`], and the hashes:
//!   API keys are never stored, the file holds the SHA-256 of each key, and a presented bearer
//!   token is hashed and looked up by hash.
//! - `last_used.rs`: the uses the server notes per request, written at most once a minute.

mod atomic_write;
mod file;
mod funnels;
mod goals;
mod keys;
mod last_used;
mod reload;
mod segments;
mod sites;
mod snapshot;
#[cfg(test)]
mod test_support;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atomic_write::{FILE_NAME, create_if_missing};
#[cfg(test)]
use atomic_write::{LOCK_NAME, TMP_NAME};
use last_used::KeyUses;
use reload::Reloader;

pub use funnels::{MAX_FUNNEL_STEPS, MAX_FUNNELS, MIN_FUNNEL_STEPS, remove_funnel, save_funnel, step_goals};
pub use goals::{MAX_GOALS, add_goal, remove_goal};
pub use keys::{NewKey, create_key, create_key_with, key_id, parse_expires_at, parse_expires_in, revoke_key};
pub use last_used::{DEFAULT_PERSIST_INTERVAL, PERSIST_INTERVAL_ENV};
pub use segments::{MAX_SEGMENTS, add_segment, remove_segment};
pub use sites::{add_site, add_site_for_key};
pub use snapshot::Snapshot;
pub use types::{Funnel, Goal, KeyScope, RegistryError, SavedSegment, Scope, Site};

/// The server's live view of the registry: cheap to clone, reloads when the file changes, and
/// records the keys' uses (see [`Snapshot::note_use`]).
#[derive(Clone, Debug)]
pub struct Registry {
    /// State shared by all clones.
    inner: Arc<Inner>,
}

/// State shared by the clones of a [`Registry`].
#[derive(Debug)]
struct Inner {
    /// The data directory holding the registry file.
    data_dir: PathBuf,
    /// The current snapshot and its reloading.
    reloader: Reloader,
}

impl Registry {
    /// Opens the registry in `data_dir`, creating the directory and an empty registry file if
    /// they are missing.
    ///
    /// # Errors
    /// A failure to create or read the file, [`RegistryError::Corrupt`] or
    /// [`RegistryError::NewerVersion`].
    pub fn open(data_dir: &Path) -> Result<Registry, RegistryError> {
        if !data_dir.join(FILE_NAME).exists() {
            create_if_missing(data_dir)?;
        }
        Registry::open_file(data_dir, last_used::interval_from_env())
    }

    /// Opens the registry of `data_dir`, which must exist: for the servers that only read it
    /// (`tally query`, `tally ingest`), where an empty one would only answer 401 and drop every
    /// event.
    ///
    /// # Errors
    /// [`RegistryError::Missing`], and those of [`Registry::open`].
    pub fn open_existing(data_dir: &Path) -> Result<Registry, RegistryError> {
        let path = data_dir.join(FILE_NAME);
        if !path.exists() {
            return Err(RegistryError::Missing { path });
        }
        Registry::open_file(data_dir, last_used::interval_from_env())
    }

    /// Reads the registry file of `data_dir`, whose key uses are written every `persist_uses`.
    fn open_file(data_dir: &Path, persist_uses: Duration) -> Result<Registry, RegistryError> {
        let uses = KeyUses::new(data_dir.to_owned(), persist_uses);
        let reloader = Reloader::open(data_dir.join(FILE_NAME), uses)?;
        Ok(Registry { inner: Arc::new(Inner { data_dir: data_dir.to_owned(), reloader }) })
    }

    /// The current snapshot.
    ///
    /// Re-stats the file at most every 250 ms and re-reads it if it changed. A reload that
    /// fails (say the file was hand-edited into invalid JSON) keeps the previous snapshot and
    /// logs a warning, so requests keep being served. Never blocks on I/O done by another
    /// caller: while one caller reloads, the others get the previous snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.reloader.snapshot()
    }

    /// Adds a site and puts it in the scope of key `key_id` in one write, as
    /// [`add_site_for_key`] does, then reloads, so the next snapshot has the site. Blocking: it
    /// waits for the writers' lock and syncs the file to disk.
    ///
    /// # Errors
    /// As [`add_site_for_key`].
    pub fn add_site_for_key(&self, key_id: &str, domain: &str, timezone: Option<&str>) -> Result<Site, RegistryError> {
        let site = add_site_for_key(&self.inner.data_dir, key_id, domain, timezone)?;
        self.inner.reloader.reload_now();
        Ok(site)
    }

    /// Adds a goal to a site unless it has it, as [`add_goal`] does, then reloads. Blocking.
    ///
    /// # Errors
    /// As [`add_goal`].
    pub fn add_goal(&self, site: &str, goal: Goal) -> Result<(Goal, bool), RegistryError> {
        let added = add_goal(&self.inner.data_dir, site, goal)?;
        self.inner.reloader.reload_now();
        Ok(added)
    }

    /// Removes a goal by its name, as [`remove_goal`] does, then reloads. Blocking.
    ///
    /// # Errors
    /// As [`remove_goal`].
    pub fn remove_goal(&self, site: &str, name: &str) -> Result<(), RegistryError> {
        remove_goal(&self.inner.data_dir, site, name)?;
        self.inner.reloader.reload_now();
        Ok(())
    }

    /// Saves or replaces a funnel, as [`save_funnel`] does, then reloads. Blocking.
    ///
    /// # Errors
    /// As [`save_funnel`].
    pub fn save_funnel(&self, site: &str, funnel: Funnel) -> Result<bool, RegistryError> {
        let replaced = save_funnel(&self.inner.data_dir, site, funnel)?;
        self.inner.reloader.reload_now();
        Ok(replaced)
    }

    /// Removes a funnel by its name, as [`remove_funnel`] does, then reloads. Blocking.
    ///
    /// # Errors
    /// As [`remove_funnel`].
    pub fn remove_funnel(&self, site: &str, name: &str) -> Result<(), RegistryError> {
        remove_funnel(&self.inner.data_dir, site, name)?;
        self.inner.reloader.reload_now();
        Ok(())
    }

    /// Saves a segment (filters already checked), as [`add_segment`] does, then reloads. Blocking.
    ///
    /// # Errors
    /// As [`add_segment`].
    pub fn add_segment(&self, site: &str, name: &str, filters: &str) -> Result<SavedSegment, RegistryError> {
        let saved = add_segment(&self.inner.data_dir, site, name, filters)?;
        self.inner.reloader.reload_now();
        Ok(saved)
    }

    /// Removes a segment, as [`remove_segment`] does, then reloads. Blocking.
    ///
    /// # Errors
    /// As [`remove_segment`].
    pub fn remove_segment(&self, site: &str, id: u32) -> Result<(), RegistryError> {
        remove_segment(&self.inner.data_dir, site, id)?;
        self.inner.reloader.reload_now();
        Ok(())
    }
}
