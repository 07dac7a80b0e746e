//! Snapshots of a shard worker's state — its open visits, the sightings of its visitor ids, and
//! the days it wrote deltas for that are not folded yet — taken now and then after a committed
//! flush. A new holder of the shard starts from the latest snapshot at or before its checkpoint
//! and replays the records between the two to rebuild the state exactly, without applying them
//! again. So visits need no write per event, only one snapshot per interval.
//!
//! The state is as large as a day of the shard's visitor ids, so a snapshot is one object in an
//! S3 bucket (a request each, whatever its size; DynamoDB would bill every KB, every time),
//! found through a small header item in the flush table.
//!
//! A snapshot needs no fencing: whoever wrote it, it is the state after the flush it names, and
//! the state after a given flush is the same for every worker that computes it.

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

/// How long snapshot headers are kept (DynamoDB TTL), in seconds; [`ensure_bucket`] expires
/// the objects a day later.
const KEEP_SECONDS: i64 = 2 * 24 * 3600;

/// Where snapshot objects go.
#[derive(Debug, Clone)]
pub struct Objects {
    /// The S3 client.
    pub client: aws_sdk_s3::Client,
    /// The bucket.
    pub bucket: String,
}

/// Creates the snapshot bucket unless it exists, with a rule that expires its objects after
/// three days (local use; in AWS it comes from infra/).
pub async fn ensure_bucket(objects: &Objects) -> Result<(), StoreError> {
    let other = |e: String| StoreError::Other(format!("snapshot bucket {}: {e}", objects.bucket));
    if objects.client.head_bucket().bucket(&objects.bucket).send().await.is_err() {
        let created = objects.client.create_bucket().bucket(&objects.bucket).send().await;
        if let Err(error) = created {
            let exists = error.as_service_error().is_some_and(|e| e.is_bucket_already_owned_by_you());
            if !exists {
                return Err(other(format!("{error:?}")));
            }
        }
    }
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    };
    let rule = LifecycleRule::builder()
        .id("expire-snapshots")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(3).build())
        .build()
        .map_err(|e| other(e.to_string()))?;
    let rules = BucketLifecycleConfiguration::builder().rules(rule).build().map_err(|e| other(e.to_string()))?;
    objects
        .client
        .put_bucket_lifecycle_configuration()
        .bucket(&objects.bucket)
        .lifecycle_configuration(rules)
        .send()
        .await
        .map_err(|e| other(format!("{e:?}")))?;
    Ok(())
}

/// What a shard worker knows of a lineage's day's deltas that are not folded yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unfolded {
    /// The flush time (s) of the oldest.
    pub oldest_s: i64,
    /// The flush time (s) of the newest.
    pub newest_s: i64,
    /// How many (at least).
    pub deltas: u32,
    /// Their encoded bytes (at least).
    pub bytes: u64,
}

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
    /// The (site, sub-partition, local day) deltas not folded yet: see [`Unfolded`].
    pub unfolded: Vec<((String, u16, i64), Unfolded)>,
}

/// A visitor of a site: (site, visitor id).
pub type VisitorKey = (String, u64);

/// A visitor's sightings and when they last changed (ms).
pub type TouchedSightings = (i64, Sightings);

/// A snapshot of state held elsewhere, encoded as [`Snapshot`] decodes, without copying it.
#[derive(Debug, Serialize)]
pub struct SnapshotOf<'a> {
    /// As [`Snapshot::flush_seq`].
    pub flush_seq: u64,
    /// As [`Snapshot::end_sequence`].
    pub end_sequence: &'a str,
    /// As [`Snapshot::sessions`].
    pub sessions: Vec<(&'a (String, u64), &'a Session)>,
    /// As [`Snapshot::sightings`].
    pub sightings: Vec<(&'a VisitorKey, &'a TouchedSightings)>,
    /// As [`Snapshot::unfolded`].
    pub unfolded: Vec<(&'a (String, u16, i64), &'a Unfolded)>,
}

/// The stored bytes of a snapshot: postcard, LZ4-compressed.
pub fn encode(snapshot: &SnapshotOf<'_>) -> Result<Vec<u8>, StoreError> {
    let payload = postcard::to_allocvec(snapshot).map_err(|e| StoreError::Other(e.to_string()))?;
    Ok(lz4_flex::compress_prepend_size(&payload))
}

fn header_key(flush_seq: u64) -> String {
    format!("snap|h|{flush_seq:020}")
}

