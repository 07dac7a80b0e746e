//! The DynamoDB aggregate store: item keys by writer lineage (`items`), rollup rows as items
//! (`rows`), the write-ahead flush log (`flush_log`), idempotent application of a flush as
//! immutable deltas (`apply`), folding deltas into one item per slot and day (`folds`), reading
//! them back (`read`), and the shard workers' state (`snapshots`). See ARCHITECTURE.md,
//! "DynamoDB key design" and "Exactly once on Kinesis and DynamoDB".

pub mod apply;
pub mod error;
pub mod flush_log;
pub mod folds;
pub mod items;
pub mod read;
pub mod rows;
pub mod snapshots;
pub mod tables;

pub use error::StoreError;
pub use flush_log::FlushRecord;
pub use tables::Tables;
