//! Ingest rate limits of `tally serve`: requests per client (its salted client key, never its
//! IP) and events per site. Refused events are counted per site in memory and written to the event log as counted
//! drops (reason `rate_limited`) about once a second, so a flood of refusals costs one log entry
//! per site and second, never one per request.

use crate::embedded::log::EventLog;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tally_model::codec;
use tally_model::event::{DropCount, EventId, LogEntry};
use tally_model::reject::DropReason;
use tokio::sync::watch;

/// Requests per minute one client may send, by default (all of which may come at once). A page
/// view or event is one request; a browser sends a few a minute.
pub const DEFAULT_PER_CLIENT_PER_MINUTE: u32 = 300;
/// Events per minute one site may take, by default (all of which may come at once): 10,000 a
/// second, about a quarter of what one `tally serve` takes on 2 cores, so one site's flood
/// leaves room for the others.
pub const DEFAULT_PER_SITE_PER_MINUTE: u32 = 600_000;
/// Keys a limiter holds before it forgets those whose budget is full again.
const MAX_TRACKED_KEYS: usize = 100_000;

/// The configured rates; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestRates {
    /// Requests per minute per client (salted key of IP and user agent).
    pub per_client_per_minute: u32,
    /// Events per minute per registered site.
    pub per_site_per_minute: u32,
}

impl Default for IngestRates {
    fn default() -> IngestRates {
        IngestRates {
            per_client_per_minute: DEFAULT_PER_CLIENT_PER_MINUTE,
            per_site_per_minute: DEFAULT_PER_SITE_PER_MINUTE,
        }
    }
}

/// Refused events of one site (or of none) not yet written to the log.
#[derive(Debug, Default, Clone, Copy)]
struct Refused {
    count: u64,
    last_ms: i64,
}

/// The limiters and the refusals waiting to be logged.
pub struct IngestLimits {
    per_client: Option<DefaultKeyedRateLimiter<u64>>,
    per_site: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    refused: Mutex<HashMap<Option<String>, Refused>>,
}

impl IngestLimits {
    /// Limits at these rates.
    pub fn new(rates: IngestRates) -> IngestLimits {
        let quota = |per_minute| NonZeroU32::new(per_minute).map(Quota::per_minute);
        IngestLimits {
            per_client: quota(rates.per_client_per_minute).map(RateLimiter::keyed),
            per_site: quota(rates.per_site_per_minute).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from its client's budget and its events from the budget of each site
    /// they name (site and number of events; `None` for events of no registered site, which
    /// only the client's budget covers). `Err` holds the seconds until the request could pass.
    pub fn check(&self, client: u64, per_site: &[(Option<&str>, u32)]) -> Result<(), u64> {
        if let Some(limiter) = &self.per_client {
            self.take(limiter, &client, 1)?;
        }
        if let Some(limiter) = &self.per_site {
            for (site, n) in per_site {
                if let Some(site) = site {
                    self.take(limiter, &(*site).to_owned(), *n)?;
                }
            }
        }
        Ok(())
    }

    fn take<K>(&self, limiter: &DefaultKeyedRateLimiter<K>, key: &K, n: u32) -> Result<(), u64>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        let Some(n) = NonZeroU32::new(n) else { return Ok(()) };
        match limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
            // More events in one request than the whole budget: it can never pass.
            Err(_) => Err(60),
        }
    }

    /// Counts a refused request's entries as `rate_limited` drops of the sites they named.
    pub fn refuse(&self, entries: &[LogEntry], received_ms: i64) {
        let mut refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for entry in entries {
            let site = match entry {
                LogEntry::Event(event) => Some(event.site.clone()),
                LogEntry::Drop(drop) => drop.site.clone(),
                LogEntry::Drops(drops) => drops.site.clone(),
            };
            let slot = refused.entry(site).or_default();
            slot.count += 1;
            slot.last_ms = slot.last_ms.max(received_ms);
        }
    }

