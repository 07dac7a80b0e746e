//! The per-process bounds on answering queries: how many run at once, how long one waits for a
//! turn (then a 503 with `Retry-After`) and how long it may run (then a 422). A query that runs
//! out of time keeps its turn until its work has stopped, so stopped queries cannot pile up.

use super::error::ApiError;
use crate::query::exec::Row;
use crate::query::limits::{OverBudget, QUEUE_WAIT_SECONDS, WorkBudget};
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
    /// Most groups one query may hold.
    pub max_groups: usize,
}

/// Turns for queries.
pub struct QueryGate {
    turns: Arc<Semaphore>,
    timeout: Duration,
    max_groups: usize,
}

impl QueryGate {
    /// A gate for `budget`.
    pub fn new(budget: &QueryBudget) -> QueryGate {
        QueryGate {
            turns: Arc::new(Semaphore::new(budget.concurrent.max(1))),
            timeout: budget.timeout,
            max_groups: budget.max_groups,
        }
    }

    /// Answers `query` from `stats` in a turn, within the time budget.
    pub async fn answer(&self, stats: &Arc<dyn StatsSource>, query: Query) -> Result<(Tier, Vec<Row>), ApiError> {
        let wait = Duration::from_secs(QUEUE_WAIT_SECONDS);
        let turn = match tokio::time::timeout(wait, self.turns.clone().acquire_owned()).await {
            Ok(Ok(turn)) => turn,
            _ => return Err(ApiError::Busy { retry_after_s: QUEUE_WAIT_SECONDS }),
        };
        let stats = stats.clone();
        // The executors stop at the deadline themselves; the timeout below is the backstop for
        // work between their checks.
        let budget = WorkBudget::new(self.timeout, self.max_groups);
        let work = tokio::spawn(async move {
            let _turn = turn;
            stats.answer(query, budget).await
        });
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(answer)) => answer.map_err(ApiError::from_query),
            Ok(Err(joined)) => Err(ApiError::Internal(anyhow::anyhow!("a query task failed: {joined}"))),
            Err(_) => Err(ApiError::OverBudget(OverBudget::time(self.timeout.as_secs()).to_string())),
        }
    }
}
