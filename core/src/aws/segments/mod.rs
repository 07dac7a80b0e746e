//! Tier 2 on AWS: the columnar segments (`crate::columnar`) as Parquet objects in an S3 bucket,
//! so that `tally query` answers filtered and multi-dimension questions as `tally serve` does.
//!
//! A flush writes one object per lineage (site, sub-partition) and local day it touched, named
//! after the flush (`keys.rs`): the flush is logged before it is applied and rebuilt identically
//! by whoever recovers it, so writing an object again writes the same bytes, and the objects of
//! a logged flush are never half the story for long (the next holder completes them). The
//! lineage's writer folds a day's objects into one (`fold.rs`) when it folds the day's rollup
//! deltas; readers take per lineage the newest fold and the objects written after it
//! (`read.rs`), so a row is read exactly once whatever the folds do meanwhile.

pub mod fold;
pub mod keys;
pub mod read;
pub mod write;

use crate::aws::dynamo::StoreError;

/// Where segment objects go.
#[derive(Debug, Clone)]
pub struct SegmentObjects {
    /// The S3 client.
    pub client: aws_sdk_s3::Client,
    /// The bucket (one for all regions; each object's key names its writer's region).
    pub bucket: String,
}

/// An S3 error as a store error (S3 retries throttles itself: the SDK's standard retries).
fn s3_error<E: std::error::Error + Send + Sync + 'static>(
    what: &str,
    error: aws_sdk_s3::error::SdkError<E>,
) -> StoreError {
    StoreError::Other(format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(error)))
}

/// Creates the segment bucket unless it exists (local use; in AWS it comes from infra/). It has
/// no expiry rule: its objects are the history.
pub async fn ensure_bucket(objects: &SegmentObjects) -> Result<(), StoreError> {
    if objects.client.head_bucket().bucket(&objects.bucket).send().await.is_ok() {
        return Ok(());
    }
    match objects.client.create_bucket().bucket(&objects.bucket).send().await {
        Ok(_) => Ok(()),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_bucket_already_owned_by_you()) => Ok(()),
        Err(error) => Err(s3_error(&format!("creating segment bucket {}", objects.bucket), error)),
    }
}

/// The keys under `prefix`, every page of them.
async fn list_keys(objects: &SegmentObjects, prefix: &str) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    let mut pages = objects.client.list_objects_v2().bucket(&objects.bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| s3_error(&format!("listing {prefix}"), e))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    Ok(keys)
}

/// The body of object `key`, or `None` if it is gone (folded away since it was listed).
async fn get_object(objects: &SegmentObjects, key: &str) -> Result<Option<bytes::Bytes>, StoreError> {
    let response = objects.client.get_object().bucket(&objects.bucket).key(key).send().await;
    let body = match response {
        Ok(out) => out.body,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
        Err(error) => return Err(s3_error(&format!("reading {key}"), error)),
    };
    let bytes = body.collect().await.map_err(|e| StoreError::Other(format!("reading {key}: {e}")))?;
    Ok(Some(bytes.into_bytes()))
}
