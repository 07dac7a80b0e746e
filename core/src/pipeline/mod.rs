//! The pipeline both backends share: a flush built from log entries or stream records
//! (`flush.rs`) with the normalised user agents and pages it remembers (`fact_cache.rs`), the
//! local-hour buckets events fall into (`timebucket.rs`), the daily visitor-id salts
//! (`salts.rs`), and the lines of `tally import` checked into log entries for either backend's
//! sink (`import_lines.rs`).

pub mod fact_cache;
pub mod flush;
pub mod import_lines;
pub mod salts;
pub mod timebucket;
