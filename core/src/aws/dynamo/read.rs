//! Reading aggregates back: the cells of a site over a range of local hours, merged over the
//! site's writer lineages (regions × sub-partitions).

use super::error::{StoreError, classify};
use super::items::counters_of;
use crate::query::LoadedCells;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::ops::Range;
use tally_model::rollup::{Bucket, CellKey, Counters};

/// Partition queries in flight at once.
const CONCURRENCY: usize = 16;

/// Loads every cell of `site` in `buckets` from the lineages `(region, sub)`, and with
/// `visitors` the hourly visitor sketches too: one Query per (local day, lineage, kind), up to
/// 16 at a time.
pub async fn load_cells(
    client: &Client,
    table: &str,
    site: &str,
    buckets: Range<Bucket>,
    lineages: &[(String, u16)],
    visitors: bool,
) -> Result<LoadedCells, StoreError> {
    let mut loaded = LoadedCells::default();
    if buckets.is_empty() {
        return Ok(loaded);
    }
    let mut partitions = Vec::new();
    for day in buckets.start.div_euclid(24)..=(buckets.end - 1).div_euclid(24) {
        let (low, high) = (buckets.start.max(day * 24), (buckets.end - 1).min(day * 24 + 23));
        for (region, sub) in lineages {
            partitions.push((format!("c|{site}|{day}|{region}|{sub}"), low, high));
            if visitors {
                partitions.push((format!("v|{site}|{day}|{region}|{sub}"), low, high));
            }
        }
    }
    let mut running = tokio::task::JoinSet::new();
    let mut pending = partitions.into_iter();
    loop {
        while running.len() < CONCURRENCY {
            let Some((pk, low, high)) = pending.next() else { break };
            let (client, table) = (client.clone(), table.to_owned());
            running.spawn(async move {
                let items = query_partition(&client, &table, &pk, low, high).await;
                (pk, items)
            });
        }
        let Some(joined) = running.join_next().await else { return Ok(loaded) };
        let (pk, items) = joined.map_err(|e| StoreError::Other(e.to_string()))?;
        for item in items? {
            if pk.starts_with("v|") {
                add_sketch(&item, &mut loaded)?;
            } else {
                let (bucket, id, key, counters) = decode(&item)?;
                let cell = loaded.cells.entry((bucket, id)).or_insert_with(|| (key, Counters::default()));
                cell.1.add(&counters);
            }
        }
    }
}

/// Drop counts of `site` ("" for drops that named no site) by reason, summed over `regions`.
pub async fn load_drops(
    client: &Client,
    table: &str,
    site: &str,
    regions: &[&str],
) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
    let mut counts = std::collections::BTreeMap::new();
    for region in regions {
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(format!("d|{site}|{region}|0")))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            for item in page.items() {
                let reason = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let n = item.get("dropped").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok());
                *counts.entry(reason).or_insert(0) += n.unwrap_or(0);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
    }
    Ok(counts)
}

fn add_sketch(item: &HashMap<String, AttributeValue>, loaded: &mut LoadedCells) -> Result<(), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("sketch item: {what}"));
    let sk = item.get("sk").and_then(|v| v.as_s().ok()).ok_or_else(|| corrupt("no sk"))?;
    let bucket: Bucket = sk.parse().map_err(|_| corrupt("bucket"))?;
    let bytes = item.get("hll").and_then(|v| v.as_b().ok()).ok_or_else(|| corrupt("no sketch"))?;
    let sketch = datasketches::hll::HllSketch::deserialize(bytes.as_ref()).map_err(|e| corrupt(&e.to_string()))?;
    let union = match loaded.visitors.entry(bucket) {
        std::collections::btree_map::Entry::Occupied(union) => union.into_mut(),
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(datasketches::hll::HllUnion::new(sketch.lg_config_k()).map_err(|e| corrupt(&e.to_string()))?)
        }
    };
    union.update(&sketch);
    Ok(())
}

/// Every item of partition `pk` whose sort key starts with a bucket in `low..=high`.
async fn query_partition(
    client: &Client,
    table: &str,
    pk: &str,
    low: Bucket,
    high: Bucket,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":low", AttributeValue::S(format!("{low:012}")))
            .expression_attribute_values(":high", AttributeValue::S(format!("{high:012}|~")))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(classify)?;
        items.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

fn decode(item: &HashMap<String, AttributeValue>) -> Result<(Bucket, u64, CellKey, Counters), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("cell item: {what}"));
    let sk = item.get("sk").and_then(|v| v.as_s().ok()).ok_or_else(|| corrupt("no sk"))?;
    let (bucket, id) = sk.split_once('|').ok_or_else(|| corrupt("sk"))?;
    let bucket = bucket.parse().map_err(|_| corrupt("bucket"))?;
    let id = u64::from_str_radix(id, 16).map_err(|_| corrupt("cell id"))?;
    let key = item.get("k").and_then(|v| v.as_b().ok()).ok_or_else(|| corrupt("no key"))?;
    let key = super::legacy::decode_cell_key(key.as_ref()).ok_or_else(|| corrupt("key"))?;
    Ok((bucket, id, key, counters_of(item)))
}
