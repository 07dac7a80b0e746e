//! One small function per Kinesis call, with typed errors: callers branch on a throttle, an
//! expired iterator or a missing stream without reading messages. Sequence numbers stay strings
//! (they have 56 digits and more).

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Shard, ShardIteratorType, StreamStatus};
use std::time::Duration;
use tally_model::record::Record;

/// Most records one `PutRecords` call takes.
pub const MAX_PUT_RECORDS: usize = 500;
/// Most bytes (data and partition keys) we put in one `PutRecords` call. Kinesis allows 5 MiB;
/// the JSON protocol sends data base64-encoded, so the request itself is a third larger, and
/// stand-ins such as kinesalite limit the request body.
pub const MAX_PUT_BYTES: usize = 3_500_000;

/// Splits records into `PutRecords` batches within [`MAX_PUT_RECORDS`] and [`MAX_PUT_BYTES`].
pub fn put_batches(records: &[Record]) -> Vec<&[Record]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, record) in records.iter().enumerate() {
        let size = record.data.len() + record.partition_key.len();
        if index > start && (index - start == MAX_PUT_RECORDS || bytes + size > MAX_PUT_BYTES) {
            batches.push(&records[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        batches.push(&records[start..]);
    }
    batches
}
/// Longest [`create_stream`] and [`split_shard`] wait for the stream to become `ACTIVE` again.
const ACTIVE_DEADLINE: Duration = Duration::from_secs(300);

/// Why a Kinesis call failed, as far as a caller must branch on it.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KinesisError {
    /// ProvisionedThroughputExceeded / LimitExceeded / KMSThrottling: retry after a backoff.
    #[error("kinesis throttled: {0}")]
    Throttled(String),
    /// ExpiredIteratorException: get a new iterator from the last sequence number read.
    #[error("kinesis shard iterator expired")]
    ExpiredIterator,
    /// ResourceNotFound (stream or shard gone).
    #[error("kinesis resource not found: {0}")]
    NotFound(String),
    /// Anything else (network, 5xx, validation) with its message.
    #[error("kinesis call failed: {0}")]
    Other(String),
    /// Not a Kinesis failure: the receiver of a shard reader's batches has gone.
    #[error("the shard reader's output channel is closed")]
    OutputClosed,
}

impl<E: ProvideErrorMetadata + std::error::Error + 'static> From<SdkError<E>> for KinesisError {
    fn from(error: SdkError<E>) -> KinesisError {
        let message = DisplayErrorContext(&error).to_string();
        let code = match &error {
            SdkError::ServiceError(service) => service.err().code(),
            _ => None,
        };
        match code {
            Some("ProvisionedThroughputExceededException" | "LimitExceededException" | "KMSThrottlingException") => {
                KinesisError::Throttled(message)
            }
            Some("ExpiredIteratorException") => KinesisError::ExpiredIterator,
            Some("ResourceNotFoundException") => KinesisError::NotFound(message),
            _ => KinesisError::Other(message),
        }
    }
}

/// One shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// E.g. `shardId-000000000000`.
    pub shard_id: String,
    /// The shard this one was split from, or one of the two it was merged from.
    pub parent_shard_id: Option<String>,
    /// The other shard of a merge.
    pub adjacent_parent_shard_id: Option<String>,
    /// Lowest hash key (a decimal below 2^128) routed to this shard.
    pub starting_hash_key: String,
    /// Highest hash key routed to this shard.
    pub ending_hash_key: String,
    /// Sequence number of the shard's first record.
    pub starting_sequence_number: String,
    /// Sequence number past which the shard takes no records: `Some` when the shard is closed.
    pub ending_sequence_number: Option<String>,
}

impl From<&Shard> for ShardInfo {
    fn from(shard: &Shard) -> ShardInfo {
        let (starting_hash_key, ending_hash_key) = shard
            .hash_key_range()
            .map(|r| (r.starting_hash_key().to_owned(), r.ending_hash_key().to_owned()))
            .unwrap_or_default();
        let range = shard.sequence_number_range();
        ShardInfo {
            shard_id: shard.shard_id().to_owned(),
            parent_shard_id: shard.parent_shard_id().map(str::to_owned),
            adjacent_parent_shard_id: shard.adjacent_parent_shard_id().map(str::to_owned),
            starting_hash_key,
            ending_hash_key,
            starting_sequence_number: range.map(|r| r.starting_sequence_number().to_owned()).unwrap_or_default(),
            ending_sequence_number: range.and_then(|r| r.ending_sequence_number()).map(str::to_owned),
        }
    }
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// At the oldest record still retained.
    TrimHorizon,
    /// Just after the record with this sequence number (a checkpoint).
    AfterSequenceNumber(String),
    /// After the newest record: only records put from now on.
    Latest,
    /// At the first record put at or after this time, ms since the epoch.
    AtTimestamp(i64),
}

/// One page of `GetRecords`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsPage {
    /// The records, in sequence order; may be empty while the shard is open.
    pub records: Vec<KinesisRecord>,
    /// The iterator for the next page; `None` at SHARD_END (a closed shard read to its end).
    pub next_iterator: Option<String>,
    /// How far this page is behind the shard's newest record.
    pub millis_behind_latest: Option<i64>,
}

