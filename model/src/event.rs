//! The event record: what the edge hands on and the log keeps, one per accepted event or drop.
//!
//! It holds the checked raw fields (so history can be recomputed with fixed normalisation) and
//! what only the edge knows (country, region, city, visitor ids, arrival time). It never holds an IP address.

use crate::reject::DropReason;
use crate::wire::Revenue;
use serde::{Deserialize, Serialize};

/// A globally unique event id, so that consumers can drop duplicates that retries create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId(pub u128);

/// The visitor's ids under today's salt and under yesterday's, so a visit can cross midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VisitorIds {
    /// The id under the current day's salt.
    pub current: u64,
    /// The id under the previous day's salt.
    pub previous: u64,
}

/// One accepted event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id.
    pub id: EventId,
    /// When the edge received it, in milliseconds since the Unix epoch.
    pub received_ms: i64,
    /// The site id (normalised domain).
    pub site: String,
    /// Event name; `pageview` for page views.
    pub name: String,
    /// The page URL as sent (checked: an http(s) URL with a host).
    pub url: String,
    /// The referrer as sent, if any.
    pub referrer: Option<String>,
    /// Custom properties, sorted by name.
    pub props: Vec<(String, String)>,
    /// Revenue, if any.
    pub revenue: Option<Revenue>,
    /// Whether the event ends a bounce.
    pub interactive: bool,
    /// The user agent, cut to [`crate::limits::MAX_USER_AGENT_CHARS`].
    pub user_agent: String,
    /// ISO 3166-1 alpha-2 country code from the edge's geo data, if known.
    pub country: Option<String>,
    /// The visitor's keyed-hash ids; see [`crate::visitor`].
    pub visitor: VisitorIds,
    /// ISO 3166-2 subdivision code (`US-TX`) from the edge's geo data, if known (never without a
    /// country).
    pub region: Option<String>,
    /// City name from the edge's geo data, if known (never without a country).
    pub city: Option<String>,
    /// What an `engagement` event measured (codec version 5); `None` on every other event.
    pub engagement: Option<Engagement>,
    /// Whether the tracker runs in hash mode (Plausible's `h`): the URL's fragment is part of
    /// the page's path (codec version 6).
    #[serde(default)]
    pub hash_mode: bool,
}

/// The name of the events Plausible's tracker sends when a page is hidden or left: they carry
/// scroll depth and engaged time ([`Engagement`]), and change no visit and no event count.
pub const ENGAGEMENT: &str = "engagement";

/// What one `engagement` event measured on its page since the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engagement {
    /// The deepest the page was scrolled, percent of its height (0–100), if the tracker sent it.
    pub scroll_depth: Option<u8>,
    /// Milliseconds the page was visible and focused since the previous engagement event.
    pub engaged_ms: u32,
}

impl Event {
    /// Whether this is a page view.
    pub fn is_pageview(&self) -> bool {
        self.name == "pageview"
    }

    /// Whether this is an engagement event: named [`ENGAGEMENT`] (the wire gives it an
    /// [`Engagement`]; one logged before codec version 5 has none).
    pub fn is_engagement(&self) -> bool {
        self.name == ENGAGEMENT
    }
}

/// One dropped event: counted per site and reason, never aggregated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drop {
    /// Unique id, like an event's, so that consumers count a drop once however often retries
    /// deliver it. `None` only for drops logged in codec version 1, which had no id.
    pub id: Option<EventId>,
    /// The registered site it named, or `None` (unknown site, no valid domain).
    pub site: Option<String>,
    /// Why it was dropped.
    pub reason: DropReason,
    /// When the edge received it, in milliseconds since the Unix epoch.
    pub received_ms: i64,
}

/// Dropped events counted together: what a server refused without writing each one to the log
/// (rate limits), so that a flood of refusals costs one entry per site and second, not one per
/// request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    /// Unique id, so that consumers count it once however often it is delivered.
    pub id: EventId,
    /// The registered site the refused events named, or `None`.
    pub site: Option<String>,
    /// Why they were dropped.
    pub reason: DropReason,
    /// When the last of them was received, in milliseconds since the Unix epoch.
    pub received_ms: i64,
    /// How many events were dropped.
    pub count: u64,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogEntry {
    /// An accepted event.
    Event(Box<Event>),
    /// A dropped event.
    Drop(Drop),
    /// Dropped events counted together (codec version 4).
    Drops(DropCount),
}
