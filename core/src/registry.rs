//! Sites and API keys, kept in `<data_dir>/registry.json` so that the CLI can change them while
//! the server runs.
//!
//! Writers ([`add_site`], [`create_key`]) take an exclusive lock on `<data_dir>/registry.lock`,
//! read the current file, apply their change, write `registry.json.tmp`, fsync it, rename it
//! over `registry.json` and fsync the directory, so readers never see a half-written file.
//! The server holds a [`Registry`], which re-stats the file at most every 250 ms and reloads
//! it when it changed; a reload that fails keeps the previous [`Snapshot`].
//!
//! API keys are never stored: the file holds the SHA-256 of each key, and a presented bearer
//! token is hashed and looked up by hash.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File name of the registry inside the data directory.
const FILE_NAME: &str = "registry.json";
/// Temporary file written before it is renamed over [`FILE_NAME`].
const TMP_NAME: &str = "registry.json.tmp";
/// File whose exclusive lock serialises writers.
const LOCK_NAME: &str = "registry.lock";
/// The file format version this code reads and writes.
const FORMAT_VERSION: u32 = 1;
/// Time zone of a site added without one.
const DEFAULT_TIMEZONE: &str = "Etc/UTC";
/// Prefix of every API key.
const KEY_PREFIX: &str = "tally_";
/// How often [`Registry::snapshot`] re-stats the file at most.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// A site: a domain whose events Tally collects, and the time zone its days are counted in.
#[derive(Debug, Clone)]
pub struct Site {
    /// The normalised domain (see `tally_model::site::normalize_domain`), which names the site.
    pub domain: String,
    /// The IANA name of the site's time zone, e.g. `Europe/Berlin`, for display.
    pub timezone_name: String,
    /// The site's time zone, for bucketing events into days and hours.
    pub timezone: TimeZone,
    /// When the site was added.
    pub created: Timestamp,
}

/// What an API key may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScope {
    /// The key's public handle, `k_` and the first 8 hex digits of its SHA-256.
    pub id: String,
    /// The domains of the sites the key may read.
    pub sites: BTreeSet<String>,
    /// When the key was created.
    pub created: Timestamp,
}

/// Why a registry operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The domain is not a plausible host name.
    #[error("`{0}` is not a valid domain: give a bare host name such as example.com (no scheme, path or port)")]
    InvalidDomain(String),
    /// The time zone is not in the IANA time zone database.
    #[error("unknown time zone `{0}`: use an IANA name such as Europe/Berlin or Etc/UTC")]
    UnknownTimezone(String),
    /// A site with this (normalised) domain already exists.
    #[error("site {0} already exists")]
    SiteExists(String),
    /// No site with this domain exists.
    #[error("there is no site {0}: add it first with `tally site add {0}`")]
    UnknownSite(String),
    /// No key has this id.
    #[error("there is no key {0}: `tally key list` shows the keys")]
    UnknownKey(String),
    /// A key was requested for no sites at all.
    #[error("a key needs at least one site")]
    NoSites,
    /// A server that only reads the registry found none.
    #[error(
        "there is no {} (no sites or keys): create them with `tally site add DOMAIN --data-dir {}` and `tally key create`, or point --data-dir at the registry",
        path.display(),
        path.parent().map_or_else(String::new, |p| p.display().to_string())
    )]
    Missing {
        /// Where the registry file was looked for.
        path: PathBuf,
    },
    /// Reading or writing a file in the data directory failed.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file or directory that could not be accessed.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The registry file is not valid; nothing was changed.
    #[error("{} is corrupt: {reason}; fix or restore the file", path.display())]
    Corrupt {
        /// The registry file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry file was written by a newer Tally, in a format version this one can't read.
    #[error(
        "the registry file has format version {0}, but this tally only understands version {FORMAT_VERSION}: upgrade tally"
    )]
    NewerVersion(u32),
    /// The operating system's random number generator failed, so no key could be made.
    #[error("cannot generate a random key: {0}")]
    Random(String),
}

