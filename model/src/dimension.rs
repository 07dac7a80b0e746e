//! The dimensions a query can group and filter by, and where each lives in a cell.
//!
//! Most are fixed when an event arrives and live in its cell ([`Dimension::CELL`]). The exit
//! page and its hostname are known only when a visit ends: they are not in cells or segments,
//! only in the per-dimension rollups, which move a visit's counters as its exit page moves.

use crate::rollup::CellKey;
use crate::session::Exit;

/// A non-time dimension, named as in Plausible's Stats API v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// `event:name`.
    Name,
    /// `event:hostname`.
    Hostname,
    /// `event:page`.
    Page,
    /// `visit:source`.
    Source,
    /// `visit:utm_source`.
    UtmSource,
    /// `visit:utm_medium`.
    UtmMedium,
    /// `visit:utm_campaign`.
    UtmCampaign,
    /// `visit:utm_content`.
    UtmContent,
    /// `visit:utm_term`.
    UtmTerm,
    /// `visit:country`.
    Country,
    /// `visit:device`.
    Device,
    /// `visit:browser`.
    Browser,
    /// `visit:browser_version`.
    BrowserVersion,
    /// `visit:os`.
    Os,
    /// `visit:os_version`.
    OsVersion,
    /// `visit:entry_page`: the path of the visit's first event.
    EntryPage,
    /// `visit:entry_page_hostname`: the hostname of the visit's first event.
    EntryPageHostname,
    /// `visit:referrer`: the visit's referrer URL, cleaned (see [`crate::source::Referral::url`]).
    Referrer,
    /// `visit:channel`: the visit's acquisition channel (see [`crate::channel`]).
    Channel,
    /// `visit:region`: ISO 3166-2 subdivision code (`US-TX`).
    Region,
    /// `visit:city`: city name, as the edge's geo data gives it.
    City,
    /// `visit:exit_page`: the path of the visit's latest page view.
    ExitPage,
    /// `visit:exit_page_hostname`: the hostname of the visit's latest page view.
    ExitPageHostname,
}

impl Dimension {
    /// Every dimension with its API name: those of a cell, then the exit page and its hostname.
    pub const ALL: [(Dimension, &'static str); 23] = [
        (Dimension::Name, "event:name"),
        (Dimension::Hostname, "event:hostname"),
        (Dimension::Page, "event:page"),
        (Dimension::Source, "visit:source"),
        (Dimension::UtmSource, "visit:utm_source"),
        (Dimension::UtmMedium, "visit:utm_medium"),
        (Dimension::UtmCampaign, "visit:utm_campaign"),
        (Dimension::UtmContent, "visit:utm_content"),
        (Dimension::UtmTerm, "visit:utm_term"),
        (Dimension::Country, "visit:country"),
        (Dimension::Device, "visit:device"),
        (Dimension::Browser, "visit:browser"),
        (Dimension::BrowserVersion, "visit:browser_version"),
        (Dimension::Os, "visit:os"),
        (Dimension::OsVersion, "visit:os_version"),
        (Dimension::EntryPage, "visit:entry_page"),
        (Dimension::EntryPageHostname, "visit:entry_page_hostname"),
        (Dimension::Referrer, "visit:referrer"),
        (Dimension::Channel, "visit:channel"),
        (Dimension::Region, "visit:region"),
        (Dimension::City, "visit:city"),
        (Dimension::ExitPage, "visit:exit_page"),
        (Dimension::ExitPageHostname, "visit:exit_page_hostname"),
    ];

    /// The dimensions a cell (and a segment row) holds, in [`Dimension::ALL`] order.
    pub const CELL: [(Dimension, &'static str); 21] = {
        let mut cell = [(Dimension::Name, ""); 21];
        let mut i = 0;
        while i < cell.len() {
            cell[i] = Self::ALL[i];
            i += 1;
        }
        cell
    };

    /// Whether this dimension lives in a cell (all but the exit page and its hostname).
    pub fn in_cells(self) -> bool {
        !self.is_exit()
    }

    /// Whether an event's cell holds the event's own value of this dimension (its name, hostname
    /// and page) rather than its visit's ([`crate::session::Contribution::value`]).
    pub fn is_event_own(self) -> bool {
        matches!(self, Dimension::Name | Dimension::Hostname | Dimension::Page)
    }

    /// Whether this is `visit:exit_page` or `visit:exit_page_hostname`.
    pub fn is_exit(self) -> bool {
        matches!(self, Dimension::ExitPage | Dimension::ExitPageHostname)
    }

    /// The dimension with this API name.
    pub fn parse(name: &str) -> Option<Dimension> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(d, _)| *d)
    }

