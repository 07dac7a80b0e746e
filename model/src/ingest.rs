//! The edge's whole decision for one request: body → checked, enriched log entries.
//!
//! Used by `tally serve` and by the Worker alike, so both answer every request the same way.

use crate::agent;
use crate::event::{Drop, Event, EventId, LogEntry, VisitorIds};
use crate::limits::{MAX_BODY_BYTES, MAX_CITY_CHARS, MAX_USER_AGENT_CHARS};
use crate::page;
use crate::reject::{DropReason, Rejection};
use crate::visitor::{Salts, visitor_id};
use crate::wire::{self, WireDrop, WireEvent};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What the edge knows about the request besides its body. The IP is used for the visitor id
/// and nothing else.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The `User-Agent` header ("" if absent).
    pub user_agent: &'a str,
    /// The client's IP address.
    pub ip: IpAddr,
    /// The edge's geo header, if any (e.g. Cloudflare's `CF-IPCountry`).
    pub country: Option<&'a str>,
    /// The edge's region (subdivision) code, if any: `TX` or `US-TX` (Cloudflare's
    /// `request.cf.regionCode`). Kept only with a country.
    pub region: Option<&'a str>,
    /// The edge's city name, if any (Cloudflare's `request.cf.city`). Kept only with a country.
    pub city: Option<&'a str>,
    /// Arrival time, ms since the epoch.
    pub received_ms: i64,
    /// The salts in force.
    pub salts: &'a Salts,
    /// A fresh random id; the request's entries (events and drops) get consecutive ids from it.
    pub first_event_id: u128,
}

/// Checks and enriches a request. `is_site` tells whether a domain is a registered site.
/// Returns one log entry per event of the body: an accepted event or a counted drop.
pub fn ingest(
    body: &[u8],
    ctx: &RequestContext<'_>,
    is_site: impl Fn(&str) -> bool,
) -> Result<Vec<LogEntry>, Rejection> {
    Ok(parse(ctx.content_type, body)?.enrich(ctx, is_site))
}

/// A body that passed the whole-body checks, its events parsed but not yet enriched: a host
/// that must look its sites up first (the Worker, from KV) asks [`Parsed::domains`], then
/// calls [`Parsed::enrich`], and parses the body once.
#[derive(Debug)]
pub struct Parsed(Vec<Result<WireEvent, WireDrop>>);

/// The whole-body checks, in the order every host answers them: size (413), content type (415),
/// then the body itself (400).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Parsed, Rejection> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Rejection::BodyTooLarge);
    }
    wire::check_content_type(content_type)?;
    Ok(Parsed(wire::parse_body(body)?))
}

impl Parsed {
    /// One event given as a JSON object that its host parsed and checked itself (size and
    /// nesting, as [`parse`] does for a body): `tally import`, whose lines hold more than the
    /// event's fields.
    pub fn one(event: &serde_json::Map<String, serde_json::Value>) -> Parsed {
        Parsed(vec![wire::parse_object(event)])
    }

    /// The distinct domains the events name, valid or not, in order.
    pub fn domains(&self) -> BTreeSet<&str> {
        self.0
            .iter()
            .filter_map(|parsed| match parsed {
                Ok(event) => Some(event.domain.as_str()),
                Err(WireDrop { domain, .. }) => domain.as_deref(),
            })
            .collect()
    }

    /// Enriches every event into a log entry: an accepted event or a counted drop.
    pub fn enrich(self, ctx: &RequestContext<'_>, is_site: impl Fn(&str) -> bool) -> Vec<LogEntry> {
        let bot = agent::classify(ctx.user_agent).bot;
        self.enrich_as(bot, ctx, is_site)
    }

    /// [`Parsed::enrich`] with the user agent already classified (`bot`: whether
    /// [`agent::classify`] calls `ctx.user_agent` a bot), for a host that caches the verdicts
    /// (`tally import`, where a file repeats a few thousand user agents).
    pub fn enrich_as(self, bot: bool, ctx: &RequestContext<'_>, is_site: impl Fn(&str) -> bool) -> Vec<LogEntry> {
        let entries = self.0.into_iter().enumerate().map(|(index, parsed)| {
            let id = EventId(ctx.first_event_id.wrapping_add(index as u128));
            match enrich(parsed, bot, ctx, &is_site, id) {
                Ok(event) => LogEntry::Event(Box::new(event)),
                Err(drop) => LogEntry::Drop(drop),
            }
        });
        entries.collect()
    }
}

/// What the answer to an ingested request reports, the same from every host: the number of
/// accepted events (`X-Tally-Accepted`) and each drop's reason in body order (`X-Tally-Dropped`).
pub fn answer_counts(entries: &[LogEntry]) -> (usize, Vec<&'static str>) {
    let accepted = entries.iter().filter(|e| matches!(e, LogEntry::Event(_))).count();
    let dropped = entries
        .iter()
        .filter_map(|e| match e {
            LogEntry::Drop(drop) => Some(drop.reason.as_str()),
            LogEntry::Event(_) | LogEntry::Drops(_) => None,
        })
        .collect();
    (accepted, dropped)
}