/// Adds a site and returns it.
///
/// The domain is normalised with `tally_model::site::normalize_domain` (so `WWW.Example.com.`
/// becomes `example.com`); `timezone` is an IANA time zone name and defaults to `Etc/UTC` when
/// `None`.
///
/// # Errors
/// [`RegistryError::InvalidDomain`], [`RegistryError::UnknownTimezone`],
/// [`RegistryError::SiteExists`], or a failure to read or write the registry file.
pub fn add_site(data_dir: &Path, domain: &str, timezone: Option<&str>) -> Result<Site, RegistryError> {
    let domain = normalize(domain)?;
    let tz_input = timezone.map_or(DEFAULT_TIMEZONE, str::trim);
    let tz = TimeZone::get(tz_input).map_err(|_| RegistryError::UnknownTimezone(tz_input.to_owned()))?;
    // The bundled database matches names case-insensitively; store its spelling.
    let timezone_name = tz.iana_name().unwrap_or(tz_input).to_owned();
    let created = now();
    update(data_dir, |file, snapshot| {
        if snapshot.site(&domain).is_some() {
            return Err(RegistryError::SiteExists(domain.clone()));
        }
        file.sites.push(SiteRecord {
            domain: domain.clone(),
            timezone: timezone_name.clone(),
            created: format_timestamp(created),
        });
        Ok(())
    })?;
    Ok(Site { domain, timezone_name, timezone: tz, created })
}

/// Revokes the key with public id `id`: its hash leaves the registry, and a running server
/// refuses the key (401) once it reloads the file, within a second.
///
/// # Errors
/// [`RegistryError::UnknownKey`], or a failure to read or write the registry file.
pub fn revoke_key(data_dir: &Path, id: &str) -> Result<(), RegistryError> {
    update(data_dir, |file, _| {
        let before = file.keys.len();
        file.keys.retain(|key| key.id != id);
        if file.keys.len() == before {
            return Err(RegistryError::UnknownKey(id.to_owned()));
        }
        Ok(())
    })
}

/// Creates a key scoped to the given existing sites and returns its plain text, which is shown
/// once: only its SHA-256 is stored.
///
/// Domains are normalised as in [`add_site`]; duplicates are ignored.
///
/// # Errors
/// [`RegistryError::NoSites`], [`RegistryError::InvalidDomain`], [`RegistryError::UnknownSite`],
/// [`RegistryError::Random`], or a failure to read or write the registry file.
pub fn create_key(data_dir: &Path, sites: &[String]) -> Result<String, RegistryError> {
    let domains = sites.iter().map(|site| normalize(site)).collect::<Result<BTreeSet<_>, _>>()?;
    if domains.is_empty() {
        return Err(RegistryError::NoSites);
    }
    let created = now();
    update(data_dir, |file, snapshot| {
        if let Some(unknown) = domains.iter().find(|d| snapshot.site(d).is_none()) {
            return Err(RegistryError::UnknownSite(unknown.clone()));
        }
        // A fresh random key; retry in the (astronomically unlikely) case that its short
        // public id is already taken.
        loop {
            let mut secret = [0_u8; 32];
            getrandom::fill(&mut secret).map_err(|e| RegistryError::Random(e.to_string()))?;
            let token = format!("{KEY_PREFIX}{}", hex::encode(secret));
            let hash = hash_token(&token);
            let id = id_for_hash(&hash);
            if snapshot.keys.values().any(|k| k.id == id) {
                continue;
            }
            file.keys.push(KeyRecord {
                id,
                sha256: hex::encode(hash),
                sites: domains.iter().cloned().collect(),
                created: format_timestamp(created),
            });
            return Ok(token);
        }
    })
}

/// The public id (`k_` and 8 hex digits) of a key given in plain text, e.g. to show next to a
/// freshly created key.
pub fn key_id(token: &str) -> String {
    id_for_hash(&hash_token(token))
}

/// A read-only, immutable view of the registry file at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sites by normalised domain.
    sites: BTreeMap<String, Site>,
    /// Key scopes by the SHA-256 of the key.
    keys: HashMap<[u8; 32], KeyScope>,
}

impl Snapshot {
    /// The site with exactly this domain, which must already be normalised.
    pub fn site(&self, domain: &str) -> Option<&Site> {
        self.sites.get(domain)
    }

