#![no_main]
//! Fuzzes `tally_model::ingest::ingest` with arbitrary bodies and headers, and checks that it
//! never panics, that every entry survives the codec, that accepted events normalise, and that
//! no output depends on (or spells out) the client's IP except through the visitor ids.

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tally_model::agent;
use tally_model::codec;
use tally_model::event::LogEntry;
use tally_model::facts::Facts;
use tally_model::ingest::{RequestContext, ingest};
use tally_model::limits::MAX_USER_AGENT_CHARS;
use tally_model::page;
use tally_model::reject::Rejection;
use tally_model::source;
use tally_model::visitor::{Salt, Salts};

/// The client address.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Ip {
    V4(u32),
    V6([u8; 16]),
}

impl Ip {
    fn addr(self) -> IpAddr {
        match self {
            Ip::V4(bits) => IpAddr::V4(Ipv4Addr::from(bits)),
            Ip::V6(octets) => IpAddr::V6(Ipv6Addr::from(octets)),
        }
    }

    /// A different address of the same family (every bit flipped).
    fn flipped(self) -> Ip {
        match self {
            Ip::V4(bits) => Ip::V4(!bits),
            Ip::V6(octets) => Ip::V6(octets.map(|b| !b)),
        }
    }
}

/// Which domains count as registered sites.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Sites {
    All,
    Nothing,
    Listed,
}

const LISTED: &[&str] = &["a.com", "example.com", "localhost", "shop.example.co.uk"];

impl Sites {
    fn contains(self, domain: &str) -> bool {
        match self {
            Sites::All => true,
            Sites::Nothing => false,
            Sites::Listed => LISTED.contains(&domain),
        }
    }
}

/// One request. Fixed-size fields come first and the body takes the rest of the input, so
/// that seeds are easy to write (see `seeds/make_seeds.py`).
#[derive(Arbitrary)]
struct Input<'a> {
    ip: Ip,
    received_ms: i64,
    first_event_id: u128,
    sites: Sites,
    content_type: Option<&'a str>,
    user_agent: &'a str,
    country: Option<&'a str>,
    region: Option<&'a str>,
    city: Option<&'a str>,
    body: &'a [u8],
}

/// Shows the body as text when it is UTF-8, so `cargo fuzz fmt` prints readable inputs.
impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Input");
        s.field("ip", &self.ip.addr())
            .field("received_ms", &self.received_ms)
            .field("first_event_id", &self.first_event_id)
            .field("sites", &self.sites)
            .field("content_type", &self.content_type)
            .field("user_agent", &self.user_agent)
            .field("country", &self.country)
            .field("region", &self.region)
            .field("city", &self.city);
        match std::str::from_utf8(self.body) {
            Ok(text) => s.field("body", &text),
            Err(_) => s.field("body", &self.body),
        };
        s.finish()
    }
}

/// The output with the visitor ids blanked: all that may differ between two IPs.
fn without_visitors(result: &Result<Vec<LogEntry>, Rejection>) -> Result<Vec<LogEntry>, Rejection> {
    result.clone().map(|entries| {
        entries
            .into_iter()
            .map(|entry| match entry {
                LogEntry::Event(mut event) => {
                    event.visitor.current = 0;
                    event.visitor.previous = 0;
                    LogEntry::Event(event)
                }
                drop => drop,
            })
            .collect()
    })
}

