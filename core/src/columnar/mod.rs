//! Tier 2's format, shared by both backends: a columnar, dictionary-encoded segment of segment
//! rows (`segment.rs`) and its Parquet encoding (`parquet_file.rs`). The embedded store keeps
//! segments in files beside its database (`embedded/store/segments/`); the DynamoDB store keeps
//! them as objects in S3 (`aws/segments/`).

pub mod parquet_file;
pub mod segment;

pub use segment::{COUNTERS, Column, Origin, Segment, UNKNOWN_SECOND};
