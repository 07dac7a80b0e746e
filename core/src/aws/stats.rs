//! The read seam's DynamoDB side: answers from what `tally ingest` writes, exactly as `tally
//! serve` answers — the queries the planner gives to the rollups from the rollup items in
//! DynamoDB, the others (filters, several dimensions, visits by their events, `has_done`) from
//! the segment objects in S3 (`aws/segments/`), when `tally query` is given their bucket (else
//! a clear refusal). Cached answers are keyed by a 5-second window, so an answer can be up to
//! 5 s stale.

use crate::aws::dynamo::read::{load_drops, load_slot};
use crate::aws::dynamo::rows::MergedRows;
use crate::aws::segments::read::SegmentReader;
use crate::embedded::store::RollupRead;
use crate::query::limits::WorkBudget;
use crate::query::limits::{MAX_RANGE_DAYS_DYNAMODB, range_refusal};
use crate::query::request::Grouping;
use crate::query::source::{Freshness, Pending, StatsSource};
use crate::query::{Query, QueryError, Tier, execute_rollups, execute_segments, plan};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tally_model::breakdown::{Grain, Slot, Tallies};

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
    /// The reader of segment objects (tier 2), if `tally query` has their bucket.
    pub segments: Option<SegmentReader>,
}

/// One slot's rows, loaded for a query's days.
struct LoadedSlot(MergedRows);

impl RollupRead for LoadedSlot {
    fn props_overflowed(&self, _site: &str, _name: &str, _first_day: i64, _last_day: i64) -> anyhow::Result<bool> {
        Ok(false)
    }

    fn rollup_rows(
        &self,
        _site: &str,
        grain: Grain,
        slot: Slot,
        first: i64,
        last: i64,
        visit: &mut dyn FnMut(i64, &str, &Tallies),
    ) -> anyhow::Result<()> {
        let (slot, grain) = (slot.code(), grain.code());
        for ((s, g, at, value), tallies) in &self.0.0 {
            if *s == slot && *g == grain && (first..=last).contains(at) {
                visit(*at, value, tallies);
            }
        }
        Ok(())
    }
}

/// The slot a rollup query reads (as `execute_rollups` picks it).
fn slot_of(query: &Query) -> Slot {
    let slot = query.groupings.iter().find_map(|g| match g {
        Grouping::Dim(d) | Grouping::Name(d) => Some(Slot::Of(*d)),
        Grouping::Prop(_) => Some(Slot::Props),
        _ => None,
    });
    slot.unwrap_or(Slot::Total)
}

impl StatsSource for DynamoStats {
    fn refuse(&self, query: &Query) -> Option<String> {
        if let Some(refusal) = range_refusal(query, MAX_RANGE_DAYS_DYNAMODB) {
            return Some(refusal);
        }
        (plan(query) != Tier::Rollups && self.segments.is_none()).then(|| {
            "this tally query answers unfiltered queries with at most one dimension (or prop) and one time \
             grouping, by hour only for the totals and exit pages; filters and other groupings need the segments: \
             start it with --segment-bucket (the bucket tally ingest writes them to)"
                .to_owned()
        })
    }

    fn freshness(&self, _query: &Query) -> anyhow::Result<Freshness> {
        let window = jiff::Timestamp::now().as_second().unsigned_abs() / CACHE_WINDOW_S;
        Ok(Freshness { version: window, until_ms: None, offset: None })
    }

    fn answer(&self, query: Query, budget: WorkBudget) -> Pending<'_, (Tier, Vec<crate::query::exec::Row>)> {
        Box::pin(async move {
            if plan(&query) == Tier::Segments {
                let reader = self.segments.as_ref().ok_or_else(|| anyhow::anyhow!("no segment bucket"))?;
                let segments = reader.segments_for(&query.site, query.buckets.clone()).await?;
                budget.check_time()?;
                let rows = tokio::task::spawn_blocking(move || execute_segments(&segments, &query, &budget)).await??;
                return Ok((Tier::Segments, rows));
            }
            let days = (query.buckets.start.div_euclid(24), (query.buckets.end - 1).div_euclid(24));
            let slot = slot_of(&query).code();
            let rows = load_slot(&self.client, &self.table, &query.site, &self.lineages, slot, days).await?;
            budget.check_time()?;
            Ok((Tier::Rollups, execute_rollups(&LoadedSlot(rows), &query, &budget)?))
        })
    }

    fn segments<'a>(
        &'a self,
        query: &'a Query,
    ) -> Pending<
        'a,
        Vec<(std::sync::Arc<crate::columnar::Segment>, tally_model::rollup::Bucket, tally_model::rollup::Bucket)>,
    > {
        Box::pin(async move {
            let reader = self.segments.as_ref().ok_or_else(|| {
                QueryError(
                    "funnels read the segment objects, and this tally query reads none: start it with \
                     --segment-bucket (the bucket tally ingest writes them to)"
                        .into(),
                )
            })?;
            Ok(reader.segments_for(&query.site, query.buckets.clone()).await?)
        })
    }

    /// The first local day with segment objects: every event writes segment rows, so it is the
    /// first day with data.
    fn first_day<'a>(&'a self, site: &'a str) -> Pending<'a, Option<i64>> {
        Box::pin(async move {
            match &self.segments {
                Some(reader) => Ok(reader.first_day(site).await?),
                None => Err(crate::query::QueryError(
                    "date_range `all` needs the site's first day of data, which tally query finds in the segments: \
                     start it with --segment-bucket, or give dates"
                        .to_owned(),
                )
                .into()),
            }
        })
    }

    fn drops<'a>(&'a self, site: &'a str) -> Pending<'a, BTreeMap<String, u64>> {
        Box::pin(async move {
            let regions: BTreeSet<&str> = self.lineages.iter().map(|(r, _)| r.as_str()).collect();
            let regions: Vec<&str> = regions.into_iter().collect();
            Ok(load_drops(&self.client, &self.table, site, &regions).await?)
        })
    }

    /// DynamoDB answers if the aggregate table can be described within 3 seconds.
    fn health(&self) -> Pending<'_, Value> {
        Box::pin(async move {
            let describe = self.client.describe_table().table_name(&self.table).send();
            let failing = match tokio::time::timeout(std::time::Duration::from_secs(3), describe).await {
                Ok(Ok(_)) => None,
                Ok(Err(error)) => {
                    let error = aws_sdk_dynamodb::error::DisplayErrorContext(error);
                    tracing::warn!(table = self.table, error = %error, "health: DynamoDB does not answer");
                    Some("DynamoDB does not answer (the log says why)".to_owned())
                }
                Err(_) => Some("DynamoDB did not answer within 3 s".to_owned()),
            };
            Ok(match failing {
                None => json!({ "status": "ok", "store": "dynamodb", "table": self.table }),
                Some(error) => json!({ "status": "failing", "store": "dynamodb", "table": self.table, "error": error }),
            })
        })
    }
}
