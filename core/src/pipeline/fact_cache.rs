//! What flushes remember of the user agents and page URLs they normalised: an import or a busy
//! site repeats a few thousand user agents and pages, and normalising one ([`agent::classify`],
//! [`Landing::of`]) costs more than the rest of an event's aggregation. Each cache is bounded
//! and starts afresh when full; a flush hands the caches to the next.

use crate::pipeline::flush::FastMap;
use std::sync::Arc;
use tally_model::agent::{self, Agent};
use tally_model::event::Event;
use tally_model::facts::{Facts, Landing};

/// Most user agents, and most (page URL, referrer) pairs, the caches keep.
pub const KEPT: usize = 20_000;

/// A borrowed (page URL, referrer, hash mode) key: it hashes as the owned key does, so a
/// lookup allocates nothing.
#[derive(Hash)]
struct LandingKey<'a>(&'a str, Option<&'a str>, bool);

impl hashbrown::Equivalent<(String, Option<String>, bool)> for LandingKey<'_> {
    fn equivalent(&self, key: &(String, Option<String>, bool)) -> bool {
        self.0 == key.0 && self.1 == key.1.as_deref() && self.2 == key.2
    }
}

/// Normalised user agents and landings, by what they were derived from.
#[derive(Debug, Default)]
pub struct FactCache {
    agents: FastMap<String, Arc<Agent>>,
    /// `None`: the URL is not a valid page URL.
    landings: FastMap<(String, Option<String>, bool), Option<Arc<Landing>>>,
}

impl FactCache {
    /// An event's facts, or `None` if its URL is not a valid page URL.
    pub fn facts(&mut self, event: &Event) -> Option<Facts> {
        let agent = match self.agents.get(event.user_agent.as_str()) {
            Some(known) => known.clone(),
            None => {
                let agent = Arc::new(agent::classify(&event.user_agent));
                if self.agents.len() >= KEPT {
                    self.agents.clear();
                }
                self.agents.insert(event.user_agent.clone(), agent.clone());
                agent
            }
        };
        let key = LandingKey(&event.url, event.referrer.as_deref(), event.hash_mode);
        let landing = match self.landings.get(&key) {
            Some(known) => known.clone(),
            None => {
                let landing = Landing::of(&event.url, event.referrer.as_deref(), event.hash_mode).ok().map(Arc::new);
                if self.landings.len() >= KEPT {
                    self.landings.clear();
                }
                self.landings.insert((event.url.clone(), event.referrer.clone(), event.hash_mode), landing.clone());
                landing
            }
        };
        Some(Facts { landing: landing?, agent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::event::{EventId, VisitorIds};

    fn event(url: &str, referrer: Option<&str>, user_agent: &str) -> Event {
        Event {
            id: EventId(1),
            received_ms: 0,
            site: "a.com".into(),
            name: "pageview".into(),
            url: url.into(),
            referrer: referrer.map(str::to_owned),
            props: vec![],
            revenue: None,
            interactive: true,
            user_agent: user_agent.into(),
            country: None,
            visitor: VisitorIds { current: 1, previous: 1 },
            region: None,
            city: None,
            engagement: None,
            hash_mode: false,
        }
    }

    #[test]
    fn cached_facts_equal_fresh_ones_and_the_cache_stays_bounded() {
        let mut cache = FactCache::default();
        for i in 0..(KEPT + 10) {
            let e = event(
                &format!("https://a.com/p{}?utm_source=s{}", i % 50, i % 7),
                (i % 3 == 0).then_some("https://news.example/x"),
                &format!("Mozilla/5.0 (X11; Linux x86_64; rv:{}.0) Gecko/20100101 Firefox/{}.0", i % 90, i % 90),
            );
            assert_eq!(cache.facts(&e), Facts::of(&e).ok(), "event {i}");
            // The same key again answers from the cache, alike.
            assert_eq!(cache.facts(&e), Facts::of(&e).ok());
        }
        let bad = event("ftp://a.com/", None, "curl/8");
        assert_eq!((cache.facts(&bad), cache.facts(&bad)), (None, None), "an invalid URL stays invalid");
        let unique = |i: usize| event(&format!("https://a.com/u{i}"), None, &format!("agent {i}"));
        for i in 0..(2 * KEPT + 1) {
            cache.facts(&unique(i));
        }
        assert!(cache.agents.len() <= KEPT && cache.landings.len() <= KEPT, "bounded");
    }
}
