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
        self.run(
            stats,
            move |stats, budget| async move { crate::query::goals::answer(stats.as_ref(), query, budget).await },
        )
        .await
    }

    /// Counts a funnel's `steps` for `query`, with a turn and within the time budget.
    pub async fn funnel(
        &self,
        stats: &Arc<dyn StatsSource>,
        query: Query,
        steps: Vec<crate::query::filter::FilterExpr>,
        strict: bool,
    ) -> Result<crate::query::funnel::FunnelCounts, ApiError> {
        self.run(stats, move |stats, budget| async move {
            crate::query::funnel::count(stats.as_ref(), query, steps, strict, budget).await
        })
        .await
    }

    /// Lists the prop names of `query`'s range, with a turn and within the time budget.
    pub async fn prop_names(
        &self,
        stats: &Arc<dyn StatsSource>,
        query: Query,
    ) -> Result<(Vec<(String, u64)>, bool), ApiError> {
        self.run(stats, move |stats, budget| async move {
            crate::query::prop_names::list(stats.as_ref(), query, budget).await
        })
        .await
    }

    /// Runs `work` with a turn (503 when none comes in time) and within the time budget (422).
    async fn run<T, F, Fut>(&self, stats: &Arc<dyn StatsSource>, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn StatsSource>, WorkBudget) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    {
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
            work(stats, budget).await
        });
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(answer)) => answer.map_err(ApiError::from_query),
            Ok(Err(joined)) => Err(ApiError::Internal(anyhow::anyhow!("a query task failed: {joined}"))),
            Err(_) => Err(ApiError::OverBudget(OverBudget::time(self.timeout.as_secs()).to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryRequest;
    use crate::query::source::Pending;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    /// A store whose every answer takes `takes`, or stops at the budget's deadline when asked
    /// to honour it, as the executors do.
    struct Slow {
        takes: Duration,
        honours_deadline: bool,
    }

    impl StatsSource for Slow {
        fn refuse(&self, _: &Query) -> Option<String> {
            None
        }

        fn freshness(&self, _: &Query) -> anyhow::Result<crate::query::Freshness> {
            Ok(crate::query::Freshness { version: 0, until_ms: None, offset: None })
        }

        fn answer(&self, _: Query, budget: WorkBudget) -> Pending<'_, (Tier, Vec<Row>)> {
            Box::pin(async move {
                let done = tokio::time::Instant::now() + self.takes;
                while tokio::time::Instant::now() < done {
                    if self.honours_deadline {
                        budget.check_time()?;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok((Tier::Rollups, Vec::new()))
            })
        }

        fn first_day<'a>(&'a self, _: &'a str) -> Pending<'a, Option<i64>> {
            Box::pin(async { Ok(None) })
        }

        fn drops<'a>(&'a self, _: &'a str) -> Pending<'a, BTreeMap<String, u64>> {
            Box::pin(async { Ok(BTreeMap::new()) })
        }

        fn health(&self) -> Pending<'_, Value> {
            Box::pin(async { Ok(json!({"status": "ok"})) })
        }
    }

    fn query() -> Query {
        let request: QueryRequest =
            serde_json::from_value(json!({"site_id": "a.com", "metrics": ["visitors"], "date_range": "day"}))
                .expect("a request");
        Query::resolve(&request, &jiff::tz::TimeZone::UTC, jiff::Timestamp::now()).expect("a query")
    }

    fn gate(concurrent: usize, timeout_s: u64) -> QueryGate {
        QueryGate::new(&QueryBudget {
            concurrent,
            timeout: Duration::from_secs(timeout_s),
            cache_bytes: 0,
            rate_per_hour: 0,
            max_groups: 10,
        })
    }

    #[tokio::test]
    async fn a_query_past_its_time_is_a_422_whether_or_not_its_work_checks_the_clock() {
        let gate = gate(2, 1);
        for honours_deadline in [true, false] {
            let stats: Arc<dyn StatsSource> = Arc::new(Slow { takes: Duration::from_secs(3), honours_deadline });
            let started = std::time::Instant::now();
            let outcome = gate.answer(&stats, query()).await;
            assert!(matches!(&outcome, Err(ApiError::OverBudget(m)) if m.contains("1 s budget")), "{outcome:?}");
            assert!(started.elapsed() < Duration::from_millis(2_500), "answered at the budget, not when done");
        }
    }

    #[tokio::test]
    async fn with_every_turn_taken_a_query_waits_then_gets_a_503_with_retry_after() {
        let gate = Arc::new(gate(1, 30));
        let slow: Arc<dyn StatsSource> =
            Arc::new(Slow { takes: Duration::from_secs(QUEUE_WAIT_SECONDS + 2), honours_deadline: true });
        let holder = {
            let (gate, slow) = (gate.clone(), slow.clone());
            tokio::spawn(async move { gate.answer(&slow, query()).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let outcome = gate.answer(&slow, query()).await;
        assert!(matches!(outcome, Err(ApiError::Busy { retry_after_s: QUEUE_WAIT_SECONDS })), "{outcome:?}");
        assert!(holder.await.expect("joins").is_ok(), "the query holding the turn finishes");
    }
}
