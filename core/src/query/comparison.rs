//! `include.comparisons`: the same query over another period — the previous one, the same dates
//! a year before, or custom dates — attached to each row as Plausible attaches it:
//! `"comparison": {"dimensions": […], "metrics": […], "change": […]}`. A time dimension's label
//! maps to the comparison period's label at the same position; a row the other period lacks
//! compares with zeros.

use super::date_range;
use super::exec::{Row, time_labels};
use super::request::{Grouping, Metric, Query, QueryError};
use crate::pipeline::timebucket::{bucket_start, day_start};
use jiff::ToSpan;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::ops::Range;
use tally_model::rollup::Bucket;

/// The period to compare with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Comparison {
    /// Its buckets.
    pub buckets: Range<Bucket>,
}

/// Parses `include.comparisons` for a query over `main`.
pub fn parse(
    value: &Value,
    main: &Range<Bucket>,
    zone: &TimeZone,
    now: jiff::Timestamp,
) -> Result<Comparison, QueryError> {
    let shape = || {
        QueryError("include.comparisons is {\"mode\": \"previous_period\" | \"year_over_year\" | \"custom\", \"date_range\": [from, to] (custom only)}".into())
    };
    let Value::Object(map) = value else { return Err(shape()) };
    if let Some(other) = map.keys().find(|k| !matches!(k.as_str(), "mode" | "date_range" | "match_day_of_week")) {
        return Err(QueryError(format!("unknown include.comparisons key `{other}`")));
    }
    let mode = map.get("mode").and_then(Value::as_str).ok_or_else(shape)?;
    let len = main.end - main.start;
    let buckets = match mode {
        "previous_period" => main.start - len..main.start,
        "year_over_year" => year_before(main.start)?..year_before(main.end)?,
        "custom" => {
            let range = map.get("date_range").ok_or_else(shape)?;
            // A comparison period is counted by the hour: not to the second.
            if date_range::seconds(range, zone)?.is_some() {
                return Err(QueryError(
                    "include.comparisons.date_range needs whole hours or dates, not date-times inside an hour".into(),
                ));
            }
            date_range::buckets(range, zone, now)?
        }
        other => {
            return Err(QueryError(format!(
                "unknown comparison mode `{other}`: previous_period, year_over_year or custom"
            )));
        }
    };
    if mode != "custom" && map.contains_key("date_range") {
        return Err(QueryError("include.comparisons.date_range goes with the custom mode only".into()));
    }
    Ok(Comparison { buckets })
}

/// The bucket at the same local date and hour a year earlier (29 February: the 28th).
fn year_before(bucket: Bucket) -> Result<Bucket, QueryError> {
    let start = bucket_start(bucket);
    let date = start.date().checked_sub(1.year()).map_err(|e| QueryError(e.to_string()))?;
    Ok(day_start(date) + i64::from(start.hour()))
}

/// The query over the comparison period, every row, nothing else included.
pub fn query_of(query: &Query, comparison: &Comparison) -> Query {
    let mut other = query.clone();
    other.buckets = comparison.buckets.clone();
    other.include = Default::default();
    other.offset = 0;
    other.limit = usize::MAX;
    other
}

/// The page's rows as JSON, each with its comparison from `previous` (every row of the
/// comparison query).
pub fn attach(query: &Query, comparison: &Comparison, page: &[Row], previous: &[Row]) -> Vec<Value> {
    let time_at = query.groupings.iter().position(Grouping::is_time);
    let lookup: HashMap<String, String> = match time_at {
        Some(_) => {
            let main = time_labels(query).unwrap_or_default();
            let other = time_labels(&query_of(query, comparison)).unwrap_or_default();
            main.into_iter().zip(other).collect()
        }
        None => HashMap::new(),
    };
    let by_dimensions: HashMap<&[String], &[Value]> =
        previous.iter().map(|r| (r.dimensions.as_slice(), r.metrics.as_slice())).collect();
    page.iter()
        .map(|row| {
            let dimensions: Vec<Value> = row
                .dimensions
                .iter()
                .enumerate()
                .map(|(i, d)| match time_at {
                    Some(t) if t == i => lookup.get(d).map_or(Value::Null, |l| json!(l)),
                    _ => json!(d),
                })
                .collect();
            let key: Option<Vec<String>> = dimensions.iter().map(|d| d.as_str().map(str::to_owned)).collect();
            let zeros: Vec<Value> = query.metrics.iter().map(|m| zero(*m)).collect();
            let metrics = key.as_deref().and_then(|k| by_dimensions.get(k)).map_or(zeros, |m| m.to_vec());
            let change: Vec<Value> = query
                .metrics
                .iter()
                .zip(&metrics)
                .zip(&row.metrics)
                .map(|((m, old), new)| change(*m, old, new))
                .collect();
            let mut out = Map::new();
            out.insert("metrics".into(), json!(row.metrics));
            out.insert("dimensions".into(), json!(row.dimensions));
            out.insert("comparison".into(), json!({"dimensions": dimensions, "metrics": metrics, "change": change}));
            Value::Object(out)
        })
        .collect()
}

