//! The normalised view of an event: page, source and user-agent facts, derived purely from the
//! logged record, so reprocessing with fixed code recomputes them exactly.

use crate::agent::{self, Agent};
use crate::event::Event;
use crate::page::{self, Page, PageError};
use crate::source::referral;
use std::sync::Arc;

/// The source shown for visits without one, as Plausible names it.
pub const DIRECT: &str = "Direct / None";

/// What an event says once normalised: what its page URL and referrer say, and its user agent.
/// Both parts are shared: callers that see the same pages and user agents again and again
/// derive each once ([`Landing::of`], [`agent::classify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Page, source, referrer and channel.
    pub landing: Arc<Landing>,
    /// Browser, OS, device and bot verdict.
    pub agent: Arc<Agent>,
}

/// What an event's page URL and referrer say once normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    /// Host, path, UTM parameters and `ref` of the page.
    pub page: Page,
    /// The visit's source: `utm_source`, else `ref`, else the referrer's source, else [`DIRECT`].
    pub source: String,
    /// The referrer as `visit:referrer` shows it: host and path, else [`DIRECT`].
    pub referrer: String,
    /// The acquisition channel ([`crate::channel::channel`]).
    pub channel: &'static str,
}

impl Landing {
    /// Normalises a page URL and its referrer. Fails only if the URL is not a valid page URL.
    pub fn of(url: &str, referrer: Option<&str>, hash_mode: bool) -> Result<Landing, PageError> {
        let page = page::parse_page_in_mode(url, hash_mode)?;
        let referral = referral(referrer, &page.hostname);
        let source = page
            .utm
            .source
            .clone()
            .or_else(|| page.ref_param.clone())
            .or_else(|| referral.as_ref().map(|r| r.source()))
            .unwrap_or_else(|| DIRECT.to_owned());
        let referrer = referral.map_or_else(|| DIRECT.to_owned(), |r| r.url());
        let channel = crate::channel::channel(&source, &page.utm, page.click);
        Ok(Landing { page, source, referrer, channel })
    }
}

impl Facts {
    /// Normalises an event. Fails only if its URL is not a valid page URL.
    pub fn of(event: &Event) -> Result<Facts, PageError> {
        Ok(Facts {
            landing: Arc::new(Landing::of(&event.url, event.referrer.as_deref(), event.hash_mode)?),
            agent: Arc::new(agent::classify(&event.user_agent)),
        })
    }
}
