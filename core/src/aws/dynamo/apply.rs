//! Applies a logged flush idempotently: every item update carries the flush number as a
//! watermark attribute of the writing shard (`w_{shard}`) and is conditional on that watermark
//! being lower. Re-applying a flush, from a retry, a restart, or a paused former holder that
//! wakes up, therefore changes nothing that was already changed.

use super::error::{StoreError, classify, is_condition_failure};
use super::flush_log::FlushRecord;
use super::items::Update;
use super::tables::Tables;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Item updates in flight at once.
const CONCURRENCY: usize = 32;
/// Retries of one throttled update before the flush fails (and is retried whole, idempotently).
const MAX_THROTTLE_RETRIES: u32 = 10;

/// What applying a flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Updates written now.
    pub written: usize,
    /// Updates found already applied (their watermark was there).
    pub already: usize,
    /// Throttled attempts that were retried.
    pub throttled: usize,
}

/// Applies every update of `record` in `region`.
pub async fn apply(
    client: &Client,
    tables: &Tables,
    region: &str,
    record: &FlushRecord,
) -> Result<Applied, StoreError> {
    let context =
        Arc::new((client.clone(), tables.aggregates.clone(), region.to_owned(), record.shard_id.clone(), record.seq));
    let mut applied = Applied::default();
    let mut running = JoinSet::new();
    for update in record.updates.clone() {
        if running.len() >= CONCURRENCY {
            collect(&mut running, &mut applied).await?;
        }
        let context = context.clone();
        running.spawn(async move {
            let (client, table, region, shard, seq) = context.as_ref();
            apply_one(client, table, region, shard, *seq, &update).await
        });
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

/// Applies one update, retrying throttles with jittered backoff. Returns whether it wrote
/// (false: already applied) and how many throttles it met.
async fn apply_one(
    client: &Client,
    table: &str,
    region: &str,
    shard: &str,
    seq: u64,
    update: &Update,
) -> Result<(bool, usize), StoreError> {
    let mut throttled = 0;
    loop {
        match write(client, table, region, shard, seq, update).await {
            Ok(written) => return Ok((written, throttled)),
            Err(StoreError::Throttled(_)) if (throttled as u32) < MAX_THROTTLE_RETRIES => {
                throttled += 1;
                let ceiling = 20u64 << throttled.min(8);
                let jitter = getrandom::u64().unwrap_or(ceiling) % ceiling.max(1);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn write(
    client: &Client,
    table: &str,
    region: &str,
    shard: &str,
    seq: u64,
    update: &Update,
) -> Result<bool, StoreError> {
    if let Update::Visitors { ids, .. } = update {
        return add_to_sketch(client, table, update.key(region), ids).await;
    }
    let (pk, sk) = update.key(region);
    let n = |v: i64| AttributeValue::N(v.to_string());
    let request = client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk))
        .condition_expression("attribute_not_exists(#w) OR #w < :seq")
        .expression_attribute_names("#w", format!("w_{shard}"))
        .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()));
    let request = match update {
        Update::Cell { key, counters: c, .. } => request
            .update_expression("SET #w = :seq, k = :k ADD ev :ev, pv :pv, vi :vi, bo :bo, du :du, vp :vp")
            .expression_attribute_values(
                ":k",
                AttributeValue::B(Blob::new(postcard::to_allocvec(key).unwrap_or_default())),
            )
            .expression_attribute_values(":ev", n(c.events))
            .expression_attribute_values(":pv", n(c.pageviews))
            .expression_attribute_values(":vi", n(c.visits))
            .expression_attribute_values(":bo", n(c.bounces))
            .expression_attribute_values(":du", n(c.duration_ms))
            .expression_attribute_values(":vp", n(c.visit_pageviews)),
        Update::Visitors { .. } => return Ok(false),
        Update::Drop { count, .. } => request
            .update_expression("SET #w = :seq ADD dropped :n")
            .expression_attribute_values(":n", AttributeValue::N(count.to_string())),
    };
    match request.send().await {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(classify(error)),
    }
}

/// Sketch parameters: 2^12 registers of 4 bits, about 1.6 % standard error, at most ~2 KB.
const SKETCH_LG_K: u8 = 12;
/// Conflicting writers before giving up (only a stale former holder can conflict).
const MAX_SKETCH_CONFLICTS: u32 = 20;

/// Adds visitor ids to a sketch item: read, merge, write back on condition that the item's
/// version is unchanged. Adding the same ids again changes nothing (a sketch keeps maxima), so
/// a re-applied flush needs no watermark here.
async fn add_to_sketch(
    client: &Client,
    table: &str,
    (pk, sk): (String, String),
    ids: &[u64],
) -> Result<bool, StoreError> {
    use datasketches::hll::{HllSketch, HllType};
    for _ in 0..MAX_SKETCH_CONFLICTS {
        let found = client
            .get_item()
            .table_name(table)
            .consistent_read(true)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk.clone()))
            .send()
            .await
            .map_err(classify)?;
        let item = found.item();
        let version = item.and_then(|i| i.get("ver")).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok());
        let stored = item.and_then(|i| i.get("hll")).and_then(|v| v.as_b().ok());
        let mut sketch = match stored {
            Some(bytes) => HllSketch::deserialize(bytes.as_ref()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => HllSketch::new(SKETCH_LG_K, HllType::Hll4).map_err(|e| StoreError::Other(e.to_string()))?,
        };
        for id in ids {
            sketch.update(id);
        }
        let mut put = client
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(pk.clone()))
            .item("sk", AttributeValue::S(sk.clone()))
            .item("hll", AttributeValue::B(Blob::new(sketch.serialize())))
            .item("ver", AttributeValue::N((version.unwrap_or(0) + 1).to_string()));
        put = match version {
            Some(v) => put
                .condition_expression("ver = :ver")
                .expression_attribute_values(":ver", AttributeValue::N(v.to_string())),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        match put.send().await {
            Ok(_) => return Ok(true),
            Err(error) if is_condition_failure(&error) => continue,
            Err(error) => return Err(classify(error)),
        }
    }
    Err(StoreError::Other(format!("sketch {pk} {sk}: too many conflicting writers")))
}