fn enrich(
    parsed: Result<WireEvent, WireDrop>,
    bot: bool,
    ctx: &RequestContext<'_>,
    is_site: &impl Fn(&str) -> bool,
    id: EventId,
) -> Result<Event, Drop> {
    let at = ctx.received_ms;
    let dropped = |site, reason| Drop { id: Some(id), site, reason, received_ms: at };
    let event = match parsed {
        // No readable domain: the drop belongs to no site.
        Err(WireDrop { domain: None, reason }) => return Err(dropped(None, reason)),
        // Drops for domains that are not registered are counted without the domain: storing
        // every domain a stranger sends would let anyone grow our tables.
        Err(WireDrop { domain: Some(d), .. }) if !is_site(&d) => return Err(dropped(None, DropReason::UnknownSite)),
        Ok(event) if !is_site(&event.domain) => return Err(dropped(None, DropReason::UnknownSite)),
        Err(WireDrop { domain, reason }) => return Err(dropped(domain, reason)),
        Ok(event) => event,
    };
    let drop = |reason| dropped(Some(event.domain.clone()), reason);
    if bot {
        return Err(drop(DropReason::Bot));
    }
    if page::parse_page(&event.url).is_err() {
        return Err(drop(DropReason::InvalidUrl));
    }
    Ok(build_event(event, ctx, id))
}

fn build_event(event: WireEvent, ctx: &RequestContext<'_>, id: EventId) -> Event {
    let user_agent: String = ctx.user_agent.chars().take(MAX_USER_AGENT_CHARS).collect();
    let visitor = VisitorIds {
        current: visitor_id(&ctx.salts.current, &event.domain, ctx.ip, &user_agent),
        previous: visitor_id(&ctx.salts.previous, &event.domain, ctx.ip, &user_agent),
    };
    let country = ctx.country.and_then(country_code);
    let region = country.as_deref().and_then(|c| region_code(c, ctx.region?));
    let city = country.as_ref().and_then(|_| city_name(ctx.city?));
    Event {
        id,
        received_ms: ctx.received_ms,
        site: event.domain,
        name: event.name,
        url: event.url,
        referrer: event.referrer,
        props: event.props,
        revenue: event.revenue,
        interactive: event.interactive,
        user_agent,
        country,
        visitor,
        region,
        city,
        engagement: event.engagement,
        hash_mode: event.hash_mode,
    }
}

/// A two-letter country code, upper-cased; `XX` (unknown) and `T1` (Tor) are no country.
fn country_code(raw: &str) -> Option<String> {
    let code = raw.trim().to_ascii_uppercase();
    let valid = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
    (valid && code != "XX").then_some(code)
}

/// An ISO 3166-2 subdivision code of `country`: `raw` is its part after the hyphen (`TX`) or the
/// whole code (`US-TX`), of one to three letters or digits; anything else is no region.
fn region_code(country: &str, raw: &str) -> Option<String> {
    let raw = raw.trim().to_ascii_uppercase();
    let part = match raw.split_once('-') {
        Some((prefix, part)) if prefix == country => part,
        Some(_) => return None,
        None => raw.as_str(),
    };
    let valid = (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| format!("{country}-{part}"))
}

/// A city name, trimmed and cut to [`MAX_CITY_CHARS`]; empty or with control characters is none.
fn city_name(raw: &str) -> Option<String> {
    let name: String = raw.trim().chars().take(MAX_CITY_CHARS).collect();
    let name = name.trim_end();
    (!name.is_empty() && !name.chars().any(char::is_control)).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_iso_3166_2_codes_of_the_country() {
        assert_eq!(region_code("US", "tx").as_deref(), Some("US-TX"));
        assert_eq!(region_code("US", " US-TX ").as_deref(), Some("US-TX"));
        assert_eq!(region_code("GB", "ENG").as_deref(), Some("GB-ENG"));
        assert_eq!(region_code("FR", "75").as_deref(), Some("FR-75"));
        assert_eq!(region_code("US", "DE-BE"), None, "another country's code");
        assert_eq!(region_code("US", ""), None);
        assert_eq!(region_code("US", "TEXAS"), None);
        assert_eq!(region_code("US", "T X"), None);
    }

    #[test]
    fn cities_are_trimmed_bounded_names() {
        assert_eq!(city_name("  São Paulo ").as_deref(), Some("São Paulo"));
        assert_eq!(city_name("   "), None);
        assert_eq!(city_name("Ber\nlin"), None);
        assert_eq!(city_name(&"x".repeat(500)).map(|c| c.chars().count()), Some(MAX_CITY_CHARS));
    }

    #[test]
    fn whole_body_checks_come_in_order_and_name_the_domains() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse(Some("image/png"), &big).err(), Some(Rejection::BodyTooLarge));
        assert_eq!(parse(Some("image/png"), b"{}").err(), Some(Rejection::UnsupportedContentType));
        assert_eq!(parse(None, b"[").err(), Some(Rejection::InvalidJson));
        let body = br#"[{"n":"pageview","u":"https://a.com/","d":"a.com"},{"n":"x","d":"b.com"},{"n":"pageview","u":"https://a.com/x","d":"a.com"}]"#;
        let parsed = parse(None, body).expect("parses");
        assert_eq!(parsed.domains().into_iter().collect::<Vec<_>>(), ["a.com", "b.com"]);
    }
}