/// Stores the [`encode`]d snapshot taken after flush `flush_seq` of `shard_id` (`writer`
/// distinguishes concurrent writers' objects). Returns its size.
pub async fn write(
    (client, objects): (&Client, &Objects),
    tables: &Tables,
    (shard_id, writer): (&str, i64),
    flush_seq: u64,
    payload: Vec<u8>,
    now_s: i64,
) -> Result<usize, StoreError> {
    let key = format!("{}/{shard_id}/{flush_seq:020}-{writer}.snapshot", tables.flushes);
    let size = payload.len();
    objects
        .client
        .put_object()
        .bucket(&objects.bucket)
        .key(&key)
        .body(payload.into())
        .send()
        .await
        .map_err(|e| StoreError::Other(format!("snapshot {key}: {e:?}")))?;
    client
        .put_item()
        .table_name(&tables.flushes)
        .item("pk", AttributeValue::S(shard_id.to_owned()))
        .item("sk", AttributeValue::S(header_key(flush_seq)))
        .item("object", AttributeValue::S(key))
        .item("format", AttributeValue::N(FORMAT.to_owned()))
        .item("ttl", AttributeValue::N((now_s + KEEP_SECONDS).to_string()))
        .send()
        .await
        .map_err(classify)?;
    Ok(size)
}

/// The flush number of the latest snapshot of `shard_id` taken after a flush numbered at most
/// `at_most` (its header only).
pub async fn latest_flush(
    client: &Client,
    tables: &Tables,
    shard_id: &str,
    at_most: u64,
) -> Result<Option<u64>, StoreError> {
    let header = latest_header(client, tables, shard_id, at_most).await?;
    Ok(header.and_then(|h| h.get("sk")?.as_s().ok()?.strip_prefix("snap|h|")?.parse().ok()))
}

async fn latest_header(
    client: &Client,
    tables: &Tables,
    shard_id: &str,
    at_most: u64,
) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
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
    Ok(page.items().first().cloned())
}

/// The latest snapshot of `shard_id` taken after a flush numbered at most `at_most`.
pub async fn latest(
    (client, objects): (&Client, &Objects),
    tables: &Tables,
    shard_id: &str,
    at_most: u64,
) -> Result<Option<Snapshot>, StoreError> {
    let Some(header) = latest_header(client, tables, shard_id, at_most).await? else { return Ok(None) };
    let format = header.get("format").and_then(|v| v.as_n().ok()).map(String::as_str);
    let object = header.get("object").and_then(|v| v.as_s().ok());
    let (Some(FORMAT), Some(key)) = (format, object) else {
        return Err(StoreError::Corrupt(format!(
            "snapshot format {} of {shard_id} is not this tally's {FORMAT} (README: Upgrading)",
            format.unwrap_or("3")
        )));
    };
    let fetched = objects
        .client
        .get_object()
        .bucket(&objects.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| StoreError::Other(format!("snapshot {key}: {e:?}")))?;
    let bytes = fetched.body.collect().await.map_err(|e| StoreError::Other(format!("snapshot {key}: {e}")))?;
    let payload = lz4_flex::decompress_size_prepended(&bytes.into_bytes())
        .map_err(|e| StoreError::Corrupt(format!("snapshot {key}: {e}")))?;
    postcard::from_bytes(&payload).map(Some).map_err(|e| StoreError::Corrupt(format!("snapshot {key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_borrowed_snapshot_decodes_as_a_snapshot() {
        let sightings =
            HashMap::from([(("a.com".to_owned(), 7u64), (5i64, Sightings { hours: vec![(0, 1, 2)], exits: vec![] }))]);
        let unfolded = HashMap::from([(
            ("a.com".to_owned(), 0u16, 20_000i64),
            Unfolded { oldest_s: 1, newest_s: 2, deltas: 3, bytes: 4 },
        )]);
        let of = SnapshotOf {
            flush_seq: 9,
            end_sequence: "49",
            sessions: vec![],
            sightings: sightings.iter().collect(),
            unfolded: unfolded.iter().collect(),
        };
        let bytes = encode(&of).expect("encodes");
        let payload = lz4_flex::decompress_size_prepended(&bytes).expect("decompresses");
        let decoded: Snapshot = postcard::from_bytes(&payload).expect("decodes");
        assert_eq!(decoded.flush_seq, 9);
        assert_eq!(decoded.end_sequence, "49");
        assert_eq!(decoded.sightings, sightings.into_iter().collect::<Vec<_>>());
        assert_eq!(decoded.unfolded, unfolded.into_iter().collect::<Vec<_>>());
    }
}
