//! `Snapshot`: one validated, immutable view of the registry file, with the lookups requests
//! make (sites by domain, keys by the hash of a bearer token).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::tz::TimeZone;

use super::file::{RegistryFile, parse_timestamp};
use super::keys::hash_token;
use super::last_used::KeyUses;
use super::types::{KeyScope, Site};

/// A read-only, immutable view of the registry file at one moment.
///
/// A snapshot handed out by a [`super::Registry`] also carries the registry's record of key
/// uses, so that the request path, which holds only a snapshot, can note a use
/// ([`Snapshot::note_use`]).
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sites by normalised domain.
    pub(super) sites: BTreeMap<String, Site>,
    /// Key scopes by the SHA-256 of the key.
    pub(super) keys: HashMap<[u8; 32], KeyScope>,
    /// Where uses are noted; `None` for a snapshot not handed out by a `Registry`.
    pub(super) uses: Option<Arc<KeyUses>>,
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

    /// What a bearer token may do, or `None` if the token is unknown. The token is hashed and
    /// the hash looked up; the plain text is never compared. Expiry is not checked here: see
    /// [`KeyScope::is_expired_at`].
    pub fn key_scope(&self, token: &str) -> Option<&KeyScope> {
        self.keys.get(&hash_token(token))
    }

    /// Notes that the key with id `id` was used just now. Never blocks on I/O: the registry
    /// persists the uses in the background, at most once per interval (see `last_used.rs`).
    /// Does nothing on a snapshot not handed out by a `Registry`.
    pub fn note_use(&self, id: &str) {
        if let Some(uses) = &self.uses {
            uses.note(id);
        }
    }

    /// Validates a parsed file and builds the lookup tables.
    pub(super) fn from_file(file: &RegistryFile) -> Result<Snapshot, String> {
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
            let (goals, segments) = (record.goals.clone(), record.segments.clone());
            let funnels = record.funnels.clone();
            let timezone_name = record.timezone.clone();
            let site = Site { domain: domain.clone(), timezone_name, timezone, created, goals, segments, funnels };
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
            let time = |field: &str, text: &str| {
                parse_timestamp(text).map_err(|e| format!("key {id} has a bad `{field}` time: {e}"))
            };
            let created = time("created", &record.created)?;
            let expires = record.expires.as_deref().map(|text| time("expires", text)).transpose()?;
            let last_used = record.last_used.as_deref().map(|text| time("last_used", text)).transpose()?;
            let scope = KeyScope {
                id: id.clone(),
                sites: record.sites.iter().cloned().collect(),
                created,
                scope: record.scope,
                expires,
                last_used,
            };
            if keys.insert(hash, scope).is_some() {
                return Err(format!("key {id}: its hash is listed twice"));
            }
        }
        Ok(Snapshot { sites, keys, uses: None })
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::test_support::TempDir;
    use crate::registry::{FILE_NAME, Registry, RegistryError};
    use std::fs;

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
}