    /// This dimension's API name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(d, _)| *d == self).map_or("", |(_, n)| n)
    }

    /// This dimension's stable number in storage keys (never reused, never renumbered).
    pub fn code(self) -> u8 {
        match self {
            Dimension::Name => 1,
            Dimension::Hostname => 2,
            Dimension::Page => 3,
            Dimension::Source => 4,
            Dimension::UtmSource => 5,
            Dimension::UtmMedium => 6,
            Dimension::UtmCampaign => 7,
            Dimension::UtmContent => 8,
            Dimension::UtmTerm => 9,
            Dimension::Country => 10,
            Dimension::Device => 11,
            Dimension::Browser => 12,
            Dimension::BrowserVersion => 13,
            Dimension::Os => 14,
            Dimension::OsVersion => 15,
            Dimension::EntryPage => 16,
            Dimension::EntryPageHostname => 17,
            Dimension::Referrer => 18,
            Dimension::ExitPage => 19,
            Dimension::ExitPageHostname => 20,
            Dimension::Channel => 21,
            Dimension::Region => 22,
            Dimension::City => 23,
        }
    }

    /// This dimension's value in a visit's exit page (`""` for a cell dimension).
    pub fn exit_value(self, exit: &Exit) -> &str {
        match self {
            Dimension::ExitPage => &exit.page,
            Dimension::ExitPageHostname => &exit.hostname,
            _ => "",
        }
    }

    /// This dimension's value in a cell (`""` for the exit page and its hostname, which cells do
    /// not hold).
    pub fn value(self, key: &CellKey) -> &str {
        match self {
            Dimension::Name => &key.name,
            Dimension::Hostname => &key.hostname,
            Dimension::Page => &key.page,
            Dimension::Source => &key.source,
            Dimension::UtmSource => &key.utm_source,
            Dimension::UtmMedium => &key.utm_medium,
            Dimension::UtmCampaign => &key.utm_campaign,
            Dimension::UtmContent => &key.utm_content,
            Dimension::UtmTerm => &key.utm_term,
            Dimension::Country => &key.country,
            Dimension::Device => &key.device,
            Dimension::Browser => &key.browser,
            Dimension::BrowserVersion => &key.browser_version,
            Dimension::Os => &key.os,
            Dimension::OsVersion => &key.os_version,
            Dimension::EntryPage => &key.entry_page,
            Dimension::EntryPageHostname => &key.entry_page_hostname,
            Dimension::Referrer => &key.referrer,
            Dimension::Channel => &key.channel,
            Dimension::Region => &key.region,
            Dimension::City => &key.city,
            Dimension::ExitPage | Dimension::ExitPageHostname => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dimension;

    #[test]
    fn names_round_trip() {
        for (dimension, name) in Dimension::ALL {
            assert_eq!(Dimension::parse(name), Some(dimension));
            assert_eq!(dimension.name(), name);
        }
        assert_eq!(Dimension::parse("visit:nope"), None);
    }

    #[test]
    fn storage_codes_are_pinned() {
        let codes: Vec<u8> = Dimension::ALL.iter().map(|(d, _)| d.code()).collect();
        let expected: Vec<u8> = (1..=18).chain([21, 22, 23, 19, 20]).collect();
        assert_eq!(codes, expected, "storage codes are part of the on-disk key format");
    }
}