/// One record as read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    /// Its sequence number, unique within the shard.
    pub sequence_number: String,
    /// The partition key it was put with.
    pub partition_key: String,
    /// Its data.
    pub data: Vec<u8>,
    /// When Kinesis took it, in Unix milliseconds.
    pub arrival_ms: Option<i64>,
}

impl From<aws_sdk_kinesis::types::Record> for KinesisRecord {
    fn from(record: aws_sdk_kinesis::types::Record) -> KinesisRecord {
        KinesisRecord {
            arrival_ms: record.approximate_arrival_timestamp().and_then(|t| t.to_millis().ok()),
            sequence_number: record.sequence_number,
            partition_key: record.partition_key,
            data: record.data.into_inner(),
        }
    }
}

/// All shards of a stream, open and closed (still retained), following `NextToken` pages.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // Kinesis refuses a stream name together with a NextToken.
        let request = match next_token.take() {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream),
        };
        let page = request.send().await?;
        shards.extend(page.shards().iter().map(ShardInfo::from));
        match page.next_token() {
            Some(token) => next_token = Some(token.to_owned()),
            None => return Ok(shards),
        }
    }
}

/// A new iterator into `shard_id` at `start`.
pub async fn shard_iterator(
    client: &Client,
    stream: &str,
    shard_id: &str,
    start: &StartAt,
) -> Result<String, KinesisError> {
    let request = client.get_shard_iterator().stream_name(stream).shard_id(shard_id);
    let request = match start {
        StartAt::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        StartAt::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
        StartAt::AfterSequenceNumber(sequence) => {
            request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(sequence)
        }
        StartAt::AtTimestamp(ms) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(*ms)),
    };
    let output = request.send().await?;
    output.shard_iterator.ok_or_else(|| KinesisError::Other(format!("no shard iterator returned for {shard_id}")))
}

/// Up to `limit` records (at most 10,000) from `iterator`, and the iterator for the next page.
pub async fn get_records(client: &Client, iterator: &str, limit: i32) -> Result<RecordsPage, KinesisError> {
    let output = client.get_records().shard_iterator(iterator).limit(limit).send().await?;
    Ok(RecordsPage {
        millis_behind_latest: output.millis_behind_latest,
        next_iterator: output.next_shard_iterator,
        records: output.records.into_iter().map(KinesisRecord::from).collect(),
    })
}

/// Puts records; returns the indices (into `records`) that failed with their error codes, so
/// that only those are retried. One call: at most [`MAX_PUT_RECORDS`] records and 5 MiB, or
/// Kinesis refuses the whole batch.
pub async fn put_records(
    client: &Client,
    stream: &str,
    records: &[Record],
) -> Result<Vec<(usize, String)>, KinesisError> {
    let entries = records
        .iter()
        .map(|r| {
            PutRecordsRequestEntry::builder()
                .partition_key(&r.partition_key)
                .data(Blob::new(r.data.clone()))
                .build()
                .map_err(|e| KinesisError::Other(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let output = client.put_records().stream_name(stream).set_records(Some(entries)).send().await?;
    Ok(output
        .records()
        .iter()
        .enumerate()
        .filter_map(|(index, result)| result.error_code().map(|code| (index, code.to_owned())))
        .collect())
}

/// Creates a stream of `shards` shards and waits until it is `ACTIVE` (for local use and tests).
pub async fn create_stream(client: &Client, stream: &str, shards: i32) -> Result<(), KinesisError> {
    client.create_stream().stream_name(stream).shard_count(shards).send().await?;
    wait_until_active(client, stream).await
}

/// Splits a shard at `new_starting_hash_key` (the first hash key of the upper child) and waits
/// until the stream is `ACTIVE` again (for tests).
pub async fn split_shard(
    client: &Client,
    stream: &str,
    shard_id: &str,
    new_starting_hash_key: &str,
) -> Result<(), KinesisError> {
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard_id)
        .new_starting_hash_key(new_starting_hash_key)
        .send()
        .await?;
    wait_until_active(client, stream).await
}

/// Polls `DescribeStreamSummary`, 50 ms apart at first and then up to 1 s.
async fn wait_until_active(client: &Client, stream: &str) -> Result<(), KinesisError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_DEADLINE;
    let mut pause = Duration::from_millis(50);
    loop {
        let output = client.describe_stream_summary().stream_name(stream).send().await?;
        let status = output.stream_description_summary().map(|s| s.stream_status());
        if status == Some(&StreamStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KinesisError::Other(format!(
                "stream {stream} not ACTIVE after {ACTIVE_DEADLINE:?}: {status:?}"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: usize) -> Record {
        Record { partition_key: "a#0".into(), data: vec![0; bytes] }
    }

    #[test]
    fn batches_respect_count_and_size() {
        let many: Vec<Record> = (0..1_200).map(|_| record(10)).collect();
        assert_eq!(put_batches(&many).iter().map(|b| b.len()).collect::<Vec<_>>(), vec![500, 500, 200]);
        let big: Vec<Record> = (0..10).map(|_| record(1_000_000)).collect();
        let sizes: Vec<usize> = put_batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1]);
        assert!(put_batches(&[]).is_empty());
    }
}
