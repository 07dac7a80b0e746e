//! The per-process bounds on answering queries: how many run at once, how long one waits for a
//! turn (then a 503 with `Retry-After`) and how long it may run (then a 422). A query that runs
//! out of time keeps its turn until its work has stopped, so stopped queries cannot pile up.

use super::error::ApiError;
use crate::query::exec::Row;
use crate::query::limits::QUEUE_WAIT_SECONDS;
use crate::query::{Query, StatsSource, Tier};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The settings of a server's query bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBudget {
    /// Queries answered at once.
    pub concurrent: usize,
    /// How long one may run.
    pub timeout: Duration,
    /// The answer cache's budget, in bytes of answer JSON.
    pub cache_bytes: u64,
    /// Requests per hour per API key (0: no limit).
    pub rate_per_hour: u32,
}

/// Turns for queries.
pub struct QueryGate {
    turns: Arc<Semaphore>,
    timeout: Duration,
}

impl QueryGate {
    /// A gate for `budget`.
    pub fn new(budget: &QueryBudget) -> QueryGate {
        QueryGate { turns: Arc::new(Semaphore::new(budget.concurrent.max(1))), timeout: budget.timeout }
    }

    /// Answers `query` from `stats` in a turn, within the time budget.
    pub async fn answer(&self, stats: &Arc<dyn StatsSource>, query: Query) -> Result<(Tier, Vec<Row>), ApiError> {
        let wait = Duration::from_secs(QUEUE_WAIT_SECONDS);
        let turn = match tokio::time::timeout(wait, self.turns.clone().acquire_owned()).await {
            Ok(Ok(turn)) => turn,
            _ => return Err(ApiError::Busy { retry_after_s: QUEUE_WAIT_SECONDS }),
        };
        let stats = stats.clone();
        let work = tokio::spawn(async move {
            let _turn = turn;
            stats.answer(query).await
        });
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(answer)) => answer.map_err(ApiError::from_query),
            Ok(Err(joined)) => Err(ApiError::Internal(anyhow::anyhow!("a query task failed: {joined}"))),
            Err(_) => Err(ApiError::OverBudget(format!(
                "the query ran longer than its {} s budget; narrow its date range or add a filter",
                self.timeout.as_secs()
            ))),
        }
    }
}
