//! Executes a [`Query`] over cells (tier 2 for now): one scan over the site's cells in the
//! range, grouped and filtered, then, if `visitors` is asked for, one scan over the visitors of
//! the matching cells. [`finish`] (metrics, order, page) is shared with the rollup tier.

use super::request::{Grouping, Metric, Query, SortKey};
use crate::store::Store;
use crate::timebucket::bucket_start;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use tally_model::rollup::{Bucket, CellKey, Counters};

/// One answer row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Metric values, in the query's order.
    pub metrics: Vec<Value>,
    /// Dimension values, in the query's order.
    pub dimensions: Vec<String>,
}

/// Where a query reads cells from: the embedded store, or cells loaded from DynamoDB.
pub trait CellSource {
    /// Calls `visit` for every cell of `site` in `buckets` (bucket, cell id, key, counters).
    fn cells(
        &self,
        site: &str,
        buckets: Range<Bucket>,
        visit: &mut dyn FnMut(Bucket, u64, &CellKey, &Counters),
    ) -> anyhow::Result<()>;
    /// The distinct visitors of each of `groups` groups, where `cell_group` maps every matching
    /// (bucket, cell id) to its group.
    fn distinct_visitors(
        &self,
        site: &str,
        buckets: Range<Bucket>,
        cell_group: &HashMap<(Bucket, u64), usize>,
        groups: usize,
    ) -> anyhow::Result<Vec<u64>>;
}

impl CellSource for Store {
    fn cells(
        &self,
        site: &str,
        buckets: Range<Bucket>,
        visit: &mut dyn FnMut(Bucket, u64, &CellKey, &Counters),
    ) -> anyhow::Result<()> {
        self.scan_cells(site, buckets, visit)
    }

    fn distinct_visitors(
        &self,
        site: &str,
        buckets: Range<Bucket>,
        cell_group: &HashMap<(Bucket, u64), usize>,
        groups: usize,
    ) -> anyhow::Result<Vec<u64>> {
        let mut sets: Vec<HashSet<u64>> = vec![HashSet::new(); groups];
        self.scan_visitors(site, buckets, |bucket, id, visitor| {
            if let Some(&at) = cell_group.get(&(bucket, id)) {
                sets[at].insert(visitor);
            }
        })?;
        Ok(sets.iter().map(|s| s.len() as u64).collect())
    }
}

/// Cells already loaded (from DynamoDB), merged over lineages, with a distinct-visitor sketch
/// per bucket (not per cell: visitors can be grouped by time only).
#[derive(Debug, Default)]
pub struct LoadedCells {
    /// (bucket, cell id) → (key, counters).
    pub cells: std::collections::BTreeMap<(Bucket, u64), (CellKey, Counters)>,
    /// Bucket → the union of its visitor sketches over lineages.
    pub visitors: std::collections::BTreeMap<Bucket, datasketches::hll::HllUnion>,
}

impl CellSource for LoadedCells {
    fn cells(
        &self,
        _site: &str,
        buckets: Range<Bucket>,
        visit: &mut dyn FnMut(Bucket, u64, &CellKey, &Counters),
    ) -> anyhow::Result<()> {
        for ((bucket, id), (key, counters)) in self.cells.range((buckets.start, 0)..(buckets.end, 0)) {
            visit(*bucket, *id, key, counters);
        }
        Ok(())
    }

    fn distinct_visitors(
        &self,
        _site: &str,
        _buckets: Range<Bucket>,
        cell_group: &HashMap<(Bucket, u64), usize>,
        groups: usize,
    ) -> anyhow::Result<Vec<u64>> {
        let mut bucket_group: HashMap<Bucket, usize> = HashMap::new();
        for (&(bucket, _), &group) in cell_group {
            if *bucket_group.entry(bucket).or_insert(group) != group {
                anyhow::bail!("visitors are stored per hour: they can be grouped by time only");
            }
        }
        let mut unions: Vec<Option<datasketches::hll::HllUnion>> = (0..groups).map(|_| None).collect();
        for (bucket, group) in bucket_group {
            let Some(sketch) = self.visitors.get(&bucket) else { continue };
            let union = unions[group]
                .get_or_insert_with(|| datasketches::hll::HllUnion::new(sketch.lg_max_k()).expect("valid lg_k"));
            union.update(&sketch.to_sketch(datasketches::hll::HllType::Hll8));
        }
        Ok(unions.iter().map(|u| u.as_ref().map_or(0, |u| u.estimate().round() as u64)).collect())
    }
}

