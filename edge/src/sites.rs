//! Site settings from the `SITES` KV namespace, cached in the isolate for a bounded time.
//!
//! Key: the site's domain as the tracker sends it (normalised). Value: JSON
//! `{"allowed_hostnames": ["shop.com", "*.shop.com"], "rate_limit_per_minute": 6000}`; both fields
//! are optional. A domain without a key is not a registered site. Answers (also "not a site")
//! are cached for `SITE_SETTINGS_TTL_SECONDS`, so a change reaches every isolate within that
//! time plus KV's own propagation (up to about a minute).

use crate::config;
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{Env, Error, Result};

/// One site's edge settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    /// Page hosts the site accepts events from; empty: any (see `tally_model::hostnames`).
    #[serde(default)]
    pub allowed_hostnames: Vec<String>,
    /// Requests per minute the site may send, per Cloudflare location; None: the default unit.
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
}

/// A cached answer: the settings (None: not a site) and when it was fetched.
type Cached = (Option<SiteSettings>, u64);

thread_local! {
    // An isolate runs one thread; the cache lives as long as the isolate.
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
}

/// Most entries kept; beyond it the cache is emptied (cheap, and bounded memory).
const MAX_CACHED: usize = 10_000;

/// The settings of each domain (None: not a registered site), from the cache or KV.
pub async fn lookup(env: &Env, domains: &[String], now_ms: u64) -> Result<HashMap<String, Option<SiteSettings>>> {
    let ttl_ms = config::number::<u64>(env, "SITE_SETTINGS_TTL_SECONDS")? * 1000;
    let mut found = HashMap::new();
    for domain in domains {
        let cached =
            CACHE.with(|c| c.borrow().get(domain).filter(|(_, at)| now_ms.saturating_sub(*at) < ttl_ms).cloned());
        let settings = match cached {
            Some((settings, _)) => settings,
            None => {
                let settings = fetch(env, domain).await?;
                CACHE.with(|c| {
                    let mut cache = c.borrow_mut();
                    if cache.len() >= MAX_CACHED {
                        cache.clear();
                    }
                    cache.insert(domain.clone(), (settings.clone(), now_ms));
                });
                settings
            }
        };
        found.insert(domain.clone(), settings);
    }
    Ok(found)
}

async fn fetch(env: &Env, domain: &str) -> Result<Option<SiteSettings>> {
    let kv = env.kv(config::binding::SITES)?;
    let Some(raw) = kv.get(domain).text().await.map_err(|e| Error::RustError(format!("site settings: {e}")))? else {
        return Ok(None);
    };
    // A malformed value must not make a real site look unregistered: it is an error, logged
    // with the domain, and the request gets a 503 rather than silently dropped events.
    serde_json::from_str(&raw)
        .map(Some)
        .map_err(|e| Error::RustError(format!("site settings of {domain} are not valid JSON settings: {e}")))
}
