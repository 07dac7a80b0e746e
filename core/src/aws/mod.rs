//! The AWS backend: `tally ingest` (`ingest.rs`) consumes Kinesis (`kinesis/`) under leases
//! (`lease/`) with shard workers (`consumer/`) that write DynamoDB (`dynamo/`) exactly once;
//! `tally query` (`query_serve.rs`) serves the query API from DynamoDB through `stats.rs`, its
//! side of the read trait; `tally import --kinesis-stream` (`import.rs`) puts imported events on
//! the stream. `clients.rs` builds the SDK clients.

pub mod clients;
pub mod consumer;
pub mod dynamo;
pub mod import;
pub mod import_ledger;
pub mod ingest;
pub mod kinesis;
pub mod lease;
pub mod query_serve;
pub mod segments;
pub mod stats;