/// Runs a query against a cell source.
pub fn execute(store: &dyn CellSource, query: &Query) -> anyhow::Result<Vec<Row>> {
    let wants_visitors = query.metrics.contains(&Metric::Visitors);
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut groups: Vec<(Vec<String>, Counters)> = Vec::new();
    let mut cell_group: HashMap<(Bucket, u64), usize> = HashMap::new();
    store.cells(&query.site, query.buckets.clone(), &mut |bucket, id, key, counters| {
        if !query.filters.iter().all(|f| f.passes(f.dimension.value(key))) {
            return;
        }
        let group_key = group_values(&query.groupings, bucket, key);
        let next = groups.len();
        let at = *index.entry(group_key.clone()).or_insert(next);
        if at == next {
            groups.push((group_key, Counters::default()));
        }
        groups[at].1.add(counters);
        if wants_visitors {
            cell_group.insert((bucket, id), at);
        }
    })?;
    let visitors = if wants_visitors && !cell_group.is_empty() {
        store.distinct_visitors(&query.site, query.buckets.clone(), &cell_group, groups.len())?
    } else {
        vec![0; groups.len()]
    };
    let groups = groups.into_iter().zip(visitors).map(|((dims, counters), v)| (dims, counters, v)).collect();
    Ok(finish(query, groups))
}

/// Turns groups (dimension values, counters, distinct visitors) into the answer's rows: metrics,
/// the query's order, its page. Without groupings there is always one row.
pub fn finish(query: &Query, mut groups: Vec<(Vec<String>, Counters, u64)>) -> Vec<Row> {
    if groups.is_empty() && query.groupings.is_empty() {
        groups.push((Vec::new(), Counters::default(), 0));
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(dimensions, counters, distinct)| Row {
            metrics: query.metrics.iter().map(|m| metric(*m, &counters, distinct)).collect(),
            dimensions,
        })
        .collect();
    rows.sort_by(|a, b| compare(query, a, b));
    rows.into_iter().skip(query.offset).take(query.limit).collect()
}

/// The label of an hour bucket, as `time:hour` shows it.
pub fn hour_label(bucket: Bucket) -> String {
    bucket_start(bucket).strftime("%Y-%m-%d %H:00:00").to_string()
}

/// The label of the day a bucket is in, as `time:day` shows it.
pub fn day_label(bucket: Bucket) -> String {
    bucket_start(bucket).date().to_string()
}

fn group_values(groupings: &[Grouping], bucket: Bucket, key: &CellKey) -> Vec<String> {
    groupings
        .iter()
        .map(|g| match g {
            Grouping::Hour => hour_label(bucket),
            Grouping::Day => day_label(bucket),
            Grouping::Dim(d) => d.value(key).to_owned(),
        })
        .collect()
}

fn metric(metric: Metric, c: &Counters, visitors: u64) -> Value {
    let per_visit = |n: i64| {
        if c.visits > 0 { n as f64 / c.visits as f64 } else { 0.0 }
    };
    match metric {
        Metric::Visitors => json!(visitors),
        Metric::Visits => json!(c.visits),
        Metric::Pageviews => json!(c.pageviews),
        Metric::Events => json!(c.events),
        Metric::BounceRate => json!((per_visit(c.bounces) * 100.0).round() as i64),
        Metric::VisitDuration => json!((per_visit(c.duration_ms) / 1000.0).round() as i64),
        Metric::ViewsPerVisit => json!((per_visit(c.visit_pageviews) * 100.0).round() / 100.0),
    }
}

