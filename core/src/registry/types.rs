//! The registry's public types: sites, keys and their scopes, and the errors of its operations.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::file::FORMAT_VERSION;

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
    /// Its goals: they apply to all of its history as soon as they are saved.
    pub goals: Vec<Goal>,
    /// Its saved segments: named filter lists that queries name as `["is", "segment", [id]]`.
    pub segments: Vec<SavedSegment>,
    /// Its funnels.
    pub funnels: Vec<Funnel>,
}

/// A funnel: 2 to 8 of the site's goals, by name, in the order visitors should reach them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Funnel {
    /// Its name, unique within the site.
    pub name: String,
    /// Its steps: goal names (`Signup`, `Visit /product/*`), in order.
    pub steps: Vec<String>,
    /// Whether no other event may come between its steps (Plausible's strict order).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_order: bool,
}

/// A saved segment: a named list of Stats API filters (combined with AND).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedSegment {
    /// Its id within the site, from 1.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// The filters, as a query writes them (JSON text, checked when saved).
    pub filters: String,
}

/// A goal: what counts as a conversion on a site.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Goal {
    /// A custom event of this name.
    Event {
        /// The event's name.
        event_name: String,
        /// A revenue goal's currency (ISO 4217): grouped by goal, its revenue metrics count its
        /// events' revenue in this currency.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
    },
    /// A page view of a path that matches this pattern: `*` stands for any characters but `/`,
    /// `**` for any characters.
    Page {
        /// The path pattern, starting with `/`.
        page_path: String,
    },
    /// An engagement event (sent when a page is hidden or left) on a path that matches this
    /// pattern, of a scroll depth at least this threshold.
    Scroll {
        /// The path pattern, as a page goal's.
        page_path: String,
        /// The least scroll depth, percent (0 to 100).
        scroll_threshold: u8,
    },
}

impl Goal {
    /// Its name in answers, as Plausible names goals: the event's name, or `Visit /path`.
    pub fn name(&self) -> String {
        match self {
            Goal::Event { event_name, .. } => event_name.clone(),
            Goal::Page { page_path } => format!("Visit {page_path}"),
            Goal::Scroll { page_path, scroll_threshold } => format!("Scroll {scroll_threshold}% on {page_path}"),
        }
    }
}

/// What a key may do besides reading its sites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read-only: the Stats API (`POST /api/v2/query`, `GET /api/v2/drops`) for its sites. The
    /// scope of every key stored without one.
    #[default]
    Stats,
    /// Everything a stats key may do, plus the admin routes (`/api/v1/sites`).
    Admin,
}

impl Scope {
    /// Whether this is the default scope, which the file leaves unwritten.
    pub fn is_stats(&self) -> bool {
        *self == Scope::Stats
    }

    /// The scope's name as the CLI and the file write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Stats => "stats",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Scope, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "stats" => Ok(Scope::Stats),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!("unknown key scope `{text}`: use `stats` (read-only) or `admin`")),
        }
    }
}

/// An API key as the registry knows it: what it may read and do, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScope {
    /// The key's public handle, `k_` and the first 8 hex digits of its SHA-256.
    pub id: String,
    /// The domains of the sites the key may read.
    pub sites: BTreeSet<String>,
    /// When the key was created.
    pub created: Timestamp,
    /// Whether the key may use the admin routes as well.
    pub scope: Scope,
    /// When the key stops working, if ever.
    pub expires: Option<Timestamp>,
    /// When a server last persisted a use of the key (at most about a minute behind).
    pub last_used: Option<Timestamp>,
}

impl KeyScope {
    /// Whether the key has expired at `now`: from its expiry instant on, it is refused.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }
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
    /// A site's goal or saved segment is malformed, missing, or one too many; the message
    /// says which.
    #[error("{0}")]
    InvalidSetting(String),
    /// A key was requested for no sites at all.
    #[error("a key needs at least one site")]
    NoSites,
    /// A key was requested with an expiry that is not in the future.
    #[error(
        "the key would expire at {0}, which is not in the future: give a later --expires-at or a positive --expires-in"
    )]
    AlreadyExpired(Timestamp),
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

/// Maps an I/O error to a [`RegistryError`] naming `path`.
pub(super) fn io_error(path: &std::path::Path) -> impl FnOnce(io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.to_owned(), source }
}
