//! The query API's engine: Plausible Stats API v2 requests, resolved against a site, executed
//! over the store's cells.

pub mod exec;
pub mod request;

pub use exec::{CellSource, LoadedCells, execute};
pub use request::{Query, QueryError, QueryRequest};
