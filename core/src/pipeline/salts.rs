//! Daily visitor-id salts: random, one per UTC day, the previous day's kept for visits across
//! midnight, older ones deleted, so a past day's visitor ids cannot be tied back to IPs.
//!
//! They live in a file of their own (`salts.json` in the data directory) holding only the two
//! salts in force, written whole to a new file that replaces the old one: a deleted salt is not
//! left readable in a free page of a database file. [`SaltBook::rotate_if_due`] runs every
//! minute in `tally serve`, so the day before yesterday's salt goes at midnight even when no
//! event arrives.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tally_model::visitor::{Salt, Salts};

const DAY_MS: i64 = 86_400_000;
/// The file name in the data directory.
pub const SALTS_FILE: &str = "salts.json";

/// The file's content: the day (days since 1970-01-01, UTC) and its salts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SaltFile {
    day: i64,
    /// Hex of today's salt.
    current: String,
    /// Hex of yesterday's salt.
    previous: String,
}

/// The salt store, caching the salts of the current day.
pub struct SaltBook {
    path: PathBuf,
    cached: Mutex<Option<(i64, Salts)>>,
}

impl SaltBook {
    /// A salt book kept in `data_dir`.
    pub fn new(data_dir: &Path) -> SaltBook {
        SaltBook { path: data_dir.join(SALTS_FILE), cached: Mutex::new(None) }
    }

    /// The salts in force at `now_ms`; on the first call of a day, makes the day's salt and
    /// forgets the ones older than the day before. An error (the file cannot be written) takes
    /// no event: ingest answers 503.
    pub fn salts_at(&self, now_ms: i64) -> anyhow::Result<Salts> {
        let day = now_ms.div_euclid(DAY_MS);
        let mut cached = self.cached.lock().map_err(|_| anyhow::anyhow!("salt cache poisoned"))?;
        if let Some((cached_day, salts)) = cached.as_ref()
            && *cached_day == day
        {
            return Ok(salts.clone());
        }
        let salts = self.rotate(day)?;
        *cached = Some((day, salts.clone()));
        Ok(salts)
    }

    /// Rotates the salts if the day changed since they were last used (deleting the old one);
    /// `tally serve` calls it every minute.
    pub fn rotate_if_due(&self, now_ms: i64) -> anyhow::Result<()> {
        self.salts_at(now_ms).map(|_| ())
    }

    fn rotate(&self, day: i64) -> anyhow::Result<Salts> {
        let stored = self.read()?;
        let salt_of = |d: i64| -> Option<Salt> {
            let file = stored.as_ref()?;
            let hex = if file.day == d {
                &file.current
            } else if file.day - 1 == d {
                &file.previous
            } else {
                return None;
            };
            parse_hex(hex).map(Salt)
        };
        let (current, previous) = match (salt_of(day), salt_of(day - 1)) {
            (Some(current), Some(previous)) if stored.as_ref().is_some_and(|f| f.day == day) => {
                return Ok(Salts { current, previous });
            }
            (current, previous) => (current.map_or_else(random_salt, Ok)?, previous.map_or_else(random_salt, Ok)?),
        };
        let file = SaltFile { day, current: to_hex(&current.0), previous: to_hex(&previous.0) };
        self.write(&file)?;
        tracing::info!(day, "visitor-id salts rotated");
        Ok(Salts { current, previous })
    }

    fn read(&self) -> anyhow::Result<Option<SaltFile>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {}", self.path.display()))?))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    /// Writes the whole file anew, synced, then renames it over the old one.
    fn write(&self, file: &SaltFile) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let written = (|| {
            let mut out = std::fs::File::create(&tmp)?;
            out.write_all(&serde_json::to_vec(file)?)?;
            out.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            anyhow::Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.with_context(|| format!("writing {}", self.path.display()))
    }
}

fn random_salt() -> anyhow::Result<Salt> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    Ok(Salt(bytes))
}

fn to_hex(bytes: &[u8; 16]) -> String {
    hex::encode(bytes)
}

fn parse_hex(text: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tally-salts-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    }

    #[test]
    fn a_day_keeps_its_salt_the_next_day_keeps_it_as_previous_and_then_it_is_gone_from_the_file() {
        let dir = dir("rotate");
        let book = SaltBook::new(&dir);
        let day0 = book.salts_at(10 * DAY_MS).expect("salts");
        assert_eq!(book.salts_at(10 * DAY_MS + 5).expect("salts"), day0, "the same all day");
        let again = SaltBook::new(&dir).salts_at(10 * DAY_MS + 9).expect("salts");
        assert_eq!(again, day0, "and across restarts");
        let day1 = SaltBook::new(&dir).salts_at(11 * DAY_MS).expect("salts");
        assert_eq!(day1.previous, day0.current, "yesterday's salt continues visits");
        assert_ne!(day1.current, day0.current);
        SaltBook::new(&dir).rotate_if_due(12 * DAY_MS).expect("rotates without traffic");
        let text = std::fs::read_to_string(dir.join(SALTS_FILE)).expect("the file");
        assert!(!text.contains(&to_hex(&day0.current.0)), "the deleted salt is nowhere in the file: {text}");
        assert!(text.contains(&to_hex(&day1.current.0)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let bytes = [0xab; 16];
        assert_eq!(parse_hex(&to_hex(&bytes)), Some(bytes));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"é".repeat(16)), None);
    }
}
