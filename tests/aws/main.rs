//! Tests of the core's AWS parts (Kinesis source, DynamoDB leases) against loopback stand-ins:
//! kinesalite (npm, in `tests/stand-ins`) and dynoxide (in this process).
#![allow(missing_docs, clippy::unwrap_used)]

mod stand_ins;

mod bed;

mod import;
mod ingest;
mod kinesis;
mod lease;
mod oracle;
mod proxy;
mod query_server;
mod reads;
mod realtime;
mod writes;
