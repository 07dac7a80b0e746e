//! The write-ahead flush log: before a consumer applies a flush, it logs which records the
//! flush covers and when it was made, under (shard, flush number), in one transaction with a
//! check that it still holds the shard's lease at its epoch. The log holds no updates: whoever
//! holds the shard next rebuilds the last logged flush from the same Kinesis records on top of
//! the same state (the snapshot and replay up to the checkpoint) and applies it again, so a flush
//! interrupted half way is completed with exactly the same deltas, and a flush's rows are
//! written once.

use super::error::{StoreError, classify};
use super::tables::Tables;
use crate::aws::lease::Lease;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

/// How long logged flushes are kept (DynamoDB TTL), in seconds.
const KEEP_SECONDS: i64 = 7 * 24 * 3600;

/// One logged flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushRecord {
    /// The shard it came from.
    pub shard_id: String,
    /// Its number: one more than the lease's `flush_seq` when it was written.
    pub seq: u64,
    /// The sequence number of the last Kinesis record it covers (the checkpoint it reaches).
    pub end_sequence: String,
    /// Whether the shard was read to its end.
    pub shard_end: bool,
    /// When the flush was made (seconds since the epoch): the time in its deltas' keys.
    pub time_s: i64,
}

fn header_key(seq: u64) -> String {
    format!("{seq:020}|h")
}

/// Logs `record`, fenced by `lease`: one transaction checks the lease and writes the item that
/// makes the flush exist. Fails with [`StoreError::LeaseLost`] if the lease moved on or a flush
/// with this number is already logged.
pub async fn write(
    client: &Client,
    tables: &Tables,
    lease: &Lease,
    record: &FlushRecord,
    now_s: i64,
) -> Result<(), StoreError> {
    let payload = postcard::to_allocvec(record).map_err(|e| StoreError::Other(e.to_string()))?;
    let ttl = AttributeValue::N((now_s + KEEP_SECONDS).to_string());
    let pk = AttributeValue::S(record.shard_id.clone());
    let owner = lease.owner.clone().unwrap_or_default();
    let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Other(e.to_string());
    let check = ConditionCheck::builder()
        .table_name(&tables.leases)
        .key("shard_id", AttributeValue::S(lease.shard_id.clone()))
        .condition_expression("#owner = :owner AND epoch = :epoch AND flush_seq = :previous")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":owner", AttributeValue::S(owner))
        .expression_attribute_values(":epoch", AttributeValue::N(lease.epoch.to_string()))
        .expression_attribute_values(":previous", AttributeValue::N(record.seq.saturating_sub(1).to_string()))
        .build()
        .map_err(build)?;
    let header = Put::builder()
        .table_name(&tables.flushes)
        .item("pk", pk)
        .item("sk", AttributeValue::S(header_key(record.seq)))
        .item("epoch", AttributeValue::N(lease.epoch.to_string()))
        .item("record", AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(payload)))
        .item("ttl", ttl)
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(build)?;
    let result = client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().condition_check(check).build())
        .transact_items(TransactWriteItem::builder().put(header).build())
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) if is_cancelled_by_condition(&error) => Err(StoreError::LeaseLost),
        Err(error) => Err(classify(error)),
    }
}

/// Whether a transaction was cancelled by a failed condition.
pub fn is_cancelled_by_condition<R>(error: &SdkError<TransactWriteItemsError, R>) -> bool {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error() else {
        return false;
    };
    cancelled.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
}

/// The logged flush `seq` of a shard, if it exists.
pub async fn read(
    client: &Client,
    tables: &Tables,
    shard_id: &str,
    seq: u64,
) -> Result<Option<FlushRecord>, StoreError> {
    let header = client
        .get_item()
        .table_name(&tables.flushes)
        .consistent_read(true)
        .key("pk", AttributeValue::S(shard_id.to_owned()))
        .key("sk", AttributeValue::S(header_key(seq)))
        .send()
        .await
        .map_err(classify)?;
    let Some(header) = header.item() else { return Ok(None) };
    let Some(payload) = header.get("record").and_then(|v| v.as_b().ok()) else {
        return Err(StoreError::Corrupt(format!(
            "flush {seq} of {shard_id} was logged by an older tally (README: Upgrading)"
        )));
    };
    postcard::from_bytes(payload.as_ref()).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
}
