//! Errors of the DynamoDB store, typed where the caller must branch.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// A DynamoDB store operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A fenced write found the lease moved on: the caller no longer holds the shard.
    #[error("lease lost")]
    LeaseLost,
    /// DynamoDB throttled the request; retry it after a backoff.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Another writer changed an item first (a fold that a former holder of the shard raced);
    /// the work is done again later.
    #[error("changed by another writer: {0}")]
    Conflict(String),
    /// A stored item cannot be decoded.
    #[error("corrupt item: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error("dynamodb: {0}")]
    Other(String),
}

/// Whether an SDK error is a failed condition.
pub fn is_condition_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

/// Maps an SDK error to a [`StoreError`] (a failed condition is [`StoreError::LeaseLost`] only
/// where the caller says so; here it is [`StoreError::Other`]).
pub fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(error: SdkError<E, R>) -> StoreError {
    let code = error.code().unwrap_or_default().to_owned();
    match code.as_str() {
        "ProvisionedThroughputExceededException" | "RequestLimitExceeded" | "ThrottlingException" => {
            StoreError::Throttled(code)
        }
        _ => StoreError::Other(format!(
            "{code}: {}",
            error.message().map_or_else(|| format!("{error:?}"), str::to_owned)
        )),
    }
}
