//! Executes a [`Query`]: one scan over the site's cells in the range, grouped and filtered,
//! then, if `visitors` is asked for, one scan over the visitors of the matching cells.

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
    /// Calls `visit` for every (bucket, cell id, visitor id) of `site` in `buckets`.
    fn visitors(
        &self,
        site: &str,
        buckets: Range<Bucket>,
        visit: &mut dyn FnMut(Bucket, u64, u64),
    ) -> anyhow::Result<()>;
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

    fn visitors(
        &self,
        site: &str,
        buckets: Range<Bucket>,
        visit: &mut dyn FnMut(Bucket, u64, u64),
    ) -> anyhow::Result<()> {
        self.scan_visitors(site, buckets, visit)
    }
}

/// Cells already loaded (from DynamoDB), merged over lineages. They carry no visitor ids.
#[derive(Debug, Default)]
pub struct LoadedCells {
    /// (bucket, cell id) → (key, counters).
    pub cells: std::collections::BTreeMap<(Bucket, u64), (CellKey, Counters)>,
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

    fn visitors(&self, _: &str, _: Range<Bucket>, _: &mut dyn FnMut(Bucket, u64, u64)) -> anyhow::Result<()> {
        anyhow::bail!("distinct visitors are not stored in DynamoDB yet")
    }
}

#[derive(Default)]
struct Group {
    counters: Counters,
    visitors: HashSet<u64>,
}

/// Runs a query against a cell source.
pub fn execute(store: &dyn CellSource, query: &Query) -> anyhow::Result<Vec<Row>> {
    let wants_visitors = query.metrics.contains(&Metric::Visitors);
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut groups: Vec<(Vec<String>, Group)> = Vec::new();
    let mut cell_group: HashMap<(Bucket, u64), usize> = HashMap::new();
    store.cells(&query.site, query.buckets.clone(), &mut |bucket, id, key, counters| {
        if !query.filters.iter().all(|f| f.passes(f.dimension.value(key))) {
            return;
        }
        let group_key = group_values(&query.groupings, bucket, key);
        let next = groups.len();
        let at = *index.entry(group_key.clone()).or_insert(next);
        if at == next {
            groups.push((group_key, Group::default()));
        }
        groups[at].1.counters.add(counters);
        if wants_visitors {
            cell_group.insert((bucket, id), at);
        }
    })?;
    if wants_visitors && !cell_group.is_empty() {
        store.visitors(&query.site, query.buckets.clone(), &mut |bucket, id, visitor| {
            if let Some(&at) = cell_group.get(&(bucket, id)) {
                groups[at].1.visitors.insert(visitor);
            }
        })?;
    }
    if groups.is_empty() && query.groupings.is_empty() {
        groups.push((Vec::new(), Group::default()));
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(dimensions, group)| Row {
            metrics: query.metrics.iter().map(|m| metric(*m, &group)).collect(),
            dimensions,
        })
        .collect();
    rows.sort_by(|a, b| compare(query, a, b));
    Ok(rows.into_iter().skip(query.offset).take(query.limit).collect())
}

fn group_values(groupings: &[Grouping], bucket: Bucket, key: &CellKey) -> Vec<String> {
    groupings
        .iter()
        .map(|g| match g {
            Grouping::Hour => bucket_start(bucket).strftime("%Y-%m-%d %H:00:00").to_string(),
            Grouping::Day => bucket_start(bucket).date().to_string(),
            Grouping::Dim(d) => d.value(key).to_owned(),
        })
        .collect()
}

fn metric(metric: Metric, group: &Group) -> Value {
    let c = &group.counters;
    let per_visit = |n: i64| {
        if c.visits > 0 { n as f64 / c.visits as f64 } else { 0.0 }
    };
    match metric {
        Metric::Visitors => json!(group.visitors.len()),
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
        let store = Store::open(&path).expect("store");
        let mut flush = Flush::default();
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
