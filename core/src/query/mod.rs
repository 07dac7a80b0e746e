//! The query API's engine: Plausible Stats API v2 requests, resolved against a site
//! (`request.rs`), given a tier by the planner (`plan.rs`), and executed over the per-dimension
//! rollups (`rollup_exec.rs`, on both stores) or the columnar segments (`segment_exec.rs`,
//! embedded only), and finished alike (`exec.rs`), within the bounds of `limits.rs`.

pub mod comparison;
pub mod date_range;
pub mod exec;
pub mod exit_rate;
pub mod filter;
pub mod funnel;
pub mod goals;
pub mod limits;
pub mod percentage;
pub mod place_names;
pub mod plan;
pub mod prop_names;
pub mod request;
pub mod rollup_exec;
pub mod saved_segments;
pub mod segment_exec;
pub mod source;
pub mod suggest;

pub use plan::{Tier, plan};
pub use request::{Query, QueryError, QueryRequest};
pub use rollup_exec::execute_rollups;
pub use segment_exec::execute_segments;
pub use source::{Freshness, StatsSource};
