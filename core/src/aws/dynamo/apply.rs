//! Applies a logged flush idempotently. Its rollup rows become immutable delta items, one per
//! site lineage and local day, whose keys name the flush: writing one again writes the same
//! item. Drop counts are additive counters; each update carries the flush number as a watermark
//! attribute of the writing shard (`w_{shard}`) and is conditional on that watermark being
//! lower. Re-applying a flush, from a retry, a restart, or a paused former holder that wakes up,
//! therefore changes nothing that was already changed.

use super::error::{StoreError, classify, is_condition_failure};
use super::flush_log::FlushRecord;
use super::items::{delta_pk, delta_sk, drop_pk};
use super::rows::{encode, rows_by_day};
use super::tables::Tables;
use crate::pipeline::flush::Flush;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::time::Duration;
use tally_model::breakdown::Day;
use tokio::task::JoinSet;

/// Item writes in flight at once.
const CONCURRENCY: usize = 32;
/// Retries of one throttled write before the flush fails (and is retried whole, idempotently).
const MAX_THROTTLE_RETRIES: u32 = 10;
/// Most bytes of encoded rows in one item (DynamoDB items hold at most 400 KB).
pub const PART_BYTES: usize = 350_000;
/// How long a delta is kept after it is written (DynamoDB TTL), in seconds: far longer than the
/// fold interval, so that a delta expires only long after it was folded.
pub const DELTA_KEEP_SECONDS: i64 = 30 * 24 * 3600;

/// What applying a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Items written.
    pub written: usize,
    /// Drop updates found already applied (their watermark was there).
    pub already: usize,
    /// Throttled attempts that were retried.
    pub throttled: usize,
    /// The (site, sub-partition, local day) and encoded size of every delta written.
    pub days: Vec<(String, u16, Day, usize)>,
}

/// One write of a flush.
enum Write {
    /// A part of a delta item.
    Delta { pk: String, sk: String, rows: Vec<u8>, parts: usize },
    /// A drop count delta.
    Drop { site: String, reason: &'static str, count: u64 },
}

/// Writes the delta items and drop counts of `flush`, logged as `record`, in `region`.
pub async fn apply(
    client: &Client,
    tables: &Tables,
    region: &str,
    record: &FlushRecord,
    flush: &Flush,
) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    let mut writes = Vec::new();
    let mut lineages: Vec<_> = flush.breakdowns.iter().collect();
    lineages.sort_by(|a, b| a.0.cmp(b.0));
    for ((site, sub), breakdown) in lineages {
        for (day, rows) in rows_by_day(breakdown) {
            let encoded = encode(&rows)?;
            let parts: Vec<&[u8]> = encoded.chunks(PART_BYTES).collect();
            for (part, bytes) in parts.iter().enumerate() {
                writes.push(Write::Delta {
                    pk: delta_pk(site, region, *sub, day),
                    sk: delta_sk(record.time_s, &record.shard_id, record.seq, part),
                    rows: bytes.to_vec(),
                    parts: parts.len(),
                });
            }
            applied.days.push((site.clone(), *sub, day, encoded.len()));
        }
    }
    for ((site, reason), count) in &flush.drops {
        writes.push(Write::Drop { site: site.clone(), reason: reason.as_str(), count: *count });
    }
    let ttl = record.time_s + DELTA_KEEP_SECONDS;
    let mut running = JoinSet::new();
    for write in writes {
        if running.len() >= CONCURRENCY {
            collect(&mut running, &mut applied).await?;
        }
        let (client, table, region, shard, seq) =
            (client.clone(), tables.aggregates.clone(), region.to_owned(), record.shard_id.clone(), record.seq);
        running.spawn(async move { write_retrying(&client, &table, &region, &shard, seq, ttl, &write).await });
    }
    while !running.is_empty() {
        collect(&mut running, &mut applied).await?;
    }
    Ok(applied)
}

async fn collect(
    running: &mut JoinSet<Result<(bool, usize), StoreError>>,
    applied: &mut Applied,
) -> Result<(), StoreError> {
    if let Some(joined) = running.join_next().await {
        let (written, throttled) = joined.map_err(|e| StoreError::Other(e.to_string()))??;
        applied.throttled += throttled;
        if written {
            applied.written += 1;
        } else {
            applied.already += 1;
        }
    }
    Ok(())
}

/// Writes one item, retrying throttles with jittered backoff. Returns whether it wrote (false:
/// a drop update already applied) and how many throttles it met.
async fn write_retrying(
    client: &Client,
    table: &str,
    region: &str,
    shard: &str,
    seq: u64,
    ttl: i64,
    write: &Write,
) -> Result<(bool, usize), StoreError> {
    let mut throttled = 0;
    loop {
        match write_once(client, table, region, shard, seq, ttl, write).await {
            Ok(written) => return Ok((written, throttled)),
            Err(StoreError::Throttled(_)) if (throttled as u32) < MAX_THROTTLE_RETRIES => {
                throttled += 1;
                backoff(throttled).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Sleeps a jittered, exponentially growing time before retry number `attempt`.
pub async fn backoff(attempt: usize) {
    let ceiling = 20u64 << attempt.min(8);
    let jitter = getrandom::u64().unwrap_or(ceiling) % ceiling.max(1);
    tokio::time::sleep(Duration::from_millis(jitter)).await;
}

async fn write_once(
    client: &Client,
    table: &str,
    region: &str,
    shard: &str,
    seq: u64,
    ttl: i64,
    write: &Write,
) -> Result<bool, StoreError> {
    match write {
        Write::Delta { pk, sk, rows, parts } => {
            let item = HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.clone())),
                ("sk".to_owned(), AttributeValue::S(sk.clone())),
                ("rows".to_owned(), AttributeValue::B(Blob::new(rows.clone()))),
                ("parts".to_owned(), AttributeValue::N(parts.to_string())),
                ("ttl".to_owned(), AttributeValue::N(ttl.to_string())),
            ]);
            client.put_item().table_name(table).set_item(Some(item)).send().await.map_err(classify)?;
            Ok(true)
        }
        Write::Drop { site, reason, count } => {
            let request = client
                .update_item()
                .table_name(table)
                .key("pk", AttributeValue::S(drop_pk(site, region)))
                .key("sk", AttributeValue::S((*reason).to_owned()))
                .condition_expression("attribute_not_exists(#w) OR #w < :seq")
                .update_expression("SET #w = :seq ADD dropped :n")
                .expression_attribute_names("#w", format!("w_{shard}"))
                .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
                .expression_attribute_values(":n", AttributeValue::N(count.to_string()));
            match request.send().await {
                Ok(_) => Ok(true),
                Err(error) if is_condition_failure(&error) => Ok(false),
                Err(error) => Err(classify(error)),
            }
        }
    }
}