fuzz_target!(|input: Input<'_>| {
    let salts = Salts { current: Salt([0x11; 16]), previous: Salt([0x22; 16]) };
    let ctx = RequestContext {
        content_type: input.content_type,
        user_agent: input.user_agent,
        ip: input.ip.addr(),
        country: input.country,
        region: input.region,
        city: input.city,
        received_ms: input.received_ms,
        salts: &salts,
        first_event_id: input.first_event_id,
    };
    let is_site = |domain: &str| input.sites.contains(domain);
    let body_text = String::from_utf8_lossy(input.body);

    // The normalisers on the raw strings: they must not panic on anything.
    let ua_agent = agent::classify(input.user_agent);
    let _ = page::parse_page(input.user_agent);
    let _ = source::referrer_source(Some(input.user_agent), "a.com");
    if body_text.len() <= 4096 {
        let _ = agent::classify(&body_text);
        let _ = page::parse_page(&body_text);
        let _ = source::referrer_source(Some(&body_text), input.user_agent);
    }
    // The decoder on raw bytes: garbage is an error, never a panic; what decodes re-encodes.
    if let Ok(entry) = codec::decode(input.body) {
        assert_eq!(codec::decode(&codec::encode(&entry)), Ok(entry));
    }

    let result = ingest(input.body, &ctx, is_site);

    // The IP is used for the visitor id and nothing else: another IP changes nothing else.
    let other_ctx = RequestContext { ip: input.ip.flipped().addr(), ..ctx.clone() };
    let other = ingest(input.body, &other_ctx, is_site);
    assert_eq!(without_visitors(&result), without_visitors(&other), "the output depends on the IP");

    let Ok(entries) = result else { return };

    // No entry spells the IP out, unless the request itself did (body or user agent), or the
    // same text also comes out for a different IP (so it came from the body, e.g. via escapes).
    let ip_text = ctx.ip.to_string();
    let other_text = format!("{other:?}");
    let ip_may_appear = ip_text.len() < 7
        || body_text.contains(&ip_text)
        || input.user_agent.contains(&ip_text)
        || other_text.contains(&ip_text);

    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(codec::decode(&codec::encode(entry)), Ok(entry.clone()), "codec round trip");
        if !ip_may_appear {
            let debug = format!("{entry:?}");
            assert!(!debug.contains(&ip_text), "entry {index} contains the IP {ip_text}: {debug}");
        }
        match entry {
            LogEntry::Drops(_) => panic!("ingest never counts drops together; only rate limits do"),
            LogEntry::Drop(drop) => {
                assert_eq!(drop.received_ms, input.received_ms);
                // Drops of unregistered domains must not record the domain.
                if let Some(site) = &drop.site {
                    assert!(is_site(site), "drop names an unregistered site {site:?}");
                }
            }
            LogEntry::Event(event) => {
                assert_eq!(event.received_ms, input.received_ms);
                assert_eq!(event.id.0, input.first_event_id.wrapping_add(index as u128));
                assert!(is_site(&event.site), "event of an unregistered site {:?}", event.site);
                assert!(!ua_agent.bot, "a bot's event was accepted");
                assert!(event.user_agent.chars().count() <= MAX_USER_AGENT_CHARS);
                assert!(input.user_agent.starts_with(event.user_agent.as_str()));
                if let Some(country) = &event.country {
                    assert!(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()), "{country:?}");
                }
                // A region is an ISO 3166-2 code of the event's country; a city a bounded name;
                // neither without a country.
                if let Some(region) = &event.region {
                    let country = event.country.as_deref().expect("a region only with a country");
                    let part = region.strip_prefix(country).and_then(|r| r.strip_prefix('-')).expect("CC-…");
                    assert!(
                        (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric()),
                        "{region:?}"
                    );
                }
                if let Some(city) = &event.city {
                    assert!(event.country.is_some(), "a city only with a country");
                    assert!(
                        !city.is_empty() && city.chars().count() <= tally_model::limits::MAX_CITY_CHARS,
                        "{city:?}"
                    );
                    assert!(!city.chars().any(char::is_control), "{city:?}");
                }
                // Accepted events were checked to have a valid page URL, so they normalise.
                let facts = Facts::of(event).expect("an accepted event's URL parses");
                let _ = source::referrer_source(event.referrer.as_deref(), &facts.landing.page.hostname);
                if let Some(referrer) = &event.referrer {
                    let _ = page::parse_page(referrer);
                }
                for (name, value) in &event.props {
                    let _ = page::parse_page(value);
                    let _ = source::referrer_source(Some(value), name);
                }
            }
        }
    }
});
