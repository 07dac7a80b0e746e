//! Tally's event model for JavaScript hosts (Lambda@Edge, Node.js), built with wasm-pack.
//!
//! A thin adapter over `tally-model`: JavaScript values in, the model's verdict out. It holds no
//! clock, no randomness and no I/O; the host passes the arrival time, the salts and a random
//! first event id. The exported names and their TypeScript types are listed in `types.rs`.

mod context;
mod entries;
mod info;
mod ingest;
mod js;
mod sites;
mod types;
mod visitor;

pub use entries::unpack_record;
pub use info::format_info;
pub use ingest::ingest;
pub use visitor::visitor_id;
