//! The registry file's format: `RegistryFile` and its records as stored in `registry.json`,
//! the format version, and decoding (version check, JSON, validation) and encoding.
//!
//! Times are RFC 3339 strings in UTC. A key's `scope`, `expires` and `last_used` are written
//! only when they differ from the defaults (`stats`, never, never), so a registry that uses none
//! of them is exactly the layout of the first version.

use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::snapshot::Snapshot;
use super::types::{RegistryError, Scope};

/// The file format version this code reads and writes.
///
/// Scopes, expiry and last use did not bump it (still 1): every record of the file has been
/// `deny_unknown_fields` since version 1, so an older tally refuses a file that carries
/// `scope`, `expires` or `last_used` as corrupt (naming the unknown field), and a running older
/// server keeps the sites and keys it had loaded, as it does for a newer version. It can never
/// silently misread such a file: it can't take an admin key for a stats key and go on, nor
/// ignore an expiry and accept an expired key. A file that uses none of the new fields is
/// unchanged, so the older tally keeps reading it. Bump this when an older reader could read a
/// new file without error but get it wrong.
pub(super) const FORMAT_VERSION: u32 = 1;

/// The registry file as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegistryFile {
    /// Format version, [`FORMAT_VERSION`].
    pub(super) version: u32,
    /// The sites.
    #[serde(default)]
    pub(super) sites: Vec<SiteRecord>,
    /// The API keys.
    #[serde(default)]
    pub(super) keys: Vec<KeyRecord>,
}

/// A site as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SiteRecord {
    /// Normalised domain.
    pub(super) domain: String,
    /// IANA time zone name.
    pub(super) timezone: String,
    /// RFC 3339 creation time.
    pub(super) created: String,
    /// Its goals; absent (the layout before goals) means none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) goals: Vec<super::types::Goal>,
    /// Its saved segments; absent means none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) segments: Vec<super::types::SavedSegment>,
    /// Its funnels; absent means none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) funnels: Vec<super::types::Funnel>,
}

/// An API key as stored: its hash, never the key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyRecord {
    /// Public handle, `k_` and the first 8 hex digits of the hash.
    pub(super) id: String,
    /// Lower-case hex of the SHA-256 of the full key.
    pub(super) sha256: String,
    /// Domains the key may read.
    pub(super) sites: Vec<String>,
    /// RFC 3339 creation time.
    pub(super) created: String,
    /// `stats` or `admin`; absent (the layout before scopes) means `stats`.
    #[serde(default, skip_serializing_if = "Scope::is_stats")]
    pub(super) scope: Scope,
    /// RFC 3339 time from which the key is refused; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) expires: Option<String>,
    /// RFC 3339 time of the key's last use a server persisted; absent: none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_used: Option<String>,
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
    pub(super) fn empty() -> RegistryFile {
        RegistryFile { version: FORMAT_VERSION, sites: Vec::new(), keys: Vec::new() }
    }

    /// Parses and validates the bytes of the registry file at `path`.
    pub(super) fn decode(bytes: &[u8], path: &Path) -> Result<(RegistryFile, Snapshot), RegistryError> {
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

    /// The stored site `domain` (normalised), to change.
    pub(super) fn site_mut(&mut self, domain: &str) -> Result<&mut SiteRecord, RegistryError> {
        self.sites.iter_mut().find(|s| s.domain == domain).ok_or_else(|| RegistryError::UnknownSite(domain.to_owned()))
    }

    /// The file's bytes as written: pretty JSON and a final newline.
    pub(super) fn encode(&self, path: &Path) -> Result<Vec<u8>, RegistryError> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| RegistryError::Corrupt {
            path: path.to_owned(),
            reason: format!("cannot serialise the registry: {e}"),
        })?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// The current time, to the second (the precision the file keeps).
pub(super) fn now() -> Timestamp {
    truncate_to_second(Timestamp::now())
}

