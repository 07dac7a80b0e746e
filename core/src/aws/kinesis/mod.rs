//! The Kinesis source: shards listed and followed, one reader task per shard.

pub mod api;
pub mod shard_reader;
pub mod tail;