    /// The refusals counted since the last call, as log entries (one per site), each with a
    /// fresh id from `new_id`; forgets limiter keys whose budget is full again.
    pub fn take_refused(&self, mut new_id: impl FnMut() -> u128) -> Vec<LogEntry> {
        for limiter in self.per_client.iter() {
            forget_idle(limiter);
        }
        for limiter in self.per_site.iter() {
            forget_idle(limiter);
        }
        let refused = std::mem::take(&mut *self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        refused
            .into_iter()
            .map(|(site, Refused { count, last_ms })| {
                LogEntry::Drops(DropCount {
                    id: EventId(new_id()),
                    site,
                    reason: DropReason::RateLimited,
                    received_ms: last_ms,
                    count,
                })
            })
            .collect()
    }

    /// Puts back refusals that could not be logged, to be tried again.
    pub fn restore(&self, entries: &[LogEntry]) {
        let mut refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for entry in entries {
            if let LogEntry::Drops(drops) = entry {
                let slot = refused.entry(drops.site.clone()).or_default();
                slot.count += drops.count;
                slot.last_ms = slot.last_ms.max(drops.received_ms);
            }
        }
    }
}

/// Writes the refusals counted so far to `log` about once a second until `stop` turns true, then
/// once more, so that every refusal a client heard of is counted.
pub async fn log_refusals(limits: Arc<IngestLimits>, log: EventLog, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.wait_for(|stopped| *stopped) => true,
        };
        append_refusals(&limits, &log).await;
        if stopping {
            return;
        }
    }
}

async fn append_refusals(limits: &IngestLimits, log: &EventLog) {
    let mut failed_id = false;
    let entries = limits.take_refused(|| {
        super::ingest::random_id().unwrap_or_else(|_| {
            failed_id = true;
            0
        })
    });
    if entries.is_empty() {
        return;
    }
    if failed_id {
        tracing::error!("no randomness for counted drops' ids; keeping them for the next second");
        limits.restore(&entries);
        return;
    }
    if let Err(error) = log.append(entries.iter().map(codec::encode).collect()).await {
        tracing::warn!(%error, "could not log rate-limited drops; keeping them for the next second");
        limits.restore(&entries);
    }
}

fn forget_idle<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>) {
    limiter.retain_recent();
    if limiter.len() < MAX_TRACKED_KEYS {
        limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::event::Drop;

    fn drop_of(site: Option<&str>) -> LogEntry {
        LogEntry::Drop(Drop { id: None, site: site.map(str::to_owned), reason: DropReason::Bot, received_ms: 5 })
    }

    #[test]
    fn a_client_over_its_budget_waits_and_others_do_not() {
        let limits = IngestLimits::new(IngestRates { per_client_per_minute: 3, per_site_per_minute: 0 });
        for _ in 0..3 {
            assert_eq!(limits.check(1, &[(Some("a.com"), 5)]), Ok(()), "requests count, not events");
        }
        let wait = limits.check(1, &[(Some("a.com"), 1)]).expect_err("the fourth request is over");
        assert!((1..=20).contains(&wait), "one request refills in 20 s: {wait}");
        assert_eq!(limits.check(2, &[(Some("a.com"), 1)]), Ok(()), "another client is unaffected");
    }

    #[test]
    fn a_site_over_its_budget_refuses_every_client() {
        let limits = IngestLimits::new(IngestRates { per_client_per_minute: 0, per_site_per_minute: 2 });
        assert_eq!(limits.check(1, &[(Some("a.com"), 2)]), Ok(()));
        assert!(limits.check(2, &[(Some("a.com"), 1)]).is_err());
        assert_eq!(limits.check(2, &[(Some("b.com"), 1)]), Ok(()));
        assert_eq!(limits.check(2, &[(None, 1)]), Ok(()), "events of no site count against clients only");
        assert_eq!(limits.check(3, &[(Some("c.com"), 3)]), Err(60), "more events than the budget never pass");
    }

    #[test]
    fn refusals_become_one_counted_drop_per_site_and_come_back_if_not_logged() {
        let limits = IngestLimits::new(IngestRates::default());
        limits.refuse(&[drop_of(Some("a.com")), drop_of(Some("a.com")), drop_of(None)], 7);
        limits.refuse(&[drop_of(Some("a.com"))], 9);
        let mut ids = 0..;
        let mut entries = limits.take_refused(|| ids.next().unwrap_or_default());
        entries.sort_by_key(|e| match e {
            LogEntry::Drops(d) => d.count,
            _ => 0,
        });
        let counted: Vec<(Option<String>, u64, i64)> = entries
            .iter()
            .filter_map(|e| match e {
                LogEntry::Drops(d) if d.reason == DropReason::RateLimited => {
                    Some((d.site.clone(), d.count, d.received_ms))
                }
                _ => None,
            })
            .collect();
        assert_eq!(counted, vec![(None, 1, 7), (Some("a.com".to_owned()), 3, 9)]);
        assert!(limits.take_refused(|| 0).is_empty(), "taken once");
        limits.restore(&entries);
        assert_eq!(limits.take_refused(|| 0).len(), 2, "restored after a failed append");
    }
}
