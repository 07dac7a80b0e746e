//! End-to-end tests of the `tally` binary: each test runs the real CLI and `tally serve` on a
//! fresh data directory and talks to it over HTTP, as a tracker and a stats client would.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used)]

mod assets;
mod auth;
mod bad_input;
mod cache;
mod cli_while_serving;
mod conformance;
mod crash_recovery;
mod date_ranges;
mod demo;
mod disk_full;
mod engagement;
mod export;
mod freshness;
mod funnels;
mod goals;
mod harness;
mod http_limits;
mod import;
mod include;
mod ingest_and_query;
mod ingest_limits;
mod oracle;
mod privacy;
mod props;
mod query_limits;
mod realtime;
mod retention;
mod revenue;
mod trusted_proxies;
mod vectors;
mod visit_semantics;