    /// All sites, ordered by domain.
    pub fn sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.values()
    }

    /// All keys (their scopes, never the keys themselves), ordered by id.
    pub fn keys(&self) -> impl Iterator<Item = &KeyScope> {
        let mut keys: Vec<_> = self.keys.values().collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys.into_iter()
    }

    /// The sites a bearer token may read, or `None` if the token is unknown. The token is
    /// hashed and the hash looked up; the plain text is never compared.
    pub fn key_scope(&self, token: &str) -> Option<&KeyScope> {
        self.keys.get(&hash_token(token))
    }

    /// Validates a parsed file and builds the lookup tables.
    fn from_file(file: &RegistryFile) -> Result<Snapshot, String> {
        let mut sites = BTreeMap::new();
        for record in &file.sites {
            let domain = &record.domain;
            match tally_model::site::normalize_domain(domain) {
                Some(normal) if normal == *domain => {}
                Some(normal) => {
                    return Err(format!("site `{domain}` should be written `{normal}`"));
                }
                None => return Err(format!("site `{domain}` is not a valid domain")),
            }
            let timezone = TimeZone::get(&record.timezone)
                .map_err(|_| format!("site {domain} has unknown time zone `{}`", record.timezone))?;
            let created =
                parse_timestamp(&record.created).map_err(|e| format!("site {domain} has a bad `created` time: {e}"))?;
            let site = Site { domain: domain.clone(), timezone_name: record.timezone.clone(), timezone, created };
            if sites.insert(domain.clone(), site).is_some() {
                return Err(format!("site {domain} is listed twice"));
            }
        }
        let mut keys = HashMap::new();
        let mut ids = BTreeSet::new();
        for record in &file.keys {
            let id = &record.id;
            if id.is_empty() || !ids.insert(id.as_str()) {
                return Err(format!("key id `{id}` is empty or listed twice"));
            }
            let mut hash = [0_u8; 32];
            hex::decode_to_slice(&record.sha256, &mut hash)
                .map_err(|_| format!("key {id}: `sha256` is not 64 hex digits"))?;
            if record.sites.is_empty() {
                return Err(format!("key {id} has no sites"));
            }
            if let Some(unknown) = record.sites.iter().find(|s| !sites.contains_key(*s)) {
                return Err(format!("key {id} refers to unknown site `{unknown}`"));
            }
            let created =
                parse_timestamp(&record.created).map_err(|e| format!("key {id} has a bad `created` time: {e}"))?;
            let scope = KeyScope { id: id.clone(), sites: record.sites.iter().cloned().collect(), created };
            if keys.insert(hash, scope).is_some() {
                return Err(format!("key {id}: its hash is listed twice"));
            }
        }
        Ok(Snapshot { sites, keys })
    }
}

/// The server's live view of the registry: cheap to clone, reloads when the file changes.
#[derive(Clone, Debug)]
pub struct Registry {
    /// State shared by all clones.
    inner: Arc<Inner>,
}

/// State shared by the clones of a [`Registry`].
#[derive(Debug)]
struct Inner {
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
}

impl Registry {
    /// Opens the registry in `data_dir`, creating the directory and an empty registry file if
    /// they are missing.
    ///
    /// # Errors
    /// A failure to create or read the file, [`RegistryError::Corrupt`] or
    /// [`RegistryError::NewerVersion`].
    pub fn open(data_dir: &Path) -> Result<Registry, RegistryError> {
        let path = data_dir.join(FILE_NAME);
        if !path.exists() {
            create_if_missing(data_dir)?;
        }
        Registry::open_file(path)
    }

    /// Opens the registry of `data_dir`, which must exist: for the servers that only read it
    /// (`tally query`, `tally ingest`), where an empty one would only answer 401 and drop every
    /// event as from an unknown site.
    pub fn open_existing(data_dir: &Path) -> Result<Registry, RegistryError> {
        let path = data_dir.join(FILE_NAME);
        if !path.exists() {
            return Err(RegistryError::Missing { path });
        }
        Registry::open_file(path)
    }

    fn open_file(path: PathBuf) -> Result<Registry, RegistryError> {
        let (stamp, snapshot) = read_snapshot(&path)?;
        let epoch = Instant::now();
        Ok(Registry {
            inner: Arc::new(Inner {
                path,
                epoch,
                next_check_ns: AtomicU64::new(nanos(CHECK_INTERVAL)),
                current: RwLock::new(Arc::new(snapshot)),
                stamp: Mutex::new(Some(stamp)),
            }),
        })
    }