fn compare(query: &Query, a: &Row, b: &Row) -> Ordering {
    for &(key, descending) in &query.order {
        let ordering = match key {
            SortKey::Metric(i) => {
                let (x, y) = (a.metrics[i].as_f64().unwrap_or(0.0), b.metrics[i].as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
            SortKey::Group(i) => a.dimensions[i].cmp(&b.dimensions[i]),
        };
        let ordering = if descending { ordering.reverse() } else { ordering };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.dimensions.cmp(&b.dimensions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flush::Flush;
    use crate::query::{Query, QueryRequest};
    use crate::store::Progress;
    use jiff::Timestamp;
    use jiff::tz::TimeZone;
    use tally_model::event::{Event, EventId, LogEntry, VisitorIds};

    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
    const DAY_MS: i64 = 86_400_000;

    fn event(at_ms: i64, visitor: u64, path: &str, country: &str) -> Event {
        Event {
            id: EventId(u128::from(visitor) << 64 | at_ms as u128),
            received_ms: at_ms,
            site: "a.com".into(),
            name: "pageview".into(),
            url: format!("https://a.com{path}"),
            referrer: Some("https://news.ycombinator.com/".into()),
            props: vec![],
            revenue: None,
            interactive: true,
            user_agent: UA.into(),
            country: Some(country.into()),
            visitor: VisitorIds { current: visitor, previous: visitor },
        }
    }

    /// A store holding `events`, applied the way the aggregator does (UTC buckets).
    fn store_with(name: &str, events: &[Event]) -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("tally-exec-{name}-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (store, _) = Store::open(&path).expect("store");
        let mut flush = Flush::with_breakdowns();
        for e in events {
            flush.add(&LogEntry::Event(Box::new(e.clone())), 0, &|_| None, &store).expect("adds");
        }
        store.apply(&flush, Progress { offset: events.len() as u64, until_ms: 0 }, None).expect("apply");
        (store, path)
    }

    fn run(store: &Store, json: &str) -> Vec<Row> {
        let request: QueryRequest = serde_json::from_str(json).expect("request");
        let now: Timestamp = "1970-01-03T12:00:00Z".parse().expect("now");
        let query = Query::resolve(&request, &TimeZone::UTC, now).expect("valid query");
        execute(store, &query).expect("executes")
    }

    #[test]
    fn visitors_over_a_range_are_distinct_not_summed_per_day() {
        // Visitor 1 on both days, visitor 2 on day one only.
        let events = [event(1_000, 1, "/", "DE"), event(2_000, 2, "/", "FR"), event(DAY_MS + 1_000, 1, "/", "DE")];
        let (store, path) = store_with("distinct", &events);
        let by_day = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visitors"],"date_range":["1970-01-01","1970-01-02"],"dimensions":["time:day"]}"#,
        );
        assert_eq!(by_day.iter().map(|r| r.metrics[0].clone()).collect::<Vec<_>>(), vec![json!(2), json!(1)]);
        let total = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visitors","visits","pageviews"],"date_range":["1970-01-01","1970-01-02"]}"#,
        );
        assert_eq!(total[0].metrics, vec![json!(2), json!(3), json!(3)]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn filters_groups_and_visit_metrics() {
        let events = [
            event(0, 1, "/", "DE"),
            event(60_000, 1, "/pricing", "DE"),
            event(0, 2, "/pricing", "FR"),
            event(0, 3, "/docs/a", "US"),
        ];
        let (store, path) = store_with("filters", &events);
        let de = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visitors","pageviews","bounce_rate","visit_duration","views_per_visit"],"date_range":["1970-01-01","1970-01-01"],"filters":[["is","visit:country",["DE"]]]}"#,
        );
        assert_eq!(de[0].metrics, vec![json!(1), json!(2), json!(0), json!(60), json!(2.0)]);
        let pages = run(
            &store,
            r#"{"site_id":"a.com","metrics":["pageviews"],"date_range":["1970-01-01","1970-01-01"],"dimensions":["event:page"],"filters":[["is_not","visit:country",["US"]]]}"#,
        );
        let pages: Vec<_> = pages.iter().map(|r| (r.dimensions[0].as_str(), r.metrics[0].clone())).collect();
        assert_eq!(pages, vec![("/pricing", json!(2)), ("/", json!(1))]);
        let docs = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visitors","bounce_rate"],"date_range":["1970-01-01","1970-01-01"],"filters":[["contains","event:page",["/docs"]]]}"#,
        );
        assert_eq!(docs[0].metrics, vec![json!(1), json!(100)]);
        let source = run(
            &store,
            r#"{"site_id":"a.com","metrics":["visits"],"date_range":["1970-01-01","1970-01-01"],"dimensions":["visit:source","visit:browser"]}"#,
        );
        assert_eq!(source[0].dimensions, vec!["Hacker News".to_owned(), "Firefox".to_owned()]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn an_empty_range_answers_zeros() {
        let (store, path) = store_with("empty", &[]);
        let rows = run(&store, r#"{"site_id":"a.com","metrics":["visitors","bounce_rate"],"date_range":"day"}"#);
        assert_eq!(rows, vec![Row { metrics: vec![json!(0), json!(0)], dimensions: vec![] }]);
        let _ = std::fs::remove_file(path);
    }
}
