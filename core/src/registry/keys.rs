//! API keys: creating (random secret, scope, expiry), revoking, their public ids, and the
//! SHA-256 under which they are stored (the plain key never is), and reading the CLI's
//! expiry flags.

use std::collections::BTreeSet;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::atomic_write::update;
use super::file::{KeyRecord, format_timestamp, now, truncate_to_second};
use super::sites::normalize;
use super::types::{RegistryError, Scope};

/// Prefix of every API key.
pub(super) const KEY_PREFIX: &str = "tally_";
/// The longest `--expires-in`: about 100 years.
const MAX_EXPIRES_IN_HOURS: i64 = 876_600;

/// What a new key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The sites it may read (domains, normalised as in [`super::add_site`]; duplicates are
    /// ignored). At least one.
    pub sites: Vec<String>,
    /// Read-only (`stats`) or also the admin routes (`admin`).
    pub scope: Scope,
    /// When it stops working, if ever; must be in the future.
    pub expires: Option<Timestamp>,
}

impl NewKey {
    /// A stats key for these sites that never expires.
    pub fn stats(sites: Vec<String>) -> NewKey {
        NewKey { sites, scope: Scope::Stats, expires: None }
    }
}

/// Creates a stats key for the given existing sites that never expires, and returns its plain
/// text; see [`create_key_with`].
///
/// # Errors
/// As [`create_key_with`].
pub fn create_key(data_dir: &Path, sites: &[String]) -> Result<String, RegistryError> {
    create_key_with(data_dir, &NewKey::stats(sites.to_vec()))
}

/// Creates a key as `new` describes and returns its plain text, which is shown once: only its
/// SHA-256 is stored.
///
/// # Errors
/// [`RegistryError::NoSites`], [`RegistryError::InvalidDomain`], [`RegistryError::UnknownSite`],
/// [`RegistryError::AlreadyExpired`], [`RegistryError::Random`], or a failure to read or write
/// the registry file.
pub fn create_key_with(data_dir: &Path, new: &NewKey) -> Result<String, RegistryError> {
    let domains = new.sites.iter().map(|site| normalize(site)).collect::<Result<BTreeSet<_>, _>>()?;
    if domains.is_empty() {
        return Err(RegistryError::NoSites);
    }
    if let Some(expires) = new.expires
        && expires <= Timestamp::now()
    {
        return Err(RegistryError::AlreadyExpired(expires));
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
                scope: new.scope,
                expires: new.expires.map(format_timestamp),
                last_used: None,
            });
            return Ok(token);
        }
    })
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

/// The public id (`k_` and 8 hex digits) of a key given in plain text, e.g. to show next to a
/// freshly created key.
pub fn key_id(token: &str) -> String {
    id_for_hash(&hash_token(token))
}

/// The expiry `--expires-in` gives: `N` days (`30d`) or hours (`12h`) from now, to the second.
///
/// # Errors
/// A message for clap when the text is not a positive number of days or hours (at most about
/// 100 years).
pub fn parse_expires_in(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration: give a positive number of days or hours, such as 30d or 12h");
    let (number, hours_per_unit) = match text.char_indices().last() {
        Some((at, 'd' | 'D')) => (&text[..at], 24),
        Some((at, 'h' | 'H')) => (&text[..at], 1),
        _ => return Err(bad()),
    };
    let count: i64 = number.parse().map_err(|_| bad())?;
    let hours = count.checked_mul(hours_per_unit).filter(|h| (1..=MAX_EXPIRES_IN_HOURS).contains(h)).ok_or_else(bad)?;
    now().checked_add(SignedDuration::from_hours(hours)).map_err(|e| format!("`{text}` from now: {e}"))
}

/// The expiry `--expires-at` gives: an RFC 3339 instant such as `2027-01-31T00:00:00Z`.
///
/// # Errors
/// A message for clap when the text is not such an instant.
pub fn parse_expires_at(text: &str) -> Result<Timestamp, String> {
    text.trim().parse::<Timestamp>().map(truncate_to_second).map_err(|e| {
        format!("`{text}` is not an instant: give an RFC 3339 time with its offset, such as 2027-01-31T00:00:00Z ({e})")
    })
}

