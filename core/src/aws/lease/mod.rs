//! Shard leases in DynamoDB, in the manner of the Kinesis Client Library: one row per shard
//! with its owner, an epoch bumped on every take (the fencing token every conditional write
//! checks), an expiry, and the shard's checkpoint. [`balance`] decides which leases a worker
//! takes so that shards spread evenly over the live workers.

pub mod balance;
pub mod table;

pub use balance::{Plan, plan_takes, readable};
pub use table::{Lease, LeaseError, LeaseTable};
