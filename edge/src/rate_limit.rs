//! Rate limits per client and per site, on Cloudflare's rate-limiting bindings.
//!
//! The client key is a salted hash of (IP, user agent) under the day's salt, never the IP. A
//! site's limit is `rate_limit_per_minute` from its settings, in units of the `SITE_LIMITER`
//! binding's limit (`SITE_LIMIT_UNIT_PER_MINUTE`): a site allowed k units spreads its requests
//! over k keys at random, so it gets about k units whatever its mix of clients. Limits hold per
//! Cloudflare location, as the binding does. An error from the limiter fails closed: the request
//! is refused with a 429, like one over the limit.

use crate::config;
use crate::sites::SiteSettings;
use std::net::IpAddr;
use tally_model::visitor::{Salts, visitor_id};
use worker::{Env, Result};

/// Whether the request may proceed: every limit it falls under has room, and no limiter failed.
pub async fn allow(env: &Env, salts: &Salts, ip: IpAddr, user_agent: &str, sites: &[(&str, &SiteSettings)]) -> bool {
    match check(env, salts, ip, user_agent, sites).await {
        Ok(allowed) => allowed,
        Err(error) => {
            worker::console_error!("rate limiter failed, refusing the request: {error}");
            false
        }
    }
}

async fn check(
    env: &Env,
    salts: &Salts,
    ip: IpAddr,
    user_agent: &str,
    sites: &[(&str, &SiteSettings)],
) -> Result<bool> {
    let client = visitor_id(&salts.current, "", ip, user_agent);
    if !env.rate_limiter(config::binding::CLIENT_LIMITER)?.limit(format!("c{client:016x}")).await?.success {
        return Ok(false);
    }
    let unit: u32 = config::number(env, "SITE_LIMIT_UNIT_PER_MINUTE")?;
    let limiter = env.rate_limiter(config::binding::SITE_LIMITER)?;
    for (domain, settings) in sites {
        let key = site_key(domain, settings.rate_limit_per_minute, unit, random_u32()?);
        if !limiter.limit(key).await?.success {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The site limiter key for a request: one of the site's `ceil(limit / unit)` keys.
fn site_key(domain: &str, limit_per_minute: Option<u32>, unit: u32, random: u32) -> String {
    let keys = limit_per_minute.map_or(1, |limit| limit.div_ceil(unit.max(1)).max(1));
    format!("s{}#{}", domain, random % keys)
}

fn random_u32() -> Result<u32> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).map_err(|e| worker::Error::RustError(format!("no randomness: {e}")))?;
    Ok(u32::from_le_bytes(bytes))
}
