//! When each key was last used: the request path notes a use in memory
//! ([`KeyUses::note`], no I/O), and a background thread of the serving process writes the
//! uses to `registry.json` (the keys' `last_used`) at most once per interval, through the same
//! locked, atomic update as the CLI, and only when a recorded time would change.
//!
//! The interval is [`DEFAULT_PERSIST_INTERVAL`] (a minute), so a key's `last_used` is at most
//! about a minute behind, and a busy server rewrites the file at most once a minute. The
//! environment variable [`PERSIST_INTERVAL_ENV`] (`TALLY_KEY_USE_PERSIST_MS`, milliseconds)
//! overrides it; it exists for tests, which can't wait a minute. Uses not yet written when the
//! registry is dropped (a clean stop) are written then; a crash loses at most one interval.

use std::collections::HashMap;
use std::mem;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;
use std::time::Duration;

use jiff::Timestamp;

use super::atomic_write::{Outcome, update_if};
use super::file::{format_timestamp, now, parse_timestamp};
use super::types::RegistryError;

/// How often uses are written at most, by default.
pub const DEFAULT_PERSIST_INTERVAL: Duration = Duration::from_secs(60);
/// Environment variable that overrides [`DEFAULT_PERSIST_INTERVAL`], in milliseconds (tests).
pub const PERSIST_INTERVAL_ENV: &str = "TALLY_KEY_USE_PERSIST_MS";

/// The uses of keys not written yet, and the thread that writes them.
#[derive(Debug)]
pub(super) struct KeyUses {
    /// The data directory whose registry gets the uses.
    data_dir: PathBuf,
    /// Shortest time between two writes.
    interval: Duration,
    /// Last use of each key (by id) since the last write, to the second.
    pending: Mutex<HashMap<String, Timestamp>>,
    /// Whether the writing thread was started (on the first use).
    started: AtomicBool,
    /// Writes of the registry file made so far.
    writes: AtomicU64,
    /// This record itself, for the writing thread, which must not keep it alive.
    this: Weak<KeyUses>,
}

impl KeyUses {
    /// A record of the uses of the keys of `data_dir`'s registry, written every `interval`.
    pub(super) fn new(data_dir: PathBuf, interval: Duration) -> Arc<KeyUses> {
        Arc::new_cyclic(|this| KeyUses {
            data_dir,
            interval,
            pending: Mutex::new(HashMap::new()),
            started: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            this: this.clone(),
        })
    }

    /// Notes a use of key `id` now; the writing thread starts with the first use.
    pub(super) fn note(&self, id: &str) {
        let now = now();
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            match pending.get_mut(id) {
                Some(last) => *last = (*last).max(now),
                None => {
                    pending.insert(id.to_owned(), now);
                }
            }
        }
        if !self.started.swap(true, Ordering::Relaxed) {
            self.start();
        }
    }

    /// Writes of the registry file made so far.
    #[cfg(test)]
    pub(super) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Starts the thread that writes the uses every interval while this record lives.
    fn start(&self) {
        let this = self.this.clone();
        let interval = self.interval;
        let spawned = thread::Builder::new().name("tally-key-uses".to_owned()).spawn(move || {
            loop {
                thread::sleep(interval);
                let Some(uses) = this.upgrade() else { return };
                uses.persist();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the thread that records when keys were last used");
        }
    }

    /// Writes the pending uses, if any; on failure keeps them for the next attempt.
    fn persist(&self) {
        let taken = mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if taken.is_empty() {
            return;
        }
        match self.write(&taken) {
            Ok(0) => {}
            Ok(changed) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(keys = changed, "recorded when keys were last used");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot record when keys were last used; will retry");
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                for (id, used) in taken {
                    let last = pending.entry(id).or_insert(used);
                    *last = (*last).max(used);
                }
            }
        }
    }

    /// Sets `last_used` of the keys in `uses` that still exist where it would move forward, in
    /// one update; the number of keys changed (0: the file was left alone).
    fn write(&self, uses: &HashMap<String, Timestamp>) -> Result<usize, RegistryError> {
        update_if(&self.data_dir, |file, _| {
            let mut changed = 0;
            for key in &mut file.keys {
                let Some(&used) = uses.get(&key.id) else { continue };
                let recorded = key.last_used.as_deref().and_then(|text| parse_timestamp(text).ok());
                if recorded.is_none_or(|recorded| recorded < used) {
                    key.last_used = Some(format_timestamp(used));
                    changed += 1;
                }
            }
            Ok((changed, if changed > 0 { Outcome::Changed } else { Outcome::Unchanged }))
        })
    }
}

impl Drop for KeyUses {
    /// Writes what is still pending, so a clean stop loses no use.
    fn drop(&mut self) {
        self.persist();
    }
}

