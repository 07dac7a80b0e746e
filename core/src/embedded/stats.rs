//! The read seam's embedded side: answers from the store of `tally serve`, always as of the
//! applied log offset (which keys the answer cache, so a cached answer is never stale).

use crate::embedded::log::EventLog;
use crate::embedded::store::{RollupRead, Store};
use crate::query::limits::WorkBudget;
use crate::query::limits::{MAX_RANGE_DAYS_EMBEDDED, range_refusal};
use crate::query::source::{Freshness, Pending, StatsSource, complete_until};
use crate::query::{Query, Tier, execute_rollups, execute_segments, plan};
use serde_json::{Value, json};
use std::sync::Arc;

/// The embedded store and its log.
pub struct EmbeddedStats {
    /// The aggregate store.
    pub store: Arc<Store>,
    /// The event log (for its head, in health answers).
    pub log: EventLog,
}

impl EmbeddedStats {
    /// The tier that answers `query`: the planner's, except that a prop past the rollups' cap
    /// on a day of the range goes to the segments, which hold all of it.
    fn tier(&self, query: &Query) -> anyhow::Result<Tier> {
        let tier = plan(query);
        let (first_day, last_day) = (query.buckets.start.div_euclid(24), (query.buckets.end - 1).div_euclid(24));
        Ok(match query.prop_grouping() {
            Some(name)
                if tier == Tier::Rollups && self.store.props_overflowed(&query.site, name, first_day, last_day)? =>
            {
                Tier::Segments
            }
            _ => tier,
        })
    }
}

impl EmbeddedStats {
    /// The store's progress, and up to when (ms since the epoch) the numbers include every
    /// accepted event: the arrival time of the last event applied, or, once the aggregator has
    /// applied all the log holds, the time of asking (just before the oldest request still being
    /// written to the log, if any), so an idle site's data is complete up to now.
    fn complete_until(&self) -> anyhow::Result<(crate::embedded::store::Progress, i64)> {
        // In this order: requests under way are seen before the head they will move.
        let arrived_until = self.log.arrived_until(jiff::Timestamp::now().as_millisecond());
        let head = *self.log.head().borrow();
        let progress = self.store.progress()?;
        let until_ms = if progress.offset >= head { progress.until_ms.max(arrived_until) } else { progress.until_ms };
        Ok((progress, until_ms))
    }
}

impl StatsSource for EmbeddedStats {
    fn refuse(&self, query: &Query) -> Option<String> {
        range_refusal(query, MAX_RANGE_DAYS_EMBEDDED)
    }

    fn freshness(&self, query: &Query) -> anyhow::Result<Freshness> {
        let (progress, until_ms) = self.complete_until()?;
        // The last change to the days the query reads (and the retention trims): answers over
        // closed days keep their version, so they stay cached under live traffic.
        let (first, last) = query.days_read();
        let version = self.store.answer_version(&query.site, first, last);
        Ok(Freshness { version, until_ms: Some(until_ms), offset: Some(progress.offset) })
    }

    fn answer(&self, query: Query, budget: WorkBudget) -> Pending<'_, (Tier, Vec<crate::query::exec::Row>)> {
        Box::pin(async move {
            let tier = self.tier(&query)?;
            let store = self.store.clone();
            let rows = tokio::task::spawn_blocking(move || match tier {
                Tier::Rollups => execute_rollups(store.as_ref(), &query, &budget),
                Tier::Segments => {
                    execute_segments(&store.segments_for(&query.site, query.buckets.clone())?, &query, &budget)
                }
            })
            .await??;
            Ok((tier, rows))
        })
    }

    fn segments<'a>(
        &'a self,
        query: &'a Query,
    ) -> Pending<'a, Vec<(Arc<crate::columnar::Segment>, tally_model::rollup::Bucket, tally_model::rollup::Bucket)>>
    {
        let (store, site, buckets) = (self.store.clone(), query.site.clone(), query.buckets.clone());
        Box::pin(async move { tokio::task::spawn_blocking(move || store.segments_for(&site, buckets)).await? })
    }

    fn first_day<'a>(&'a self, site: &'a str) -> Pending<'a, Option<i64>> {
        Box::pin(async move { self.store.first_day(site) })
    }

    fn drops<'a>(&'a self, site: &'a str) -> Pending<'a, std::collections::BTreeMap<String, u64>> {
        Box::pin(async move { self.store.drops(site) })
    }

    fn health(&self) -> Pending<'_, Value> {
        Box::pin(async move {
            let (store, log) = (self.store.clone(), self.log.clone());
            // Probing a failing database may wait for a commit in flight: off the async threads.
            let (store_health, log_health) =
                tokio::task::spawn_blocking(move || (store.health(), log.health())).await?;
            let head = *self.log.head().borrow();
            let progress = self.complete_until().ok();
            let state = |h: &Result<(), String>| if h.is_ok() { "ok" } else { "failing" };
            let errors: Vec<String> =
                [&log_health, &store_health].into_iter().filter_map(|h| h.clone().err()).collect();
            let mut body = json!({
                "status": if errors.is_empty() { "ok" } else { "failing" },
                "log": state(&log_health),
                "store": state(&store_health),
                "log_head": head,
            });
            if let Some((progress, until_ms)) = progress {
                body["log_offset_applied"] = json!(progress.offset);
                body["lag_entries"] = json!(head.saturating_sub(progress.offset));
                body["data_complete_until"] = json!(complete_until(until_ms));
            }
            if !errors.is_empty() {
                body["error"] = json!(errors.join("; "));
            }
            Ok(body)
        })
    }
}
