//! Daily visitor-id salts that every Cloudflare location agrees on.
//!
//! One Durable Object (`SaltKeeper`, named "salts") is the single source: the first request of
//! a UTC day makes that day's salt with the runtime's CSPRNG and stores it; the previous day's
//! is kept for visits across midnight; older ones are deleted, on access and by a daily alarm.
//! Once a day's salt is gone, that day's visitor ids cannot be tied back to IPs by anyone,
//! which a salt derived from a long-lived secret could not promise. Isolates cache the pair
//! until their day ends, so the object sees about one request per isolate per day.

use crate::config;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tally_model::visitor::{Salt, Salts};
use worker::{DurableObject, Env, Error, Request, Response, Result, State, durable_object};

const DAY_MS: u64 = 86_400_000;
const KEY_PREFIX: &str = "salt:";

thread_local! {
    static CACHE: RefCell<Option<(u64, Salts)>> = const { RefCell::new(None) };
}

/// The salts of the day of `now_ms`.
pub async fn salts_at(env: &Env, now_ms: u64) -> Result<Salts> {
    let day = now_ms / DAY_MS;
    if let Some(salts) = CACHE.with(|c| c.borrow().as_ref().filter(|(d, _)| *d == day).map(|(_, s)| s.clone())) {
        return Ok(salts);
    }
    let stub = env.durable_object(config::binding::SALTS)?.get_by_name("salts")?;
    let mut response = stub.fetch_with_str(&format!("https://salts/day/{day}")).await?;
    if response.status_code() != 200 {
        return Err(Error::RustError(format!("salt keeper answered {}", response.status_code())));
    }
    let pair: SaltPair = response.json().await?;
    let salts = Salts { current: Salt(pair.current), previous: Salt(pair.previous) };
    CACHE.with(|c| *c.borrow_mut() = Some((day, salts.clone())));
    Ok(salts)
}

/// The salts of one day as the keeper hands them out.
#[derive(Serialize, Deserialize)]
struct SaltPair {
    current: [u8; 16],
    previous: [u8; 16],
}

/// The Durable Object that owns the salts.
#[durable_object]
pub struct SaltKeeper {
    state: State,
}

impl DurableObject for SaltKeeper {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let path = req.path();
        let Some(day) = path.strip_prefix("/day/").and_then(|d| d.parse::<u64>().ok()) else {
            return Response::error("expected /day/<n>", 400);
        };
        // Never hand out a salt for a day already deleted, nor far in the future.
        let today = worker::Date::now().as_millis() / DAY_MS;
        if day + 1 < today || day > today + 1 {
            return Response::error("day out of range", 400);
        }
        let current = self.salt_of(day).await?;
        let previous = self.salt_of(day.saturating_sub(1)).await?;
        self.delete_before(day.saturating_sub(1)).await?;
        if self.state.storage().get_alarm().await?.is_none() {
            self.state.storage().set_alarm(((today + 1) * DAY_MS + 60_000) as i64).await?;
        }
        Response::from_json(&SaltPair { current, previous })
    }

    async fn alarm(&self) -> Result<Response> {
        let today = worker::Date::now().as_millis() / DAY_MS;
        self.delete_before(today.saturating_sub(1)).await?;
        self.state.storage().set_alarm(((today + 1) * DAY_MS + 60_000) as i64).await?;
        Response::ok("pruned")
    }
}

impl SaltKeeper {
    /// The salt of `day`, made now if it has none yet. Durable Object storage runs one request
    /// at a time through get-then-put (input gates), so two callers cannot make two salts.
    async fn salt_of(&self, day: u64) -> Result<[u8; 16]> {
        let storage = self.state.storage();
        let key = format!("{KEY_PREFIX}{day:010}");
        if let Some(salt) = storage.get::<[u8; 16]>(&key).await? {
            return Ok(salt);
        }
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).map_err(|e| Error::RustError(format!("no randomness for a salt: {e}")))?;
        storage.put(&key, salt).await?;
        Ok(salt)
    }

    /// Deletes the salts of every day before `day`.
    async fn delete_before(&self, day: u64) -> Result<()> {
        let storage = self.state.storage();
        let keep_from = format!("{KEY_PREFIX}{day:010}");
        let stored = storage.list_with_options(worker::ListOptions::new().prefix(KEY_PREFIX)).await?;
        let old: Vec<String> = stored
            .keys()
            .into_iter()
            .filter_map(|k| k.ok()?.as_string())
            .filter(|k| k.as_str() < keep_from.as_str())
            .collect();
        if !old.is_empty() {
            storage.delete_multiple(old).await?;
        }
        Ok(())
    }
}
