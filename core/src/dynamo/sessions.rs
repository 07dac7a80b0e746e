//! Loading open visits from the aggregate table, many keys per request (BatchGetItem).

use super::error::{StoreError, classify};
use super::items::Update;
use super::tables::Tables;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use std::collections::HashMap;
use std::time::Duration;
use tally_model::session::Session;

/// Keys per BatchGetItem request (the DynamoDB limit).
const BATCH: usize = 100;

/// The stored open visits of `keys` (site, visitor id) in `region`; absent keys have none.
pub async fn load(
    client: &Client,
    tables: &Tables,
    region: &str,
    keys: &[(String, u64)],
) -> Result<HashMap<(String, u64), Session>, StoreError> {
    let mut by_pk = HashMap::new();
    for (site, visitor) in keys {
        let (pk, _) = Update::Session { site: site.clone(), visitor: *visitor, session: None }.key(region);
        by_pk.insert(pk, (site.clone(), *visitor));
    }
    let pks: Vec<&String> = by_pk.keys().collect();
    let mut found = HashMap::new();
    for chunk in pks.chunks(BATCH) {
        let mut wanted = KeysAndAttributes::builder().consistent_read(true);
        for pk in chunk {
            let key = HashMap::from([
                ("pk".to_owned(), AttributeValue::S((*pk).clone())),
                ("sk".to_owned(), AttributeValue::S("-".into())),
            ]);
            wanted = wanted.keys(key);
        }
        let mut request = Some(HashMap::from([(
            tables.aggregates.clone(),
            wanted.build().map_err(|e| StoreError::Other(e.to_string()))?,
        )]));
        let mut attempt = 0u32;
        while let Some(items) = request.take().filter(|r| !r.is_empty()) {
            let output = client.batch_get_item().set_request_items(Some(items)).send().await.map_err(classify)?;
            for item in output.responses().and_then(|r| r.get(&tables.aggregates)).into_iter().flatten() {
                let pk = item.get("pk").and_then(|v| v.as_s().ok());
                let state = item.get("v").and_then(|v| v.as_b().ok()).filter(|b| !b.as_ref().is_empty());
                if let (Some(key), Some(state)) = (pk.and_then(|pk| by_pk.get(pk)), state) {
                    let session =
                        postcard::from_bytes(state.as_ref()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    found.insert(key.clone(), session);
                }
            }
            request = output.unprocessed_keys().cloned();
            if request.as_ref().is_some_and(|r| !r.is_empty()) {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
            }
        }
    }
    Ok(found)
}