    /// The current snapshot.
    ///
    /// Re-stats the file at most every 250 ms and re-reads it if it changed. A reload that
    /// fails (say the file was hand-edited into invalid JSON) keeps the previous snapshot and
    /// logs a warning, so requests keep being served. Never blocks on I/O done by another
    /// caller: while one caller reloads, the others get the previous snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let inner = &*self.inner;
        if nanos(inner.epoch.elapsed()) >= inner.next_check_ns.load(Ordering::Relaxed) {
            let guard = match inner.stamp.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            // Check again under the lock: another caller may have just reloaded.
            if let Some(mut stamp) = guard
                && nanos(inner.epoch.elapsed()) >= inner.next_check_ns.load(Ordering::Relaxed)
            {
                self.refresh(&mut stamp);
                let next = nanos(inner.epoch.elapsed()).saturating_add(nanos(CHECK_INTERVAL));
                inner.next_check_ns.store(next, Ordering::Relaxed);
            }
        }
        Arc::clone(&inner.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Stats the file and reloads it if its stamp differs from the last one seen.
    fn refresh(&self, last: &mut Option<FileStamp>) {
        let path = &self.inner.path;
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
            Ok((stamp, snapshot)) => {
                tracing::info!(
                    path = %path.display(),
                    sites = snapshot.sites.len(),
                    keys = snapshot.keys.len(),
                    "reloaded the registry"
                );
                *self.inner.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
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

/// The registry file as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    /// Format version, [`FORMAT_VERSION`].
    version: u32,
    /// The sites.
    #[serde(default)]
    sites: Vec<SiteRecord>,
    /// The API keys.
    #[serde(default)]
    keys: Vec<KeyRecord>,
}

/// A site as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteRecord {
    /// Normalised domain.
    domain: String,
    /// IANA time zone name.
    timezone: String,
    /// RFC 3339 creation time.
    created: String,
}

/// An API key as stored: its hash, never the key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    /// Public handle, `k_` and the first 8 hex digits of the hash.
    id: String,
    /// Lower-case hex of the SHA-256 of the full key.
    sha256: String,
    /// Domains the key may read.
    sites: Vec<String>,
    /// RFC 3339 creation time.
    created: String,
}

/// Just the version of a registry file, read before the rest so that a newer format is
/// reported as such rather than as corrupt.
#[derive(Deserialize)]
struct VersionProbe {
    /// The format version, if present.
    version: Option<u32>,
}

impl RegistryFile {
    /// A registry with no sites and no keys.
    fn empty() -> RegistryFile {
        RegistryFile { version: FORMAT_VERSION, sites: Vec::new(), keys: Vec::new() }
    }

