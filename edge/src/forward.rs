//! The queue consumer: packs a batch's events into Kinesis records and puts them.
//!
//! Entries from all messages of the batch are packed together by partition key (many events
//! per record). Only records that failed are put again, with jittered exponential backoff, up to
//! `KINESIS_PUT_ATTEMPTS` rounds. A message is acknowledged only when every record holding any
//! of its entries is in Kinesis; otherwise the queue delivers it again later, and after its
//! `max_retries` it goes to the dead-letter queue. A retried message may put some of its events
//! twice; their ids let the core count each once.

use crate::config;
use crate::kinesis::{Kinesis, MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL};
use crate::queue_message;
use std::collections::BTreeSet;
use std::time::Duration;
use tally_model::codec;
use tally_model::event::LogEntry;
use tally_model::record::{MAX_RECORD_BYTES, Packer, Record, partition_key, sub_partition};
use wasm_bindgen::JsValue;
use worker::{Delay, Env, MessageBatch, MessageExt, Result};

/// Forwards one batch of the events queue.
pub async fn forward(batch: &MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let sub_partitions = config::sub_partitions(env)?;
    let attempts: u32 = config::number(env, "KINESIS_PUT_ATTEMPTS")?;
    let kinesis = Kinesis::from_env(env)?;
    let messages: Vec<_> = batch.raw_iter().collect();
    let mut packer = Packer::new(MAX_RECORD_BYTES);
    let mut unreadable = BTreeSet::new();
    for (index, message) in messages.iter().enumerate() {
        match queue_message::decode(&message.body()) {
            Ok(entries) => {
                for (entry, sub) in &entries {
                    // A message of the release before carries no sub-partitions: its events go
                    // by their visitor id, as they did then.
                    let sub = sub.unwrap_or_else(|| match entry {
                        LogEntry::Event(event) => sub_partition(event.visitor.current, sub_partitions),
                        LogEntry::Drop(_) | LogEntry::Drops(_) => 0,
                    });
                    packer.push_from(&partition_key(entry, sub), codec::encode(entry), index);
                }
            }
            Err(error) => {
                // Never dropped: retried, then parked as a dead letter for a person to look at.
                worker::console_error!("message {} cannot be read: {error}", message.id());
                unreadable.insert(index);
            }
        }
    }
    let records = packer.finish_with_origins();
    let unsent = put_all(&kinesis, &records, attempts).await;
    let mut failed: BTreeSet<usize> = unreadable;
    for index in unsent {
        failed.extend(records[index].1.iter().copied());
    }
    for (index, message) in messages.iter().enumerate() {
        if failed.contains(&index) { message.retry() } else { message.ack() }
    }
    if !failed.is_empty() {
        worker::console_warn!("{} of {} messages left for a later delivery", failed.len(), messages.len());
    }
    Ok(())
}

/// Puts every record, retrying only the failed ones; returns the indices still not stored.
async fn put_all(kinesis: &Kinesis, records: &[(Record, Vec<usize>)], attempts: u32) -> Vec<usize> {
    let mut pending: Vec<usize> = (0..records.len()).collect();
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            Delay::from(backoff(attempt)).await;
        }
        let mut still = Vec::new();
        for call in calls(&pending, records) {
            let batch: Vec<&Record> = call.iter().map(|&i| &records[i].0).collect();
            match kinesis.put_records(&batch).await {
                Ok(outcome) => {
                    for (&index, error) in call.iter().zip(outcome) {
                        if let Some(code) = error {
                            worker::console_warn!("record put failed: {code}");
                            still.push(index);
                        }
                    }
                }
                Err(error) => {
                    worker::console_warn!("PutRecords failed (attempt {}): {error}", attempt + 1);
                    still.extend(call);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
    }
    pending
}

/// Splits record indices into calls within Kinesis's per-call limits.
fn calls(pending: &[usize], records: &[(Record, Vec<usize>)]) -> Vec<Vec<usize>> {
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &index in pending {
        let size = records[index].0.data.len() + records[index].0.partition_key.len();
        match calls.last_mut() {
            Some(call) if call.len() < MAX_RECORDS_PER_CALL && bytes + size <= MAX_BYTES_PER_CALL => {
                call.push(index);
                bytes += size;
            }
            _ => {
                calls.push(vec![index]);
                bytes = size;
            }
        }
    }
    calls
}

/// Full jitter over an exponential ceiling: 100 ms, 200 ms, … capped at 5 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (100u64 << attempt.min(6)).min(5_000);
    let mut byte = [0u8; 2];
    let random =
        getrandom::getrandom(&mut byte).map(|()| u64::from(u16::from_le_bytes(byte))).unwrap_or(u64::from(u16::MAX));
    Duration::from_millis(ceiling_ms * random / u64::from(u16::MAX))
}