/// The interval from [`PERSIST_INTERVAL_ENV`], else [`DEFAULT_PERSIST_INTERVAL`].
pub(super) fn interval_from_env() -> Duration {
    match std::env::var(PERSIST_INTERVAL_ENV) {
        Err(_) => DEFAULT_PERSIST_INTERVAL,
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                tracing::warn!(
                    value = %text,
                    "{PERSIST_INTERVAL_ENV} is not a positive number of milliseconds; using {}s",
                    DEFAULT_PERSIST_INTERVAL.as_secs()
                );
                DEFAULT_PERSIST_INTERVAL
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_support::TempDir;
    use crate::registry::{FILE_NAME, Registry, add_site, create_key, key_id, revoke_key};
    use std::time::Instant;

    /// The registry of `dir` with uses written every `interval`.
    fn open(dir: &std::path::Path, interval: Duration) -> Registry {
        Registry::open_file(dir, interval).expect("open")
    }

    /// `last_used` of key `id` as the file has it now.
    fn last_used_in_file(dir: &std::path::Path, id: &str) -> Option<Timestamp> {
        let text = std::fs::read_to_string(dir.join(FILE_NAME)).expect("read");
        let file: serde_json::Value = serde_json::from_str(&text).expect("json");
        let key = file["keys"].as_array().expect("keys").iter().find(|k| k["id"] == id).cloned().expect("key");
        key["last_used"].as_str().map(|t| t.parse().expect("timestamp"))
    }

    #[test]
    fn uses_are_written_at_most_once_per_interval() {
        let tmp = TempDir::new("lastused");
        add_site(tmp.path(), "a.com", None).expect("add");
        let used = create_key(tmp.path(), &["a.com".to_owned()]).expect("key");
        let idle = create_key(tmp.path(), &["a.com".to_owned()]).expect("idle key");
        let (used_id, idle_id) = (key_id(&used), key_id(&idle));
        let interval = Duration::from_millis(400);
        let registry = open(tmp.path(), interval);
        let uses = Arc::clone(&registry.inner.reloader.uses);

        let started = Timestamp::now();
        let clock = Instant::now();
        registry.snapshot().note_use(&used_id);
        assert_eq!(last_used_in_file(tmp.path(), &used_id), None, "a use is never written by the request");
        // Busy for a bit more than three intervals: a use every 5 ms.
        while clock.elapsed() < Duration::from_millis(1_300) {
            registry.snapshot().note_use(&used_id);
            thread::sleep(Duration::from_millis(5));
        }
        let writes = uses.writes();
        let elapsed = clock.elapsed();
        let most = u64::try_from(elapsed.as_millis() / interval.as_millis()).expect("small");
        assert!((1..=most).contains(&writes), "{writes} writes in {elapsed:?} at most one each {interval:?}");

        let last = last_used_in_file(tmp.path(), &used_id).expect("the use was written");
        assert!(last >= jiff::Timestamp::from_second(started.as_second()).expect("ts") && last <= Timestamp::now());
        assert_eq!(last_used_in_file(tmp.path(), &idle_id), None, "an unused key has no last use");

        // The snapshot shows what was written once the file is reloaded (polled: the reload
        // runs on its own thread, later on a loaded machine).
        let deadline = Instant::now() + Duration::from_secs(10);
        while registry.snapshot().key_scope(&used).expect("known").last_used != Some(last) && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(registry.snapshot().key_scope(&used).expect("known").last_used, Some(last));
        assert_eq!(registry.snapshot().key_scope(&idle).expect("known").last_used, None);
    }

    #[test]
    fn no_use_means_no_write_and_a_clean_stop_writes_what_is_pending() {
        let tmp = TempDir::new("lastused-stop");
        add_site(tmp.path(), "a.com", None).expect("add");
        let key = create_key(tmp.path(), &["a.com".to_owned()]).expect("key");
        let gone = create_key(tmp.path(), &["a.com".to_owned()]).expect("key to revoke");
        let registry = open(tmp.path(), Duration::from_secs(3_600));
        let uses = Arc::clone(&registry.inner.reloader.uses);
        let before = std::fs::read(tmp.path().join(FILE_NAME)).expect("read");

        let snapshot = registry.snapshot();
        snapshot.note_use(&key_id(&key));
        snapshot.note_use(&key_id(&gone));
        revoke_key(tmp.path(), &key_id(&gone)).expect("revoke");
        thread::sleep(Duration::from_millis(50));
        assert_eq!(uses.writes(), 0, "nothing is written before the interval");
        assert_eq!(last_used_in_file(tmp.path(), &key_id(&key)), None);

        // Dropping the last handle (a clean stop) writes the pending uses; the revoked key's is
        // skipped without error.
        drop((snapshot, registry, uses));
        assert!(last_used_in_file(tmp.path(), &key_id(&key)).is_some(), "pending use lost on drop");
        let text = std::fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read");
        assert!(!text.contains(&key_id(&gone)), "{text}");
        assert_ne!(before, text.into_bytes());

        // A registry that never saw a use writes nothing.
        let path = tmp.path().join(FILE_NAME);
        let stamp = std::fs::metadata(&path).expect("stat").modified().expect("mtime");
        drop(open(tmp.path(), Duration::from_millis(10)));
        thread::sleep(Duration::from_millis(50));
        assert_eq!(std::fs::metadata(&path).expect("stat").modified().expect("mtime"), stamp);
    }

    #[test]
    fn a_use_already_recorded_is_not_written_again() {
        let tmp = TempDir::new("lastused-same");
        add_site(tmp.path(), "a.com", None).expect("add");
        let key = create_key(tmp.path(), &["a.com".to_owned()]).expect("key");
        let id = key_id(&key);
        let uses = KeyUses::new(tmp.path().to_owned(), Duration::from_secs(3_600));
        let used = now();
        let once = HashMap::from([(id.clone(), used)]);
        assert_eq!(uses.write(&once).expect("write"), 1);
        assert_eq!(uses.write(&once).expect("again"), 0, "the same time again changes nothing");
        let earlier = HashMap::from([(id.clone(), used.checked_sub(jiff::SignedDuration::from_secs(5)).expect("ts"))]);
        assert_eq!(uses.write(&earlier).expect("earlier"), 0, "last_used never moves back");
        assert_eq!(last_used_in_file(tmp.path(), &id), Some(used));
    }
}
