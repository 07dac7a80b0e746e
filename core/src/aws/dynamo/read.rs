//! Reading rollups back: one slot's rows of a site over a range of local days, merged over the
//! site's writer lineages (regions × sub-partitions): per lineage the fold items of the slot's
//! group over the range (one Query), and per day the deltas written after that day's fold (one
//! Query each).

use super::error::{StoreError, classify};
use super::items::{delta_flush, delta_pk, deltas_after, fold_day, fold_day_of, fold_pk, group_of_code};
use super::rows::{MergedRows, StoredRow, decode};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap};
use tally_model::breakdown::Day;

/// Partition queries in flight at once.
const CONCURRENCY: usize = 16;

type Item = HashMap<String, AttributeValue>;

/// One stored fold of a slot and day: the flush time it holds deltas up to, its part count, and
/// its rows.
#[derive(Debug, Clone, Default)]
pub struct Fold {
    /// Deltas written at or before this time (seconds) are in it.
    pub upto: i64,
    /// How many part items it has.
    pub parts: usize,
    /// Its rows.
    pub rows: Vec<StoredRow>,
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// Every item of partition `pk` with a sort key in `low..=high`, all pages.
pub async fn query_range(
    client: &Client,
    table: &str,
    pk: &str,
    (low, high): (&str, &str),
    consistent: bool,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .consistent_read(consistent)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":low", AttributeValue::S(low.to_owned()))
            .expression_attribute_values(":high", AttributeValue::S(high.to_owned()))
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

/// The deltas of partition `pk` written after `after` (all: `None`) and at or before `upto`
/// (no end: `None`), as (flush time, rows), in time order. A delta whose parts are not all
/// there yet is left out.
pub async fn read_deltas(
    client: &Client,
    table: &str,
    pk: &str,
    after: Option<i64>,
    upto: Option<i64>,
    consistent: bool,
) -> Result<Vec<(i64, Vec<StoredRow>)>, StoreError> {
    let low = after.map_or_else(|| "0".to_owned(), deltas_after);
    let high = upto.map_or_else(|| "9~".to_owned(), deltas_after);
    let items = query_range(client, table, pk, (&low, &high), consistent).await?;
    let mut flushes: BTreeMap<String, (i64, usize, Vec<&Item>)> = BTreeMap::new();
    for item in &items {
        let sk = text(item, "sk").unwrap_or_default();
        let Some((time, flush)) = delta_flush(sk) else { continue };
        let parts = usize::try_from(number(item, "parts").unwrap_or(1)).unwrap_or(1);
        flushes.entry(flush.to_owned()).or_insert((time, parts, Vec::new())).2.push(item);
    }
    let mut deltas = Vec::new();
    for (_, (time, parts, items)) in flushes {
        if items.len() != parts {
            continue;
        }
        deltas.push((time, decode(&joined(&items)?)?));
    }
    Ok(deltas)
}

/// The bytes of an item's parts (in sort-key order), joined.
fn joined(items: &[&Item]) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    for item in items {
        let part = item.get("rows").and_then(|v| v.as_b().ok());
        bytes.extend_from_slice(part.ok_or_else(|| StoreError::Corrupt("rollup item without rows".into()))?.as_ref());
    }
    Ok(bytes)
}

/// The folds of partition `pk` (one slot group of one lineage) for the days `first..=last`. A day
/// whose parts disagree (a fold seen half way) is left out: its deltas answer instead.
pub async fn read_folds(
    client: &Client,
    table: &str,
    pk: &str,
    (first, last): (Day, Day),
    consistent: bool,
) -> Result<BTreeMap<Day, Fold>, StoreError> {
    let (low, high) = (fold_day(first), format!("{}|~", fold_day(last)));
    let items = query_range(client, table, pk, (&low, &high), consistent).await?;
    let mut days: BTreeMap<Day, Vec<&Item>> = BTreeMap::new();
    for item in &items {
        if let Some(day) = fold_day_of(text(item, "sk").unwrap_or_default()) {
            days.entry(day).or_default().push(item);
        }
    }
    let mut folds = BTreeMap::new();
    for (day, items) in days {
        let upto = number(items[0], "upto");
        let parts = number(items[0], "parts");
        let agree = items.iter().all(|i| number(i, "upto") == upto && number(i, "parts") == parts);
        let (Some(upto), Some(parts)) = (upto, parts) else { continue };
        if !agree || usize::try_from(parts) != Ok(items.len()) {
            continue;
        }
        folds.insert(day, Fold { upto, parts: items.len(), rows: decode(&joined(&items)?)? });
    }
    Ok(folds)
}

/// The rows of slot `slot` of `site` on the local days `first..=last`, merged over `lineages`
/// (region, sub-partition), with eventually consistent reads.
pub async fn load_slot(
    client: &Client,
    table: &str,
    site: &str,
    lineages: &[(String, u16)],
    slot: u8,
    (first, last): (Day, Day),
) -> Result<MergedRows, StoreError> {
    let mut merged = MergedRows::default();
    if first > last {
        return Ok(merged);
    }
    let mut folds_of = tokio::task::JoinSet::new();
    for (region, sub) in lineages {
        let (client, table, pk) = (client.clone(), table.to_owned(), fold_pk(site, region, *sub, group_of_code(slot)));
        let lineage = (region.clone(), *sub);
        folds_of.spawn(async move { (lineage, read_folds(&client, &table, &pk, (first, last), false).await) });
    }
    let mut upto: HashMap<(String, u16, Day), i64> = HashMap::new();
    while let Some(joined) = folds_of.join_next().await {
        let ((region, sub), folds) = joined.map_err(|e| StoreError::Other(e.to_string()))?;
        for (day, fold) in folds? {
            merged.add(fold.rows.into_iter().filter(|r| r.slot == slot));
            upto.insert((region.clone(), sub, day), fold.upto);
        }
    }
    let mut partitions = Vec::new();
    for (region, sub) in lineages {
        for day in first..=last {
            let after = upto.get(&(region.clone(), *sub, day)).copied();
            partitions.push((delta_pk(site, region, *sub, day), after));
        }
    }
    let mut running = tokio::task::JoinSet::new();
    let mut pending = partitions.into_iter();
    loop {
        while running.len() < CONCURRENCY {
            let Some((pk, after)) = pending.next() else { break };
            let (client, table) = (client.clone(), table.to_owned());
            running.spawn(async move { read_deltas(&client, &table, &pk, after, None, false).await });
        }
        let Some(joined) = running.join_next().await else { return Ok(merged) };
        for (_, rows) in joined.map_err(|e| StoreError::Other(e.to_string()))?? {
            merged.add(rows.into_iter().filter(|r| r.slot == slot));
        }
    }
}

/// Drop counts of `site` ("" for drops that named no site) by reason, summed over `regions`.
pub async fn load_drops(
    client: &Client,
    table: &str,
    site: &str,
    regions: &[&str],
) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut counts = BTreeMap::new();
    for region in regions {
        let pk = super::items::drop_pk(site, region);
        for item in query_range(client, table, &pk, ("!", "~"), false).await? {
            let reason = text(&item, "sk").unwrap_or_default().to_owned();
            *counts.entry(reason).or_insert(0) +=
                number(&item, "dropped").and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        }
    }
    Ok(counts)
}
