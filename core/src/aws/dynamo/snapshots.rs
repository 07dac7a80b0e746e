//! Snapshots of a shard worker's state — its open visits — taken now and then after a committed
//! flush. A new holder of the shard starts from the latest snapshot at or before its checkpoint
//! and replays the records between the two to rebuild the state exactly, without applying them
//! again. So visits need no write per event, only one snapshot per interval.
//!
//! A snapshot needs no fencing: whoever wrote it, it is the state after the flush it names, and
//! the state after a given flush is the same for every worker that computes it.

use super::chunks;
use super::error::{StoreError, classify};
use super::tables::Tables;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use tally_model::session::Session;

/// The snapshot format, in the header's `format` attribute: 6 since cell keys hold the region
/// and city; 5 when visits tracked their exit page; 4 when cell keys gained the entry page,
/// entry page hostname and referrer; a header without one is format 3 ([`super::legacy`] reads
/// the older ones).
const FORMAT: &str = "6";

/// How long snapshots are kept (DynamoDB TTL), in seconds.
const KEEP_SECONDS: i64 = 2 * 24 * 3600;

/// A shard worker's state after a flush.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The flush after which it was taken.
    pub flush_seq: u64,
    /// That flush's checkpoint: the last record whose effects the state includes.
    pub end_sequence: String,
    /// The open visits per (site, visitor id).
    pub sessions: Vec<((String, u64), Session)>,
}

fn header_key(flush_seq: u64) -> String {
    format!("snap|h|{flush_seq:020}")
}

/// Stores a snapshot of `shard_id` (`writer` distinguishes concurrent writers' chunks).
pub async fn write(
    client: &Client,
    tables: &Tables,
    shard_id: &str,
    writer: i64,
    snapshot: &Snapshot,
    now_s: i64,
) -> Result<(), StoreError> {
    let payload = postcard::to_allocvec(snapshot).map_err(|e| StoreError::Other(e.to_string()))?;
    let ttl = AttributeValue::N((now_s + KEEP_SECONDS).to_string());
    let prefix = format!("snap|c|{:020}|{writer}|", snapshot.flush_seq);
    let chunks = chunks::write(client, &tables.flushes, shard_id, &prefix, &payload, &ttl).await?;
    client
        .put_item()
        .table_name(&tables.flushes)
        .item("pk", AttributeValue::S(shard_id.to_owned()))
        .item("sk", AttributeValue::S(header_key(snapshot.flush_seq)))
        .item("prefix", AttributeValue::S(prefix))
        .item("chunks", AttributeValue::N(chunks.to_string()))
        .item("format", AttributeValue::N(FORMAT.to_owned()))
        .item("ttl", ttl)
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

/// The latest snapshot of `shard_id` taken after a flush numbered at most `at_most`.
pub async fn latest(
    client: &Client,
    tables: &Tables,
    shard_id: &str,
    at_most: u64,
) -> Result<Option<Snapshot>, StoreError> {
    let page = client
        .query()
        .table_name(&tables.flushes)
        .consistent_read(true)
        .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
        .expression_attribute_values(":pk", AttributeValue::S(shard_id.to_owned()))
        .expression_attribute_values(":low", AttributeValue::S("snap|h|".into()))
        .expression_attribute_values(":high", AttributeValue::S(header_key(at_most)))
        .scan_index_forward(false)
        .limit(1)
        .send()
        .await
        .map_err(classify)?;
    let Some(header) = page.items().first() else { return Ok(None) };
    let prefix =
        header.get("prefix").and_then(|v| v.as_s().ok()).ok_or_else(|| StoreError::Corrupt("no prefix".into()))?;
    let chunks = header.get("chunks").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<usize>().ok());
    let chunks = chunks.ok_or_else(|| StoreError::Corrupt("no chunk count".into()))?;
    let payload = chunks::read(client, &tables.flushes, shard_id, prefix, chunks).await?;
    let decoded = match header.get("format").and_then(|v| v.as_n().ok()).map(String::as_str) {
        Some(format) if format == FORMAT => postcard::from_bytes(&payload),
        Some("5") => super::legacy::decode_snapshot_v5(&payload),
        Some("4") => super::legacy::decode_snapshot_v4(&payload),
        Some(other) => return Err(StoreError::Corrupt(format!("snapshot format {other} is newer than this tally"))),
        None => super::legacy::decode_snapshot_v3(&payload),
    };
    decoded.map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
}
