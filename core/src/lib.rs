//! Tally's core: the `tally` binary. Its folders mirror the architecture (ARCHITECTURE.md):
//! `pipeline/` is shared by both backends (flushes, visits into rollups, time buckets, salts),
//! `columnar/` is tier 2's segment format (both backends),
//! `embedded/` is `tally serve` and `tally import` on the event log and embedded store, `aws/` is
//! `tally ingest` and `tally query` on Kinesis and DynamoDB, `query/` resolves, plans and
//! executes Stats API queries behind one read trait (`query/source.rs`), and `http/` is the API.

pub mod aws;
pub mod cli;
pub mod columnar;
pub mod embedded;
pub mod http;
pub mod pipeline;
pub mod privacy;
pub mod query;
pub mod registry;
pub mod telemetry;
