//! Tally's pure event model, shared by the edge (wasm32) and the core (native).
//!
//! No I/O, no clock, no randomness: the time, salts and ids are arguments. The flow is
//! [`wire`] (parse and check a body) → [`ingest`] (enrich into [`event`] records, or drops) →
//! [`codec`] (bytes for the log) → [`facts`] (normalise) → [`session`] (visits), whose
//! contributions feed [`breakdown`] (per-dimension rollups, tier 1), [`segment`] (the rows of the
//! columnar segments, tier 2) and [`rollup`] (full-combination cells, kept by the DynamoDB store
//! until its own rollups replace them).

pub mod agent;
pub mod breakdown;
pub mod channel;
pub mod codec;
pub mod dimension;
pub mod event;
pub mod facts;
pub mod hostnames;
pub mod ingest;
pub mod limits;
pub mod money;
pub mod page;
pub mod props;
pub mod record;
pub mod reject;
pub mod rollup;
pub mod segment;
pub mod session;
pub mod site;
pub mod source;
pub mod tracker;
pub mod visitor;
pub mod wire;
