//! The normalised view of an event: page, source and user-agent facts, derived purely from the
//! logged record, so reprocessing with fixed code recomputes them exactly.

use crate::agent::{self, Agent};
use crate::event::Event;
use crate::page::{self, Page, PageError};
use crate::source::referral;

/// The source shown for visits without one, as Plausible names it.
pub const DIRECT: &str = "Direct / None";

/// What an event says once normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Host, path, UTM parameters and `ref` of the page.
    pub page: Page,
    /// The visit's source: `utm_source`, else `ref`, else the referrer's source, else [`DIRECT`].
    pub source: String,
    /// The referrer as `visit:referrer` shows it: host and path, else [`DIRECT`].
    pub referrer: String,
    /// The acquisition channel ([`crate::channel::channel`]).
    pub channel: &'static str,
    /// Browser, OS, device and bot verdict.
    pub agent: Agent,
}

impl Facts {
    /// Normalises an event. Fails only if its URL is not a valid page URL.
    pub fn of(event: &Event) -> Result<Facts, PageError> {
        Facts::with_agent(event, agent::classify(&event.user_agent))
    }

    /// Normalises an event whose user agent was already classified (callers that see the same
    /// user agents again and again cache [`agent::classify`]).
    pub fn with_agent(event: &Event, agent: Agent) -> Result<Facts, PageError> {
        let page = page::parse_page(&event.url)?;
        let referral = referral(event.referrer.as_deref(), &page.hostname);
        let source = page
            .utm
            .source
            .clone()
            .or_else(|| page.ref_param.clone())
            .or_else(|| referral.as_ref().map(|r| r.source()))
            .unwrap_or_else(|| DIRECT.to_owned());
        let referrer = referral.map_or_else(|| DIRECT.to_owned(), |r| r.url());
        let channel = crate::channel::channel(&source, &page.utm, page.click);
        Ok(Facts { source, referrer, channel, agent, page })
    }
}
