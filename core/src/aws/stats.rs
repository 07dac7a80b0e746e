//! The read seam's DynamoDB side: answers from the cells that `tally ingest` writes, for what
//! cells hold (no exit pages, props or revenue yet; `visitors` by time only, unfiltered).
//! Cached answers are keyed by a 5-second window, so an answer can be up to 5 s stale.

use crate::aws::dynamo::read::{load_cells, load_drops};
use crate::query::request::{Grouping, Metric};
use crate::query::source::{Freshness, Pending, StatsSource};
use crate::query::{Query, Tier, execute};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// How long a cached DynamoDB answer may be served, in seconds.
const CACHE_WINDOW_S: u64 = 5;

/// What reading DynamoDB aggregates needs.
pub struct DynamoStats {
    /// The client.
    pub client: aws_sdk_dynamodb::Client,
    /// The aggregate table.
    pub table: String,
    /// The writer lineages to merge: every (region, sub-partition).
    pub lineages: Vec<(String, u16)>,
}

impl StatsSource for DynamoStats {
    fn refuse(&self, query: &Query) -> Option<String> {
        if let Some(d) = query.exit_grouping() {
            return Some(format!("the DynamoDB store does not keep `{}` yet", d.name()));
        }
        if query.reads_props() {
            return Some("the DynamoDB store does not keep custom props yet".into());
        }
        if let Some(m) = query.metrics.iter().find(|m| m.is_revenue()) {
            return Some(format!("the DynamoDB store does not keep revenue yet (`{}`)", m.name()));
        }
        let by_time = query.groupings.iter().all(|g| matches!(g, Grouping::Hour | Grouping::Day));
        if query.metrics.contains(&Metric::Visitors) && !(by_time && query.filters.is_empty()) {
            return Some("from the DynamoDB store, `visitors` can be grouped by time only, without filters".into());
        }
        None
    }

    fn freshness(&self) -> anyhow::Result<Freshness> {
        let window = jiff::Timestamp::now().as_second().unsigned_abs() / CACHE_WINDOW_S;
        Ok(Freshness { version: window, until_ms: None, offset: None })
    }

    fn answer(&self, query: Query) -> Pending<'_, (Tier, Vec<crate::query::exec::Row>)> {
        Box::pin(async move {
            let visitors = query.metrics.contains(&Metric::Visitors);
            let loaded =
                load_cells(&self.client, &self.table, &query.site, query.buckets.clone(), &self.lineages, visitors)
                    .await?;
            Ok((Tier::Cells, execute(&loaded, &query)?))
        })
    }

    fn drops<'a>(&'a self, site: &'a str) -> Pending<'a, BTreeMap<String, u64>> {
        Box::pin(async move {
            let regions: BTreeSet<&str> = self.lineages.iter().map(|(r, _)| r.as_str()).collect();
            let regions: Vec<&str> = regions.into_iter().collect();
            Ok(load_drops(&self.client, &self.table, site, &regions).await?)
        })
    }

    fn health(&self) -> anyhow::Result<Value> {
        Ok(json!({ "status": "ok", "store": "dynamodb" }))
    }
}
