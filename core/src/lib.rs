//! Tally's core: the `tally` binary's ingest, embedded event log and aggregate store,
//! aggregator, query API and command line.

pub mod aggregate;
pub mod aws;
pub mod cli;
pub mod consumer;
pub mod dynamo;
pub mod flush;
pub mod http;
pub mod import;
pub mod ingest;
pub mod kinesis;
pub mod lease;
pub mod log;
pub mod query;
pub mod query_serve;
pub mod registry;
pub mod salts;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod timebucket;
