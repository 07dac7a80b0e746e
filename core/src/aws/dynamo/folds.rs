//! Folding: adding a lineage's deltas of one local day into one item per slot group and day
//! (`items::slot_group`), so that a reader reads a day of a breakdown as one item (plus the
//! deltas written since), whatever the number of flushes.
//!
//! The lineage's writer (the shard worker) folds a day's deltas written up to `upto`, a time
//! safely in the past: every delta it or a later holder writes has a later flush time (clocks
//! may differ by less than the fold margin). Per slot group the fold item records its own `upto`, and
//! is replaced on condition that it still holds the `upto` it was read with, so two folders (a
//! paused former holder waking up) never add a delta twice. A marker item in the delta
//! partition (`~fold`) records the `upto` every group is folded to, so the next fold reads only
//! newer deltas; it is written last, and is only a starting point: each group item's own `upto`
//! decides which deltas it takes.

use super::error::{StoreError, classify, is_condition_failure};
use super::items::{SLOT_GROUPS, delta_pk, fold_pk, fold_sk, group_of_code};
use super::read::{Fold, read_deltas, read_folds};
use super::rows::{MergedRows, StoredRow, encode};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use std::collections::{BTreeMap, HashMap};
use tally_model::breakdown::Day;

/// The sort key of the fold marker in a delta partition (after every delta's).
const MARKER_SK: &str = "~fold";
/// Most parts of one slot's fold of a day: one transaction writes them all (4 MB at most).
pub const MAX_FOLD_PARTS: usize = 10;

/// What one fold did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// Deltas read.
    pub deltas: usize,
    /// Group items written.
    pub groups: usize,
}

/// Folds the deltas of (`site`, `sub`) in `region` on `day` written up to `upto` (seconds).
pub async fn fold(
    client: &Client,
    table: &str,
    (site, region, sub): (&str, &str, u16),
    day: Day,
    upto: i64,
) -> Result<Folded, StoreError> {
    let partition = delta_pk(site, region, sub, day);
    let marker = client
        .get_item()
        .table_name(table)
        .consistent_read(true)
        .key("pk", AttributeValue::S(partition.clone()))
        .key("sk", AttributeValue::S(MARKER_SK.into()))
        .send()
        .await
        .map_err(classify)?;
    let folded = marker.item().and_then(|i| i.get("upto")).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
    if folded.is_some_and(|f: i64| f >= upto) {
        return Ok(Folded::default());
    }
    let deltas = read_deltas(client, table, &partition, folded, Some(upto), true).await?;
    let mut by_group: BTreeMap<u8, Vec<(i64, StoredRow)>> = BTreeMap::new();
    for (time, rows) in &deltas {
        for row in rows {
            by_group.entry(group_of_code(row.slot)).or_default().push((*time, row.clone()));
        }
    }
    let mut done = Folded { deltas: deltas.len(), groups: 0 };
    // Every group gets an item on the day's first fold, an empty one if it has no rows: a reader
    // of a group with no item reads all of the day's deltas. A group with an item and no new
    // rows keeps it (and its older `upto`, which only makes readers read more deltas).
    for group in 0..SLOT_GROUPS {
        let rows = by_group.remove(&group).unwrap_or_default();
        let pk = fold_pk(site, region, sub, group);
        let old = read_folds(client, table, &pk, (day, day), true).await?.remove(&day);
        if old.as_ref().is_some_and(|f| f.upto >= upto || rows.is_empty()) {
            continue;
        }
        let since = old.as_ref().map(|f| f.upto);
        let mut merged = MergedRows::default();
        let old = old.unwrap_or_default();
        let had = old.upto;
        merged.add(old.rows.iter().cloned());
        merged.add(rows.into_iter().filter(|(t, _)| since.is_none_or(|s| *t > s)).map(|(_, r)| r));
        let fold = Fold { upto, parts: 0, rows: merged.into_rows() };
        write_fold(client, table, &pk, day, &fold, (had, old.parts)).await?;
        done.groups += 1;
    }
    client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(partition))
        .item("sk", AttributeValue::S(MARKER_SK.into()))
        .item("upto", AttributeValue::N(upto.to_string()))
        .send()
        .await
        .map_err(classify)?;
    Ok(done)
}

/// Replaces a day's fold of one slot group, on condition that its first part still holds `had_upto`
/// (0 parts: that there is none). One part is one conditional put; more parts are one
/// transaction, which also deletes the old parts past the new count.
async fn write_fold(
    client: &Client,
    table: &str,
    pk: &str,
    day: Day,
    fold: &Fold,
    (had_upto, had_parts): (i64, usize),
) -> Result<(), StoreError> {
    let encoded = encode(&fold.rows)?;
    let parts: Vec<&[u8]> = encoded.chunks(super::apply::PART_BYTES).collect();
    if parts.len() > MAX_FOLD_PARTS {
        return Err(StoreError::Other(format!(
            "{pk}: the fold of day {day} is {} bytes, over the {} a fold item can hold; give the site more sub-partitions",
            encoded.len(),
            MAX_FOLD_PARTS * super::apply::PART_BYTES
        )));
    }
    let item = |part: usize, bytes: &[u8]| {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
            ("sk".to_owned(), AttributeValue::S(fold_sk(day, part))),
            ("rows".to_owned(), AttributeValue::B(Blob::new(bytes))),
            ("parts".to_owned(), AttributeValue::N(parts.len().to_string())),
            ("upto".to_owned(), AttributeValue::N(fold.upto.to_string())),
        ])
    };
    let (condition, values) = if had_parts == 0 {
        ("attribute_not_exists(pk)", None)
    } else {
        ("upto = :had", Some(HashMap::from([(":had".to_owned(), AttributeValue::N(had_upto.to_string()))])))
    };
    if parts.len() <= 1 && had_parts <= 1 {
        let bytes = parts.first().copied().unwrap_or_default();
        let result = client
            .put_item()
            .table_name(table)
            .set_item(Some(item(0, bytes)))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .send()
            .await;
        return match result {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => Err(StoreError::Conflict(format!("{pk} day {day}"))),
            Err(error) => Err(classify(error)),
        };
    }
    let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Other(e.to_string());
    let mut actions = Vec::new();
    for (part, bytes) in parts.iter().enumerate() {
        let mut put = Put::builder().table_name(table).set_item(Some(item(part, bytes)));
        if part == 0 {
            put = put.condition_expression(condition).set_expression_attribute_values(values.clone());
        }
        actions.push(TransactWriteItem::builder().put(put.build().map_err(build)?).build());
    }
    for part in parts.len()..had_parts {
        let delete = Delete::builder()
            .table_name(table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(fold_sk(day, part)))
            .build()
            .map_err(build)?;
        actions.push(TransactWriteItem::builder().delete(delete).build());
    }
    match client.transact_write_items().set_transact_items(Some(actions)).send().await {
        Ok(_) => Ok(()),
        Err(error) if super::flush_log::is_cancelled_by_condition(&error) => {
            Err(StoreError::Conflict(format!("{pk} day {day}")))
        }
        Err(error) => Err(classify(error)),
    }
}