    /// Parses and validates the bytes of the registry file at `path`.
    fn decode(bytes: &[u8], path: &Path) -> Result<(RegistryFile, Snapshot), RegistryError> {
        let corrupt = |reason: String| RegistryError::Corrupt { path: path.to_owned(), reason };
        let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
        match probe.version {
            Some(FORMAT_VERSION) => {}
            Some(v) if v > FORMAT_VERSION => return Err(RegistryError::NewerVersion(v)),
            Some(v) => return Err(corrupt(format!("unsupported format version {v}"))),
            None => return Err(corrupt("no `version` field".to_owned())),
        }
        let file: RegistryFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        let snapshot = Snapshot::from_file(&file).map_err(corrupt)?;
        Ok((file, snapshot))
    }
}

/// Normalises a user-supplied domain.
fn normalize(domain: &str) -> Result<String, RegistryError> {
    tally_model::site::normalize_domain(domain).ok_or_else(|| RegistryError::InvalidDomain(domain.to_owned()))
}

/// SHA-256 of a key's plain text.
fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The public id of the key with this hash.
fn id_for_hash(hash: &[u8; 32]) -> String {
    format!("k_{}", hex::encode(&hash[..4]))
}

/// The current time, to the second.
fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Formats a timestamp as RFC 3339 in UTC.
fn format_timestamp(ts: Timestamp) -> String {
    ts.to_string()
}

/// Parses an RFC 3339 timestamp.
fn parse_timestamp(text: &str) -> Result<Timestamp, jiff::Error> {
    text.parse()
}

/// A duration in nanoseconds, saturating.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Maps an I/O error to a [`RegistryError`] naming `path`.
fn io_error(path: &Path) -> impl FnOnce(io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.to_owned(), source }
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

/// Applies a change to the registry file under the writers' lock.
///
/// `change` sees the current file and a validated snapshot of it; if it succeeds, the result
/// is validated again and atomically replaces the file. A corrupt current file is never
/// overwritten.
fn update<T>(
    data_dir: &Path,
    change: impl FnOnce(&mut RegistryFile, &Snapshot) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    let lock = lock_writers(data_dir)?;
    let path = data_dir.join(FILE_NAME);
    let (mut file, snapshot) = match fs::read(&path) {
        Ok(bytes) => RegistryFile::decode(&bytes, &path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => (RegistryFile::empty(), Snapshot::default()),
        Err(e) => return Err(io_error(&path)(e)),
    };
    let result = change(&mut file, &snapshot)?;
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
fn create_if_missing(data_dir: &Path) -> Result<(), RegistryError> {
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
    let mut bytes = serde_json::to_vec_pretty(file).map_err(|e| RegistryError::Corrupt {
        path: path.clone(),
        reason: format!("cannot serialise the registry: {e}"),
    })?;
    bytes.push(b'\n');
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
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    /// A unique, empty scratch directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let dir =
                std::env::temp_dir().join(format!("tally-registry-test-{name}-{}-{n}-{nanos}", std::process::id()));
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn snapshot_of(dir: &Path) -> Arc<Snapshot> {
        Registry::open(dir).expect("open").snapshot()
    }

    #[test]
    fn adds_a_site_and_reads_it_back() {
        let tmp = TempDir::new("add");
        let site = add_site(tmp.path(), "WWW.Example.com.", Some("europe/berlin")).expect("add");
        assert_eq!(site.domain, "example.com");
        assert_eq!(site.timezone_name, "Europe/Berlin");
        add_site(tmp.path(), "other.org", None).expect("add other");

        let snap = snapshot_of(tmp.path());
        let read = snap.site("example.com").expect("site present");
        assert_eq!(read.timezone_name, "Europe/Berlin");
        assert_eq!(read.timezone.iana_name(), Some("Europe/Berlin"));
        assert_eq!(read.created, site.created);
        assert_eq!(snap.site("other.org").map(|s| s.timezone_name.as_str()), Some("Etc/UTC"));
        let domains: Vec<_> = snap.sites().map(|s| s.domain.as_str()).collect();
        assert_eq!(domains, ["example.com", "other.org"]);
        assert!(snap.site("www.example.com").is_none(), "lookup is exact");

        let text = fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read file");
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(!tmp.path().join(TMP_NAME).exists());
    }

    #[test]
    fn duplicate_site_is_refused() {
        let tmp = TempDir::new("dup");
        add_site(tmp.path(), "example.com", None).expect("add");
        let err = add_site(tmp.path(), "www.EXAMPLE.com", Some("Asia/Tokyo")).expect_err("dup");
        assert!(matches!(err, RegistryError::SiteExists(ref d) if d == "example.com"), "{err}");
        assert_eq!(snapshot_of(tmp.path()).sites().count(), 1);
    }

    #[test]
    fn invalid_domain_is_refused() {
        let tmp = TempDir::new("baddomain");
        for bad in ["", "https://example.com", "exa mple.com", "example.com:8080"] {
            let err = add_site(tmp.path(), bad, None).expect_err(bad);
            assert!(matches!(err, RegistryError::InvalidDomain(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_timezone_is_refused() {
        let tmp = TempDir::new("badtz");
        let err = add_site(tmp.path(), "example.com", Some("Mars/Olympus_Mons")).expect_err("tz");
        assert!(matches!(err, RegistryError::UnknownTimezone(ref z) if z == "Mars/Olympus_Mons"));
        assert_eq!(snapshot_of(tmp.path()).sites().count(), 0);
    }

    #[test]
    fn key_for_unknown_site_is_refused() {
        let tmp = TempDir::new("keyunknown");
        add_site(tmp.path(), "example.com", None).expect("add");
        let sites = ["example.com".to_owned(), "nope.org".to_owned()];
        let err = create_key(tmp.path(), &sites).expect_err("unknown");
        assert!(matches!(err, RegistryError::UnknownSite(ref d) if d == "nope.org"), "{err}");
        let err = create_key(tmp.path(), &[]).expect_err("empty");
        assert!(matches!(err, RegistryError::NoSites), "{err}");
        assert_eq!(snapshot_of(tmp.path()).keys().count(), 0);
    }

    #[test]
    fn key_authorises_exactly_its_sites() {
        let tmp = TempDir::new("keyscope");
        for domain in ["a.com", "b.com", "c.com"] {
            add_site(tmp.path(), domain, None).expect("add");
        }
        let key = create_key(tmp.path(), &["a.com".to_owned(), "WWW.B.com".to_owned()]).expect("create");
        let other = create_key(tmp.path(), &["c.com".to_owned()]).expect("create other");
        assert!(key.starts_with(KEY_PREFIX));
        assert_eq!(key.len(), KEY_PREFIX.len() + 64);
        assert_ne!(key, other);

        let snap = snapshot_of(tmp.path());
        let scope = snap.key_scope(&key).expect("key known");
        let expected: BTreeSet<String> = ["a.com", "b.com"].map(str::to_owned).into();
        assert_eq!(scope.sites, expected);
        assert_eq!(scope.id, key_id(&key));
        assert!(scope.id.starts_with("k_") && scope.id.len() == 10, "{}", scope.id);
        let other_sites: Vec<_> = snap.key_scope(&other).expect("other known").sites.iter().cloned().collect();
        assert_eq!(other_sites, ["c.com"]);
        assert_eq!(snap.keys().count(), 2);

        assert!(snap.key_scope("tally_wrong").is_none());
        assert!(snap.key_scope("").is_none());
        // Differing in one character, at the end and in the middle.
        let mut last = key.clone().into_bytes();
        let end = last.len() - 1;
        last[end] = if last[end] == b'0' { b'1' } else { b'0' };
        let last = String::from_utf8(last).expect("ascii");
        assert!(snap.key_scope(&last).is_none());
        let mut middle = key.clone().into_bytes();
        middle[20] = if middle[20] == b'a' { b'b' } else { b'a' };
        let middle = String::from_utf8(middle).expect("ascii");
        assert!(snap.key_scope(&middle).is_none());
        assert!(snap.key_scope(&key[..key.len() - 1]).is_none());
    }

    #[test]
    fn file_never_contains_the_plain_key() {
        let tmp = TempDir::new("noplain");
        add_site(tmp.path(), "example.com", None).expect("add");
        let key = create_key(tmp.path(), &["example.com".to_owned()]).expect("create");
        let secret = &key[KEY_PREFIX.len()..];
        for name in [FILE_NAME, LOCK_NAME] {
            let bytes = fs::read(tmp.path().join(name)).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(secret), "{name} contains the key");
        }
        let text = fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read");
        assert!(text.contains(&hex::encode(hash_token(&key))));
    }

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

    #[test]
    fn semantic_errors_are_corrupt() {
        let tmp = TempDir::new("semantic");
        let path = tmp.path().join(FILE_NAME);
        let cases: [&[u8]; 5] = [
            br#"{"version":1,"sites":[{"domain":"WWW.a.com","timezone":"Etc/UTC","created":"2026-01-01T00:00:00Z"}]}"#,
            br#"{"version":1,"sites":[{"domain":"a.com","timezone":"Nowhere/Land","created":"2026-01-01T00:00:00Z"}]}"#,
            br#"{"version":1,"sites":[{"domain":"a.com","timezon":"Etc/UTC","created":"2026-01-01T00:00:00Z"}]}"#,
            br#"{"version":1,"keys":[{"id":"k_1","sha256":"00","sites":["a.com"],"created":"2026-01-01T00:00:00Z"}]}"#,
            br#"{"sites":[]}"#,
        ];
        for case in cases {
            fs::write(&path, case).expect("write");
            let err = Registry::open(tmp.path()).expect_err("corrupt");
            assert!(matches!(err, RegistryError::Corrupt { .. }), "{}: {err}", String::from_utf8_lossy(case));
        }
    }

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
}
