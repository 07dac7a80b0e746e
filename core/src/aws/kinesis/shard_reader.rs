//! Reads one shard from a position until its end: one task per shard, backpressure from a
//! bounded channel, an expired iterator renewed from the last record sent, and jittered backoff
//! on throttles and transient failures.

use super::api::{self, KinesisError, KinesisRecord, RecordsPage, StartAt};
use aws_sdk_kinesis::Client;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// First backoff step after a failure; it doubles per consecutive failure up to the cap.
const BASE_BACKOFF: Duration = Duration::from_millis(100);

/// Records read from one shard in one `GetRecords` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardBatch {
    /// The shard read.
    pub shard_id: String,
    /// The page's records, in sequence order; empty only on the final batch.
    pub records: Vec<KinesisRecord>,
    /// How far the page is behind the shard's newest record.
    pub millis_behind_latest: Option<i64>,
    /// true on the last batch of a closed shard (SHARD_END reached)
    pub shard_end: bool,
}

/// How a shard reader polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderSettings {
    /// `GetRecords` limit per page (at most 10,000).
    pub batch_limit: i32,
    /// Wait after an empty page; Kinesis allows 5 `GetRecords` per second per shard.
    pub idle_poll: Duration,
    /// Cap of the jittered exponential backoff on throttles and other failures.
    pub max_backoff: Duration,
    /// Wait after a full page: 200 ms keeps a reader catching up on a backlog within the
    /// 5 `GetRecords` per second a shard allows.
    pub busy_poll: Duration,
}

impl Default for ReaderSettings {
    fn default() -> ReaderSettings {
        ReaderSettings {
            batch_limit: 1000,
            idle_poll: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            busy_poll: Duration::from_millis(200),
        }
    }
}

/// Reads `shard_id` from `start` until SHARD_END or until `stop` fires, sending each non-empty
/// page (and a final empty batch with `shard_end = true` at SHARD_END) to `out`. Renews an
/// expired iterator from the last sequence number sent (or the original start if none). Backs
/// off with full jitter on Throttled and Other errors (counting them in a `tracing::warn!`), and
/// returns Err only on NotFound or when `out` is closed ([`KinesisError::OutputClosed`]).
///
/// A dropped `stop` sender never stops the reader.
pub async fn read_shard(
    client: Client,
    stream: String,
    shard_id: String,
    start: StartAt,
    settings: ReaderSettings,
    out: mpsc::Sender<ShardBatch>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), KinesisError> {
    let mut cursor = Cursor { client, stream, shard_id, position: start, iterator: None };
    let mut failures: u32 = 0;
    while !*stop.borrow() {
        let result = cursor.next_page(settings.batch_limit).await;
        let pause = match result {
            Ok(page) => {
                failures = 0;
                let shard_end = page.next_iterator.is_none();
                let idle = page.records.is_empty();
                if !idle || shard_end {
                    let batch = ShardBatch {
                        shard_id: cursor.shard_id.clone(),
                        records: page.records,
                        millis_behind_latest: page.millis_behind_latest,
                        shard_end,
                    };
                    tokio::select! {
                        sent = out.send(batch) => sent.map_err(|_| KinesisError::OutputClosed)?,
                        () = stopped(&mut stop) => return Ok(()),
                    }
                }
                if shard_end {
                    tracing::info!(stream = cursor.stream, shard_id = cursor.shard_id, "shard read to its end");
                    return Ok(());
                }
                if idle { settings.idle_poll } else { settings.busy_poll }
            }
            Err(KinesisError::ExpiredIterator) => {
                tracing::info!(
                    stream = cursor.stream,
                    shard_id = cursor.shard_id,
                    "shard iterator expired, renewing it"
                );
                Duration::ZERO
            }
            Err(error @ (KinesisError::NotFound(_) | KinesisError::OutputClosed)) => return Err(error),
            Err(error) => {
                failures = failures.saturating_add(1);
                let (stream, shard_id) = (&cursor.stream, &cursor.shard_id);
                tracing::warn!(stream, shard_id, failures, %error, "kinesis read failed, backing off");
                backoff(failures, settings.max_backoff)
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stopped(&mut stop) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// A position in one shard: the iterator to read next, and where to get a new one.
struct Cursor {
    client: Client,
    stream: String,
    shard_id: String,
    /// Where a new iterator starts: just after the last record read, or the original start.
    position: StartAt,
    iterator: Option<String>,
}

impl Cursor {
    /// The next page, getting a new iterator at `position` first when there is none. The
    /// iterator is kept for another try only after a throttle: after an expired or failed one
    /// (a bad iterator looks like any other invalid argument) the next try renews it.
    async fn next_page(&mut self, limit: i32) -> Result<RecordsPage, KinesisError> {
        let iterator = match self.iterator.take() {
            Some(iterator) => iterator,
            None => api::shard_iterator(&self.client, &self.stream, &self.shard_id, &self.position).await?,
        };
        let result = api::get_records(&self.client, &iterator, limit).await;
        match &result {
            Ok(page) => {
                if let Some(last) = page.records.last() {
                    self.position = StartAt::AfterSequenceNumber(last.sequence_number.clone());
                }
                self.iterator.clone_from(&page.next_iterator);
            }
            Err(KinesisError::Throttled(_)) => self.iterator = Some(iterator),
            Err(_) => {}
        }
        result
    }
}

/// Resolves once `stop` is true; never if its sender is gone without having said so.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Full jitter: a uniformly random wait below `BASE_BACKOFF * 2^(failures-1)`, capped at `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let ceiling = BASE_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(max);
    // Without randomness, wait the whole ceiling: slower, never faster.
    let fraction = getrandom::u32().map_or(1.0, |r| f64::from(r) / f64::from(u32::MAX));
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let max = Duration::from_secs(5);
        for failures in 1..40 {
            let wait = backoff(failures, max);
            let ceiling = BASE_BACKOFF.saturating_mul(1 << (failures - 1).min(16)).min(max);
            assert!(wait <= ceiling, "{failures}: {wait:?} > {ceiling:?}");
        }
        assert!(backoff(1, max) <= BASE_BACKOFF);
    }
}