/// `ts` without its fraction of a second.
pub(super) fn truncate_to_second(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

/// Formats a timestamp as RFC 3339 in UTC.
pub(super) fn format_timestamp(ts: Timestamp) -> String {
    ts.to_string()
}

/// Parses an RFC 3339 timestamp.
pub(super) fn parse_timestamp(text: &str) -> Result<Timestamp, jiff::Error> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_support::TempDir;
    use crate::registry::{FILE_NAME, Registry, add_site, create_key_with, key_id, keys::NewKey};
    use std::fs;

    /// A key record in the layout of the first version: no scope, expiry or last use.
    const OLD_LAYOUT: &str = r#"{
  "version": 1,
  "sites": [{"domain": "a.com", "timezone": "Etc/UTC", "created": "2026-01-01T00:00:00Z"}],
  "keys": [{"id": "k_00000000", "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
            "sites": ["a.com"], "created": "2026-01-02T00:00:00Z"}]
}"#;

    #[test]
    fn an_old_file_without_scopes_loads_its_keys_as_stats() {
        let tmp = TempDir::new("oldlayout");
        fs::write(tmp.path().join(FILE_NAME), OLD_LAYOUT).expect("write");
        let snap = Registry::open(tmp.path()).expect("open").snapshot();
        let keys: Vec<_> = snap.keys().collect();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].id, "k_00000000");
        assert_eq!(keys[0].scope, Scope::Stats);
        assert_eq!(keys[0].expires, None);
        assert_eq!(keys[0].last_used, None);

        // A write leaves the old layout as it was: nothing new is added to a stats key.
        add_site(tmp.path(), "b.com", None).expect("add");
        let text = fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read");
        for field in ["scope", "expires", "last_used"] {
            assert!(!text.contains(field), "{field} written for an old key: {text}");
        }
    }

    #[test]
    fn new_fields_round_trip_and_stats_is_not_written() {
        let tmp = TempDir::new("newfields");
        add_site(tmp.path(), "a.com", None).expect("add");
        let expires: Timestamp = "2099-01-31T00:00:00Z".parse().expect("ts");
        let admin = create_key_with(
            tmp.path(),
            &NewKey { sites: vec!["a.com".to_owned()], scope: Scope::Admin, expires: Some(expires) },
        )
        .expect("admin");
        let stats = create_key_with(tmp.path(), &NewKey::stats(vec!["a.com".to_owned()])).expect("stats");

        let text = fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read");
        let file: serde_json::Value = serde_json::from_str(&text).expect("json");
        let record =
            |id: &str| file["keys"].as_array().expect("keys").iter().find(|k| k["id"] == id).cloned().expect("record");
        let admin_record = record(&key_id(&admin));
        assert_eq!(admin_record["scope"], "admin");
        assert_eq!(admin_record["expires"], "2099-01-31T00:00:00Z");
        let stats_record = record(&key_id(&stats));
        let fields: Vec<_> = stats_record.as_object().expect("object").keys().cloned().collect();
        assert_eq!(fields, ["created", "id", "sha256", "sites"], "a stats key keeps the old layout");

        let snap = Registry::open(tmp.path()).expect("open").snapshot();
        let admin_scope = snap.key_scope(&admin).expect("admin known");
        assert_eq!((admin_scope.scope, admin_scope.expires), (Scope::Admin, Some(expires)));
        assert_eq!(snap.key_scope(&stats).expect("stats known").scope, Scope::Stats);
    }

    #[test]
    fn a_bad_scope_or_time_is_corrupt() {
        let tmp = TempDir::new("badnew");
        let path = tmp.path().join(FILE_NAME);
        let site = r#""sites":[{"domain":"a.com","timezone":"Etc/UTC","created":"2026-01-01T00:00:00Z"}]"#;
        let key = r#""id":"k_00000000","sha256":"0000000000000000000000000000000000000000000000000000000000000000","sites":["a.com"],"created":"2026-01-01T00:00:00Z""#;
        for extra in [r#""scope":"root""#, r#""expires":"soon""#, r#""last_used":"yesterday""#] {
            let text = format!(r#"{{"version":1,{site},"keys":[{{{key},{extra}}}]}}"#);
            fs::write(&path, &text).expect("write");
            let err = Registry::open(tmp.path()).expect_err(extra);
            assert!(matches!(err, RegistryError::Corrupt { .. }), "{extra}: {err}");
        }
    }
}
