//! The Kinesis consumer (`tally ingest`): a coordinator that keeps this worker's fair share of
//! shard leases, and one shard worker per held shard that reads, aggregates and flushes with
//! the exactly-once protocol of `crate::aws::dynamo`.

pub mod coordinator;
pub mod recent_ids;
pub mod shard_worker;

pub use coordinator::{ConsumerSettings, run_consumer};
