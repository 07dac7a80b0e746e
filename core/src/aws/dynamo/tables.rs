//! The store's tables and their creation for local use (on-demand billing, string keys).

use super::error::{StoreError, classify};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};

/// The table names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// Aggregates: cells, visits, drop counts (`pk`, `sk`).
    pub aggregates: String,
    /// The write-ahead flush log (`pk` = shard id, `sk` = flush number and chunk).
    pub flushes: String,
    /// The shard leases (`shard_id`).
    pub leases: String,
}

impl Tables {
    /// The tables of an application in a region: `{app}-aggregates` (a Global Table, shared
    /// by every region), `{app}-{region}-flushes` and `{app}-{region}-leases` (regional: each
    /// region's consumers have their own stream, leases and flush log).
    pub fn named(app: &str, region: &str) -> Tables {
        Tables {
            aggregates: format!("{app}-aggregates"),
            flushes: format!("{app}-{region}-flushes"),
            leases: format!("{app}-{region}-leases"),
        }
    }

    /// Creates the aggregate and flush tables unless they exist (the lease table is the lease
    /// module's).
    pub async fn create_if_missing(&self, client: &Client) -> Result<(), StoreError> {
        for table in [&self.aggregates, &self.flushes] {
            create(client, table).await?;
        }
        Ok(())
    }
}

async fn create(client: &Client, table: &str) -> Result<(), StoreError> {
    let other = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Other(e.to_string());
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(other);
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(other)
    };
    let result = client
        .create_table()
        .table_name(table)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) if error.code() == Some("ResourceInUseException") => Ok(()),
        Err(error) => Err(classify(error)),
    }
}
