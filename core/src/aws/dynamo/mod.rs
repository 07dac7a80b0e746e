//! The DynamoDB aggregate store: item keys by writer lineage (`items`), the write-ahead flush
//! log (`flush_log`), and idempotent application of a flush with per-item watermarks (`apply`).
//! See ARCHITECTURE.md, "DynamoDB key design" and "Exactly once on Kinesis and DynamoDB".

pub mod apply;
pub mod chunks;
pub mod error;
pub mod flush_log;
pub mod items;
pub mod legacy;
pub mod read;
pub mod snapshots;
pub mod tables;

pub use error::StoreError;
pub use flush_log::FlushRecord;
pub use items::Update;
pub use tables::Tables;
