//! Payloads larger than an item, stored as chunk items under one partition key and a common
//! sort-key prefix, and read back in order. The item that says a payload exists (a header
//! holding the chunk count) is written by the caller after the chunks.

use super::error::{StoreError, classify};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

/// Bytes of payload per chunk item (DynamoDB items hold at most 400 KB).
const CHUNK_BYTES: usize = 350_000;

/// Writes `payload` as chunk items `{prefix}{index:06}` under `pk`; returns the chunk count.
pub async fn write(
    client: &Client,
    table: &str,
    pk: &str,
    prefix: &str,
    payload: &[u8],
    ttl: &AttributeValue,
) -> Result<usize, StoreError> {
    let chunks: Vec<&[u8]> = payload.chunks(CHUNK_BYTES).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        client
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(pk.to_owned()))
            .item("sk", AttributeValue::S(format!("{prefix}{index:06}")))
            .item("data", AttributeValue::B(Blob::new(*chunk)))
            .item("ttl", ttl.clone())
            .send()
            .await
            .map_err(classify)?;
    }
    Ok(chunks.len())
}

/// Reads the payload written under `pk` and `prefix`, checking that `expected` chunks are there.
pub async fn read(
    client: &Client,
    table: &str,
    pk: &str,
    prefix: &str,
    expected: usize,
) -> Result<Vec<u8>, StoreError> {
    let mut payload = Vec::new();
    let mut found = 0;
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(classify)?;
        for item in page.items() {
            let data =
                item.get("data").and_then(|v| v.as_b().ok()).ok_or_else(|| StoreError::Corrupt("no data".into()))?;
            payload.extend_from_slice(data.as_ref());
            found += 1;
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    if found != expected {
        return Err(StoreError::Corrupt(format!("{pk} {prefix}: {found} of {expected} chunks")));
    }
    Ok(payload)
}
