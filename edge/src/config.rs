//! The Worker's settings: vars from `wrangler.toml` and secrets from `wrangler secret put`.
//!
//! A missing or malformed setting is an error naming it, never a silent default in production.

use worker::{Env, Error, Result};

/// Binding names, in one place so `wrangler.toml` and the code agree.
pub mod binding {
    /// Queue producer for accepted events.
    pub const EVENTS: &str = "EVENTS";
    /// KV namespace of site settings, keyed by domain.
    pub const SITES: &str = "SITES";
    /// Durable Object namespace holding the daily salts.
    pub const SALTS: &str = "SALTS";
    /// R2 bucket where dead letters are parked until replayed.
    pub const DEAD_LETTERS: &str = "DEAD_LETTERS";
    /// Rate limiter keyed per client (visitor hash, never the IP).
    pub const CLIENT_LIMITER: &str = "CLIENT_LIMITER";
    /// Rate limiter keyed per site (and spread for sites allowed more than one unit).
    pub const SITE_LIMITER: &str = "SITE_LIMITER";
}

/// A plain string var or secret.
pub fn string(env: &Env, name: &str) -> Result<String> {
    env.var(name).map(|v| v.to_string()).map_err(|_| Error::RustError(format!("setting {name} is not set")))
}

/// A numeric var.
pub fn number<T: std::str::FromStr>(env: &Env, name: &str) -> Result<T> {
    let raw = string(env, name)?;
    raw.trim().parse().map_err(|_| Error::RustError(format!("setting {name} is not a number: {raw:?}")))
}

/// The dead-letter queue's name (`DEAD_LETTER_QUEUE`), to tell its batches apart.
pub fn dead_letter_queue(env: &Env) -> Result<String> {
    string(env, "DEAD_LETTER_QUEUE")
}

/// Sub-partitions per site: must equal the core's `--sub-partitions` (`SUB_PARTITIONS`).
pub fn sub_partitions(env: &Env) -> Result<u16> {
    number(env, "SUB_PARTITIONS")
}