/// SHA-256 of a key's plain text.
pub(super) fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The public id of the key with this hash.
fn id_for_hash(hash: &[u8; 32]) -> String {
    format!("k_{}", hex::encode(&hash[..4]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_support::{TempDir, snapshot_of};
    use crate::registry::{FILE_NAME, LOCK_NAME, add_site};
    use std::fs;

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
        assert_eq!(scope.scope, Scope::Stats, "keys are stats keys unless asked otherwise");
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
    fn an_admin_key_with_an_expiry_is_stored_as_asked() {
        let tmp = TempDir::new("adminkey");
        add_site(tmp.path(), "a.com", None).expect("add");
        let expires = parse_expires_in("30d").expect("30d");
        let new = NewKey { sites: vec!["a.com".to_owned()], scope: Scope::Admin, expires: Some(expires) };
        let key = create_key_with(tmp.path(), &new).expect("create");
        let snap = snapshot_of(tmp.path());
        let scope = snap.key_scope(&key).expect("known");
        assert_eq!(scope.scope, Scope::Admin);
        assert_eq!(scope.expires, Some(expires));
        assert_eq!(scope.last_used, None);
        let days = expires.duration_since(scope.created).as_hours() / 24;
        assert!((29..=30).contains(&days), "expires {expires}, created {}", scope.created);
        assert!(!scope.is_expired_at(Timestamp::now()));
        assert!(scope.is_expired_at(expires), "a key is refused from its expiry instant on");
        assert!(!scope.is_expired_at(expires.checked_sub(SignedDuration::from_secs(1)).expect("ts")));
    }

    #[test]
    fn a_key_that_would_already_have_expired_is_refused() {
        let tmp = TempDir::new("expired");
        add_site(tmp.path(), "a.com", None).expect("add");
        for expires in ["2020-01-01T00:00:00Z", &Timestamp::now().to_string()] {
            let expires = parse_expires_at(expires).expect("parse");
            let new = NewKey { sites: vec!["a.com".to_owned()], scope: Scope::Stats, expires: Some(expires) };
            let err = create_key_with(tmp.path(), &new).expect_err("in the past");
            assert!(matches!(err, RegistryError::AlreadyExpired(at) if at == expires), "{err}");
            assert!(err.to_string().contains("not in the future"), "{err}");
        }
        assert_eq!(snapshot_of(tmp.path()).keys().count(), 0);
    }

    #[test]
    fn expiry_flags_parse_days_hours_and_instants() {
        let before = Timestamp::now();
        let in_hours = parse_expires_in("12h").expect("12h").duration_since(before).as_secs();
        assert!((12 * 3600 - 2..=12 * 3600).contains(&in_hours), "{in_hours}");
        let in_days = parse_expires_in(" 2D ").expect("2D").duration_since(before).as_secs();
        assert!((2 * 86_400 - 2..=2 * 86_400).contains(&in_days), "{in_days}");
        for bad in ["", "d", "30", "30m", "0d", "-1d", "1.5d", "30 d", "999999999999d", "x30d"] {
            let err = parse_expires_in(bad).expect_err(bad);
            assert!(err.contains("days or hours"), "{bad}: {err}");
        }
        let at = parse_expires_at("2027-01-31T00:00:00Z").expect("at");
        assert_eq!(at.to_string(), "2027-01-31T00:00:00Z");
        let offset = parse_expires_at("2027-01-31T01:00:00.750+01:00").expect("offset");
        assert_eq!(offset, at, "offsets are honoured, fractions of a second dropped");
        for bad in ["2027-01-31", "tomorrow", "2027-01-31T00:00:00"] {
            assert!(parse_expires_at(bad).is_err(), "{bad}");
        }
    }
}
