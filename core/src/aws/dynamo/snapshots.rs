//! Snapshots of a shard worker's state — its open visits, the sightings of its visitor ids, and
//! the days it wrote deltas for that are not folded yet — taken now and then after a committed
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
use tally_model::breakdown::Sightings;
use tally_model::session::Session;

/// The snapshot format, in the header's `format` attribute: 7 since the state holds visitor
/// sightings and unfolded days (older formats are refused: README, Upgrading).
const FORMAT: &str = "7";

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
    /// Where each visitor id was seen, per (site, visitor id), with the arrival time (ms) of
    /// the event that last changed it.
    pub sightings: Vec<((String, u64), (i64, Sightings))>,
    /// The (site, sub-partition, local day) deltas not folded yet, with the flush times (s) of
    /// the oldest and newest of them.
    pub unfolded: Vec<((String, u16, i64), (i64, i64))>,
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
        other => {
            return Err(StoreError::Corrupt(format!(
                "snapshot format {} of {shard_id} is not this tally's {FORMAT} (README: Upgrading)",
                other.unwrap_or("3")
            )));
        }
    };
    decoded.map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
}