/// A metric's value for a group with nothing in it.
fn zero(metric: Metric) -> Value {
    match metric {
        Metric::TotalRevenue | Metric::AverageRevenue | Metric::ExitRate | Metric::ScrollDepth | Metric::TimeOnPage => {
            Value::Null
        }
        Metric::ViewsPerVisit | Metric::Percentage => json!(0.0),
        _ => json!(0),
    }
}

/// Plausible's change: for a rate, the difference in points (null when the old rate is 0);
/// otherwise the change in whole percent (100 from nothing to something, 0 from nothing to
/// nothing); null where a value is missing.
fn change(metric: Metric, old: &Value, new: &Value) -> Value {
    let number = |v: &Value| match v {
        Value::Object(revenue) => revenue.get("value").and_then(Value::as_f64),
        other => other.as_f64(),
    };
    let (Some(old), Some(new)) = (number(old), number(new)) else { return Value::Null };
    if metric == Metric::BounceRate {
        return if old > 0.0 { json!((new - old).round() as i64) } else { Value::Null };
    }
    if metric == Metric::ExitRate {
        return json!(((new - old) * 10.0).round() / 10.0);
    }
    if old == 0.0 {
        return json!(if new > 0.0 { 100 } else { 0 });
    }
    json!(((new - old) / old * 100.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_plausibles() {
        assert_eq!(change(Metric::Visitors, &json!(10), &json!(15)), json!(50));
        assert_eq!(change(Metric::Visitors, &json!(0), &json!(3)), json!(100));
        assert_eq!(change(Metric::Visitors, &json!(0), &json!(0)), json!(0));
        assert_eq!(change(Metric::Visitors, &json!(3), &json!(1)), json!(-67));
        assert_eq!(change(Metric::BounceRate, &json!(40), &json!(55)), json!(15), "points, not percent");
        assert_eq!(change(Metric::BounceRate, &json!(0), &json!(55)), Value::Null);
        assert_eq!(change(Metric::ExitRate, &json!(50.0), &json!(33.3)), json!(-16.7), "points, one decimal");
        assert_eq!(change(Metric::ExitRate, &Value::Null, &json!(100.0)), Value::Null);
        assert_eq!(change(Metric::TotalRevenue, &Value::Null, &json!({"value": 5.0})), Value::Null);
    }

    #[test]
    fn periods() {
        let zone = TimeZone::UTC;
        let now: jiff::Timestamp = "2026-03-15T10:00:00Z".parse().expect("now");
        let main = date_range::buckets(&json!(["2026-03-08", "2026-03-14"]), &zone, now).expect("main");
        let dates =
            |c: &Comparison| (bucket_start(c.buckets.start).to_string(), bucket_start(c.buckets.end - 1).to_string());
        let previous = parse(&json!({"mode": "previous_period"}), &main, &zone, now).expect("previous");
        assert_eq!(dates(&previous), ("2026-03-01T00:00:00".into(), "2026-03-07T23:00:00".into()));
        let yoy = parse(&json!({"mode": "year_over_year"}), &main, &zone, now).expect("yoy");
        assert_eq!(dates(&yoy), ("2025-03-08T00:00:00".into(), "2025-03-14T23:00:00".into()));
        let custom = parse(&json!({"mode": "custom", "date_range": ["2026-01-01", "2026-01-03"]}), &main, &zone, now);
        assert_eq!(dates(&custom.expect("custom")), ("2026-01-01T00:00:00".into(), "2026-01-03T23:00:00".into()));
        assert!(parse(&json!({"mode": "sideways"}), &main, &zone, now).is_err());
        // A custom period inside hours would be widened to them: refused.
        let inside = json!({"mode": "custom", "date_range": ["2026-01-01T10:30:00Z", "2026-01-01T12:00:00Z"]});
        let refused = parse(&inside, &main, &zone, now).map(|_| ()).map_err(|e| e.0);
        assert!(refused.as_ref().is_err_and(|e| e.contains("whole hours")), "{refused:?}");
        assert!(
            parse(&json!({"mode": "previous_period", "date_range": ["2026-01-01", "2026-01-03"]}), &main, &zone, now)
                .is_err()
        );
    }
}
