//! Housekeeping in `tally serve`, in the background: the daily salts rotate at midnight even
//! without traffic; the event log keeps its retention (default 395 days, about 13 months):
//! entries older than that are deleted from the log's start in small transactions, never an
//! entry the aggregator or the stored visit state still needs; and aggregates keep theirs
//! (default: forever), deleted a site at a time, by whole local days.

use crate::embedded::log::EventLog;
use crate::embedded::store::Store;
use crate::pipeline::salts::SaltBook;
use crate::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The event log's retention by default: 395 days, about 13 months (`--log-retention 395d`).
pub const DEFAULT_LOG_RETENTION: Duration = Duration::from_secs(395 * 86_400);
/// Entries deleted in one transaction: appends wait for at most one such commit.
const TRIM_BATCH: usize = 5_000;
/// How often salts are checked for a new day.
const SALT_CHECK: Duration = Duration::from_secs(60);
/// How often aggregates are trimmed at most.
const AGGREGATE_CHECK: Duration = Duration::from_secs(3_600);
const DAY_MS: i64 = 86_400_000;

/// How long something is kept: `None` for forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

/// Parses a retention: `keep` (forever), or a whole number with a unit `s`, `m`, `h` or `d`.
pub fn parse_retention(text: &str) -> Result<Retention, String> {
    parse(text).map(Retention)
}

fn parse(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "keep" {
        return Ok(None);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not `keep` or a number with a unit (30d, 12h)"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d (for example 395d)")),
    };
    match n.checked_mul(seconds) {
        Some(0) => Err("a retention of 0 would delete events before they are counted; use `keep` to keep all".into()),
        Some(total) => Ok(Some(Duration::from_secs(total))),
        None => Err(format!("{text:?} is too long")),
    }
}

/// What is kept how long (`None`: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retentions {
    /// The raw event log.
    pub log: Option<Duration>,
    /// The aggregates (rollups and segments).
    pub aggregates: Option<Duration>,
}

/// What the housekeeping task works on.
pub struct Housekeeping {
    /// The event log.
    pub log: EventLog,
    /// The aggregate store.
    pub store: Arc<Store>,
    /// The daily salts.
    pub salts: Arc<SaltBook>,
    /// The sites, whose aggregates are trimmed one at a time.
    pub registry: Registry,
    /// The retentions.
    pub keep: Retentions,
}

/// Runs until `stop` turns true; the first round right away.
pub async fn run(work: Housekeeping, mut stop: watch::Receiver<bool>) {
    let Housekeeping { log, store, salts, registry, keep } = work;
    // Trim a few times per retention period, at least every minute, at most every second.
    let every = keep.log.map_or(SALT_CHECK, |keep| (keep / 4).clamp(Duration::from_secs(1), SALT_CHECK));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut aggregates_due = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        if let Some(keep) = keep.aggregates
            && tokio::time::Instant::now() >= aggregates_due
        {
            aggregates_due = tokio::time::Instant::now() + (keep / 4).clamp(Duration::from_secs(1), AGGREGATE_CHECK);
            let sites: Vec<String> = registry.snapshot().sites().map(|s| s.domain.clone()).collect();
            let store = store.clone();
            let trimmed = tokio::task::spawn_blocking(move || trim_aggregates(&store, &sites, now_ms, keep)).await;
            match trimmed {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(rows = n, "deleted aggregates past the retention"),
                Ok(Err(error)) => {
                    tracing::warn!(error = format!("{error:#}"), "aggregate retention failed; trying again")
                }
                Err(error) => tracing::error!(%error, "aggregate retention panicked"),
            }
        }
        if let Err(error) = salts.rotate_if_due(now_ms) {
            tracing::warn!(error = format!("{error:#}"), "could not rotate the daily salts; trying again");
        }
        if let Some(keep) = keep.log {
            let cutoff_ms = now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
            let (log, store) = (log.clone(), store.clone());
            let trimmed = tokio::task::spawn_blocking(move || trim(&log, &store, cutoff_ms)).await;
            match trimmed {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(entries = n, "deleted log entries past the retention"),
                Ok(Err(error)) => tracing::warn!(error = format!("{error:#}"), "log retention failed; trying again"),
                Err(error) => tracing::error!(%error, "log retention panicked"),
            }
        }
    }
}

/// Deletes every site's aggregates of the local days that ended more than `keep` ago in every
/// time zone: before the UTC day `keep` ago, less one day.
fn trim_aggregates(store: &Store, sites: &[String], now_ms: i64, keep: Duration) -> anyhow::Result<usize> {
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let before_day = now_ms.saturating_sub(keep_ms).div_euclid(DAY_MS) - 1;
    let mut total = 0;
    for site in sites {
        total += store.trim_aggregates(site, before_day)?;
    }
    Ok(total)
}

/// Deletes the entries older than `cutoff_ms` that both the aggregates and the stored visit
/// state have taken in (a restart replays the log after the state's offset).
fn trim(log: &EventLog, store: &Store, cutoff_ms: i64) -> anyhow::Result<usize> {
    let upto = store.progress()?.offset.min(store.state_offset()?);
    let mut total = 0;
    loop {
        let deleted = log.trim(upto, cutoff_ms, TRIM_BATCH)?;
        total += deleted;
        if deleted < TRIM_BATCH {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_retention("keep"), Ok(Retention(None)));
        assert_eq!(parse_retention("395d"), Ok(Retention(Some(DEFAULT_LOG_RETENTION))));
        assert_eq!(parse("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse("2h"), Ok(Some(Duration::from_secs(7_200))));
        for bad in ["", "d", "12", "12w", "-1d", "0d", "99999999999999999999d", "1.5d"] {
            assert!(parse_retention(bad).is_err(), "{bad:?} is refused");
        }
    }
}
