//! What an event adds up to: its time bucket, its cell key (the combination of dimension values
//! it and its visit carry, which a visit keeps as its entry cell) and its counters.
//!
//! Counters are signed so that a visit can stop being a bounce later (its bounce is taken back).
//! The per-dimension rollups (`breakdown.rs`) and the segments (`segment.rs`) are built from
//! these; the full-combination cells themselves are kept only as a test oracle.

use serde::{Deserialize, Serialize};
#[cfg(test)]
use std::collections::BTreeMap;

/// A time bucket: hours since 1970-01-01T00:00 in the site's local time.
pub type Bucket = i64;

/// The dimension values of one cell. Event dimensions come from the event, visit dimensions from
/// the first event of its visit. An empty string means "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellKey {
    /// `event:name`.
    pub name: String,
    /// `event:hostname`.
    pub hostname: String,
    /// `event:page`: the path.
    pub page: String,
    /// `visit:source`.
    pub source: String,
    /// `visit:utm_source`.
    pub utm_source: String,
    /// `visit:utm_medium`.
    pub utm_medium: String,
    /// `visit:utm_campaign`.
    pub utm_campaign: String,
    /// `visit:utm_content`.
    pub utm_content: String,
    /// `visit:utm_term`.
    pub utm_term: String,
    /// `visit:country`: ISO 3166-1 alpha-2.
    pub country: String,
    /// `visit:device`.
    pub device: String,
    /// `visit:browser`.
    pub browser: String,
    /// `visit:browser_version`.
    pub browser_version: String,
    /// `visit:os`.
    pub os: String,
    /// `visit:os_version`.
    pub os_version: String,
    /// `visit:entry_page`: the path of the visit's first event.
    pub entry_page: String,
    /// `visit:entry_page_hostname`: the hostname of the visit's first event.
    pub entry_page_hostname: String,
    /// `visit:referrer`: the visit's cleaned referrer URL.
    pub referrer: String,
    /// `visit:channel`: the visit's acquisition channel.
    pub channel: String,
    /// `visit:region`: ISO 3166-2 subdivision code.
    pub region: String,
    /// `visit:city`: city name.
    pub city: String,
}

/// Additive counters of one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Events of any name.
    pub events: i64,
    /// Events named `pageview`.
    pub pageviews: i64,
    /// Visits that started here (entry cell).
    pub visits: i64,
    /// Of those, visits that are (so far) bounces.
    pub bounces: i64,
    /// Summed duration of those visits, in milliseconds.
    pub duration_ms: i64,
    /// Summed page views of those visits.
    pub visit_pageviews: i64,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counters) {
        self.events += other.events;
        self.pageviews += other.pageviews;
        self.visits += other.visits;
        self.bounces += other.bounces;
        self.duration_ms += other.duration_ms;
        self.visit_pageviews += other.visit_pageviews;
    }

    /// Whether every counter is zero.
    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }

    /// Every counter negated: what takes `self` back.
    pub fn negated(&self) -> Counters {
        Counters::from_array(self.to_array().map(|v| -v))
    }

    /// The counters in [`Counters::NAMES`] order.
    pub fn to_array(&self) -> [i64; 6] {
        [self.events, self.pageviews, self.visits, self.bounces, self.duration_ms, self.visit_pageviews]
    }

    /// Counters from values in [`Counters::NAMES`] order.
    pub fn from_array([events, pageviews, visits, bounces, duration_ms, visit_pageviews]: [i64; 6]) -> Counters {
        Counters { events, pageviews, visits, bounces, duration_ms, visit_pageviews }
    }

    /// The counters' names, in the order of [`Counters::to_array`].
    pub const NAMES: [&'static str; 6] = ["events", "pageviews", "visits", "bounces", "duration_ms", "visit_pageviews"];
}

/// Counters and distinct visitors per (bucket, cell): the brute-force oracle the projections'
/// tests (`session.rs`, `segment.rs`) check against. No production path keeps cells any more.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rollup {
    /// Counters per cell.
    pub cells: BTreeMap<(Bucket, CellKey), Counters>,
    /// The visitors seen per cell.
    pub visitors: std::collections::BTreeSet<(Bucket, CellKey, u64)>,
}

#[cfg(test)]
impl Rollup {
    /// Adds what one event contributes: its counters and visitor to its cell, its visit's change
    /// to the entry cell.
    pub fn add_contribution(&mut self, c: &crate::session::Contribution<'_>) {
        let key = c.key();
        self.cells.entry((c.bucket, key.clone())).or_default().add(&c.counters);
        self.visitors.insert((c.bucket, key, c.visitor));
        if !c.visit.is_zero() {
            self.cells.entry((c.visit_bucket, c.entry.clone())).or_default().add(&c.visit);
        }
    }
}
