//! The lease table: one item per shard, every change a conditional write on owner and epoch.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue, ScalarAttributeType,
};
use std::collections::HashMap;

/// One shard's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The Kinesis shard id (the item's key).
    pub shard_id: String,
    /// The worker holding it, if any.
    pub owner: Option<String>,
    /// Bumped on every take; every write of the holder is conditional on it (fencing).
    pub epoch: i64,
    /// When the lease lapses unless renewed, ms since the epoch (the holder's clock).
    pub expires_ms: i64,
    /// The last sequence number whose effects are durable, or [`Lease::TRIM_HORIZON`] or
    /// [`Lease::SHARD_END`].
    pub checkpoint: String,
    /// The shard's parents (one after a split, two after a merge).
    pub parents: Vec<String>,
    /// The number of the last flush whose effects are applied and checkpointed (0: none).
    pub flush_seq: u64,
}

impl Lease {
    /// Checkpoint of a shard not read yet.
    pub const TRIM_HORIZON: &'static str = "TRIM_HORIZON";
    /// Checkpoint of a shard read to its end.
    pub const SHARD_END: &'static str = "SHARD_END";

    /// Whether the shard has been read to its end.
    pub fn is_finished(&self) -> bool {
        self.checkpoint == Self::SHARD_END
    }

    /// The owner, if the lease has not expired at `now_ms`.
    pub fn live_owner(&self, now_ms: i64) -> Option<&str> {
        self.owner.as_deref().filter(|_| self.expires_ms > now_ms)
    }
}

