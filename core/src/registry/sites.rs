//! Adding sites: the checks of a new site (normalised domain, IANA time zone, not there yet),
//! alone (`tally site add`) or together with a key's scope (`POST /api/v1/sites`).

use std::path::Path;

use jiff::tz::TimeZone;

use super::atomic_write::update;
use super::file::{KeyRecord, SiteRecord, format_timestamp, now};
use super::types::{RegistryError, Site};

/// Time zone of a site added without one.
const DEFAULT_TIMEZONE: &str = "Etc/UTC";

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
    add(data_dir, domain, timezone, None)
}

/// Adds a site, as [`add_site`] does, and puts it in the scope of the key with id `key_id`, in
/// one write of the registry: either both happen or neither.
///
/// # Errors
/// Those of [`add_site`], and [`RegistryError::UnknownKey`] if no key has that id (say it was
/// revoked meanwhile).
pub fn add_site_for_key(
    data_dir: &Path,
    key_id: &str,
    domain: &str,
    timezone: Option<&str>,
) -> Result<Site, RegistryError> {
    add(data_dir, domain, timezone, Some(key_id))
}

/// Adds a site, and to the scope of the key `key_id` if given.
fn add(data_dir: &Path, domain: &str, timezone: Option<&str>, key_id: Option<&str>) -> Result<Site, RegistryError> {
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
        if let Some(id) = key_id {
            let key: &mut KeyRecord = file
                .keys
                .iter_mut()
                .find(|key| key.id == id)
                .ok_or_else(|| RegistryError::UnknownKey(id.to_owned()))?;
            key.sites.push(domain.clone());
        }
        file.sites.push(SiteRecord {
            domain: domain.clone(),
            timezone: timezone_name.clone(),
            created: format_timestamp(created),
            goals: Vec::new(),
            segments: Vec::new(),
            funnels: Vec::new(),
        });
        Ok(())
    })?;
    Ok(Site {
        domain,
        timezone_name,
        timezone: tz,
        created,
        goals: Vec::new(),
        segments: Vec::new(),
        funnels: Vec::new(),
    })
}

/// Normalises a user-supplied domain.
pub(super) fn normalize(domain: &str) -> Result<String, RegistryError> {
    tally_model::site::normalize_domain(domain).ok_or_else(|| RegistryError::InvalidDomain(domain.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_support::{TempDir, snapshot_of};
    use crate::registry::{FILE_NAME, TMP_NAME, create_key, key_id};
    use std::fs;

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
    fn a_site_added_for_a_key_joins_its_scope_in_one_write() {
        let tmp = TempDir::new("forkey");
        add_site(tmp.path(), "a.com", None).expect("add");
        let key = create_key(tmp.path(), &["a.com".to_owned()]).expect("key");
        let other = create_key(tmp.path(), &["a.com".to_owned()]).expect("other key");
        let site = add_site_for_key(tmp.path(), &key_id(&key), "WWW.B.com", Some("Europe/Berlin")).expect("add");
        assert_eq!((site.domain.as_str(), site.timezone_name.as_str()), ("b.com", "Europe/Berlin"));

        let snap = snapshot_of(tmp.path());
        assert!(snap.site("b.com").is_some());
        let sites: Vec<_> = snap.key_scope(&key).expect("key").sites.iter().cloned().collect();
        assert_eq!(sites, ["a.com", "b.com"]);
        let other_sites: Vec<_> = snap.key_scope(&other).expect("other").sites.iter().cloned().collect();
        assert_eq!(other_sites, ["a.com"], "another key's scope is untouched");

        // Refusals change nothing: an existing site, a bad time zone, an unknown key.
        let err = add_site_for_key(tmp.path(), &key_id(&other), "b.com", None).expect_err("exists");
        assert!(matches!(err, RegistryError::SiteExists(_)), "{err}");
        let err = add_site_for_key(tmp.path(), &key_id(&key), "c.com", Some("Nowhere/Land")).expect_err("tz");
        assert!(matches!(err, RegistryError::UnknownTimezone(_)), "{err}");
        let err = add_site_for_key(tmp.path(), "k_00000000", "c.com", None).expect_err("unknown key");
        assert!(matches!(err, RegistryError::UnknownKey(_)), "{err}");
        let snap = snapshot_of(tmp.path());
        assert!(snap.site("c.com").is_none());
        let other_sites: Vec<_> = snap.key_scope(&other).expect("other").sites.iter().cloned().collect();
        assert_eq!(other_sites, ["a.com"]);
    }
}
