//! The embedded backend: `tally serve` (`serve.rs`) runs ingest, the event log (`log.rs`), the
//! aggregator (`aggregate.rs`), the store (`store/`) and the query API in one process;
//! `tally import` (`import/`) feeds the same log; `stats.rs` is the store's side of the read
//! trait; `database.rs` reopens a redb file after an I/O fault; `retention.rs` trims the log
//! and rotates the salts in the background; `recent.rs` holds the last 30 minutes of live events
//! for realtime answers; `demo/` is `tally serve --demo`.

pub mod aggregate;
pub mod database;
pub mod demo;
pub mod import;
pub mod log;
pub mod recent;
pub mod retention;
pub mod serve;
pub mod state;
pub mod stats;
pub mod store;