/// A lease operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The condition failed: another worker took the lease (or the epoch moved on). The caller
    /// no longer holds it and must stop writing for that shard.
    #[error("lease on {0} lost")]
    Lost(String),
    /// DynamoDB throttled the request; retry after a backoff.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The item is not in the table.
    #[error("no lease for shard {0}")]
    Missing(String),
    /// Anything else.
    #[error("lease table: {0}")]
    Other(String),
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    error: SdkError<E, R>,
    shard: &str,
) -> LeaseError {
    let code = error.code().unwrap_or_default().to_owned();
    match code.as_str() {
        "ConditionalCheckFailedException" => LeaseError::Lost(shard.to_owned()),
        "ProvisionedThroughputExceededException" | "RequestLimitExceeded" | "ThrottlingException" => {
            LeaseError::Throttled(code)
        }
        _ => LeaseError::Other(format!(
            "{code}: {}",
            error.message().map_or_else(|| format!("{error:?}"), str::to_owned)
        )),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The lease table of one consumer application.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    table: String,
}

impl LeaseTable {
    /// The lease table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> LeaseTable {
        LeaseTable { client, table: table.into() }
    }

    /// Creates the table (on-demand billing) unless it exists.
    pub async fn create_if_missing(&self) -> Result<(), LeaseError> {
        let key = |kind| KeySchemaElement::builder().attribute_name("shard_id").key_type(kind).build();
        let definition =
            AttributeDefinition::builder().attribute_name("shard_id").attribute_type(ScalarAttributeType::S);
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .key_schema(key(KeyType::Hash).map_err(|e| LeaseError::Other(e.to_string()))?)
            .attribute_definitions(definition.build().map_err(|e| LeaseError::Other(e.to_string()))?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("ResourceInUseException") => Ok(()),
            Err(error) => Err(classify(error, "")),
        }
    }

    /// Adds a lease for each shard that has none yet (existing leases are left as they are).
    pub async fn add_shards(&self, shards: &[(String, Vec<String>)]) -> Result<(), LeaseError> {
        for (shard_id, parents) in shards {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("shard_id", s(shard_id))
                .item("epoch", n(0))
                .item("expires_ms", n(0))
                .item("checkpoint", s(Lease::TRIM_HORIZON))
                .item("flush_seq", n(0))
                .condition_expression("attribute_not_exists(shard_id)");
            if !parents.is_empty() {
                put = put.item("parents", AttributeValue::L(parents.iter().map(|p| s(p)).collect()));
            }
            match put.send().await {
                Ok(_) => {}
                Err(error) if error.code() == Some("ConditionalCheckFailedException") => {}
                Err(error) => return Err(classify(error, shard_id)),
            }
        }
        Ok(())
    }

    /// Every lease (a consistent scan).
    pub async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        let mut leases = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(e, ""))?;
            leases.extend(page.items().iter().filter_map(from_item));
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(leases),
            }
        }
    }

    /// Takes `seen` (as last listed) for `worker` until `expires_ms`: succeeds only if the lease
    /// is unchanged since it was listed and is free, expired, or already the worker's. Bumps the
    /// epoch, so every write of a previous holder fails from now on.
    pub async fn take(&self, seen: &Lease, worker: &str, now_ms: i64, expires_ms: i64) -> Result<Lease, LeaseError> {
        let condition = "epoch = :seen AND (attribute_not_exists(#owner) OR expires_ms < :now OR #owner = :worker)";
        self.claim(seen, worker, expires_ms, condition, (":now", n(now_ms))).await
    }

    /// Steals `seen`, a live lease of another worker, as listed: succeeds only if its epoch and
    /// owner are unchanged. The previous holder is fenced off by the epoch bump.
    pub async fn steal(&self, seen: &Lease, worker: &str, expires_ms: i64) -> Result<Lease, LeaseError> {
        let owner = seen.owner.as_deref().ok_or_else(|| LeaseError::Lost(seen.shard_id.clone()))?;
        self.claim(seen, worker, expires_ms, "epoch = :seen AND #owner = :victim", (":victim", s(owner))).await
    }

    /// Makes `worker` the owner of `seen` with a bumped epoch, on `condition` (which may use
    /// `:seen`, `:worker`, `#owner` and the one extra value).
    async fn claim(
        &self,
        seen: &Lease,
        worker: &str,
        expires_ms: i64,
        condition: &str,
        (name, value): (&str, AttributeValue),
    ) -> Result<Lease, LeaseError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("shard_id", s(&seen.shard_id))
            .update_expression("SET #owner = :worker, epoch = epoch + :one, expires_ms = :expires")
            .condition_expression(condition)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":worker", s(worker))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(expires_ms))
            .expression_attribute_values(":seen", n(seen.epoch))
            .expression_attribute_values(name, value)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify(e, &seen.shard_id))?;
        output.attributes().and_then(from_item).ok_or_else(|| LeaseError::Missing(seen.shard_id.clone()))
    }

    /// Confirms that `held` is still held: the stored lease has its owner and epoch (a
    /// consistent read). Fails with [`LeaseError::Lost`] if not.
    pub async fn confirm(&self, held: &Lease) -> Result<(), LeaseError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("shard_id", s(&held.shard_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(e, &held.shard_id))?;
        let stored = found.item().and_then(from_item).ok_or_else(|| LeaseError::Missing(held.shard_id.clone()))?;
        if stored.owner == held.owner && stored.epoch == held.epoch {
            Ok(())
        } else {
            Err(LeaseError::Lost(held.shard_id.clone()))
        }
    }

    /// Extends a held lease until `expires_ms`.
    pub async fn renew(&self, held: &Lease, expires_ms: i64) -> Result<Lease, LeaseError> {
        self.fenced(held, "SET expires_ms = :value", vec![(":value", n(expires_ms))]).await?;
        Ok(Lease { expires_ms, ..held.clone() })
    }

    /// Records a checkpoint of a held lease.
    pub async fn checkpoint(&self, held: &Lease, checkpoint: &str) -> Result<Lease, LeaseError> {
        self.fenced(held, "SET checkpoint = :value", vec![(":value", s(checkpoint))]).await?;
        Ok(Lease { checkpoint: checkpoint.to_owned(), ..held.clone() })
    }

    /// Records that flush `flush_seq` is applied, with the checkpoint it reaches.
    pub async fn commit_flush(&self, held: &Lease, checkpoint: &str, flush_seq: u64) -> Result<Lease, LeaseError> {
        let seq = n(i64::try_from(flush_seq).unwrap_or(i64::MAX));
        self.fenced(held, "SET checkpoint = :value, flush_seq = :seq", vec![(":value", s(checkpoint)), (":seq", seq)])
            .await?;
        Ok(Lease { checkpoint: checkpoint.to_owned(), flush_seq, ..held.clone() })
    }

    /// Gives a held lease up, so another worker can take it at once.
    pub async fn release(&self, held: &Lease) -> Result<(), LeaseError> {
        self.fenced(held, "REMOVE #owner SET expires_ms = :value", vec![(":value", n(0))]).await
    }

    /// An update that succeeds only while the caller still holds the lease at its epoch.
    async fn fenced(&self, held: &Lease, update: &str, values: Vec<(&str, AttributeValue)>) -> Result<(), LeaseError> {
        let owner = held.owner.as_deref().ok_or_else(|| LeaseError::Lost(held.shard_id.clone()))?;
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("shard_id", s(&held.shard_id))
            .update_expression(update)
            .condition_expression("#owner = :worker AND epoch = :epoch")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":worker", s(owner))
            .expression_attribute_values(":epoch", n(held.epoch));
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        request.send().await.map_err(|e| classify(e, &held.shard_id))?;
        Ok(())
    }
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Lease> {
    let text = |key: &str| item.get(key).and_then(|v| v.as_s().ok()).cloned();
    let number = |key: &str| item.get(key).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    let parents = item.get("parents").and_then(|v| v.as_l().ok());
    Some(Lease {
        shard_id: text("shard_id")?,
        owner: text("owner"),
        epoch: number("epoch").unwrap_or(0),
        expires_ms: number("expires_ms").unwrap_or(0),
        checkpoint: text("checkpoint").unwrap_or_else(|| Lease::TRIM_HORIZON.to_owned()),
        parents: parents.map(|l| l.iter().filter_map(|p| p.as_s().ok().cloned()).collect()).unwrap_or_default(),
        flush_seq: number("flush_seq").and_then(|v| u64::try_from(v).ok()).unwrap_or(0),
    })
}
