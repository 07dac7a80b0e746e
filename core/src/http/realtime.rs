//! Realtime answers of `POST /api/v2/query`: `date_range` `"realtime"` (the last 5 minutes) or
//! `"30m"` (the last 30), counted from the live events held in memory
//! ([`crate::embedded::recent`]: what `tally serve` acknowledged, or what `tally query` read
//! from the stream), seconds old. They answer `visitors`, `pageviews` and `events`,
//! unfiltered, in all or by `time:minute` (with `include.time_labels`, every minute of the
//! range); nothing is cached.

use super::answers::{MetricValue, QueryAnswer, QueryEcho, QueryMeta, ResultRow};
use super::error::ApiError;
use crate::embedded::recent::{RealtimeCounts, RecentEvents};
use crate::query::{QueryRequest, date_range};
use crate::registry::Site;

/// The minutes a realtime `date_range` covers, if it is one.
pub fn minutes(request: &QueryRequest) -> Option<i64> {
    match request.date_range.as_str() {
        Some("realtime") => Some(5),
        Some("30m") => Some(30),
        _ => None,
    }
}

/// The answer to a realtime request over the last `minutes`, from `recent`.
pub fn answer(
    request: &QueryRequest,
    site: &Site,
    recent: Option<&RecentEvents>,
    minutes: i64,
    now: jiff::Timestamp,
) -> Result<QueryAnswer, ApiError> {
    let bad = |m: String| Err(ApiError::BadRequest(m));
    let Some(recent) = recent else {
        return bad("realtime counts the last 30 minutes of the stream: start `tally query` with `--stream` (and \
             `--kinesis-endpoint` for a stand-in)"
            .into());
    };
    if let Some(other) = request.metrics.iter().find(|m| !matches!(m.as_str(), "visitors" | "pageviews" | "events")) {
        return bad(format!("realtime answers visitors, pageviews and events, not `{other}`"));
    }
    if request.metrics.is_empty() {
        return bad("metrics must name at least one metric".into());
    }
    let by_minute = match request.dimensions.as_slice() {
        [] => false,
        [one] if one == "time:minute" || one == "time" => true,
        _ => return bad("realtime groups by time:minute only".into()),
    };
    if !request.filters.is_empty() {
        return bad("realtime answers are unfiltered for now".into());
    }
    if request.order_by.is_some() || request.pagination.is_some() {
        return bad("realtime answers are in time order, all at once: order_by and pagination are not offered".into());
    }
    let (time_labels, total_rows) =
        realtime_include(request.include.as_ref(), by_minute).map_err(ApiError::BadRequest)?;
    let now_ms = now.as_millisecond();
    let since = now_ms - minutes * 60_000;
    let counts = recent.counts(&site.domain, since, by_minute);
    let metric = |c: &RealtimeCounts, name: &str| match name {
        "visitors" => c.visitors,
        "pageviews" => c.pageviews,
        _ => c.events,
    };
    let row = |c: &RealtimeCounts, dimensions: Vec<String>| ResultRow {
        metrics: request.metrics.iter().map(|m| Some(MetricValue::Number(metric(c, m).into()))).collect(),
        dimensions,
        comparison: None,
    };
    let results: Vec<ResultRow> = if by_minute {
        counts.iter().map(|(at, c)| row(c, vec![local(site, *at, false)])).collect()
    } else {
        let all = counts.values().next().copied().unwrap_or_default();
        vec![row(&all, Vec::new())]
    };
    let rows = results.len();
    Ok(QueryAnswer {
        results,
        meta: QueryMeta {
            time_zone: site.timezone_name.clone(),
            data_complete_until: None,
            log_offset_applied: None,
            tier: None,
            cache: None,
            realtime: Some(true),
            imports_included: None,
            imports_skip_reason: None,
            time_labels: time_labels.then(|| minute_labels(site, since, now_ms)),
            total_rows: total_rows.then_some(rows),
        },
        query: QueryEcho {
            site_id: site.domain.clone(),
            metrics: request.metrics.clone(),
            date_range: [local(site, since, true), local(site, now_ms, true)],
            dimensions: request.dimensions.clone(),
            filters: request.filters.clone(),
            order_by: None,
            include: None,
            pagination: None,
        },
    })
}

/// What a realtime request's `include` asks for: `time_labels` (with `time:minute`) and
/// `total_rows`; `imports` is accepted (always false); comparisons and anything else are refused.
fn realtime_include(include: Option<&serde_json::Value>, by_minute: bool) -> Result<(bool, bool), String> {
    let Some(include) = include else { return Ok((false, false)) };
    let Some(map) = include.as_object() else {
        return Err(format!("include is an object such as {{\"time_labels\": true}}; got {include}"));
    };
    let (mut time_labels, mut total_rows) = (false, false);
    for (key, value) in map {
        let wanted = || value.as_bool().ok_or_else(|| format!("include.{key} is true or false; got {value}"));
        match key.as_str() {
            "time_labels" => time_labels = wanted()?,
            "total_rows" => total_rows = wanted()?,
            "imports" => {
                wanted()?;
            }
            "comparisons" => return Err("realtime answers have no comparison period".into()),
            other => return Err(format!("unknown include `{other}`: use time_labels, total_rows or imports")),
        }
    }
    if time_labels && !by_minute {
        return Err("include.time_labels needs the dimension time:minute".into());
    }
    Ok((time_labels, total_rows))
}

/// Every minute from the one holding `since_ms` to the one holding `now_ms`, as labelled.
fn minute_labels(site: &Site, since_ms: i64, now_ms: i64) -> Vec<String> {
    let first = since_ms.div_euclid(60_000);
    (first..=now_ms.div_euclid(60_000)).map(|minute| local(site, minute * 60_000, false)).collect()
}

/// `ms` on the site's wall clock: a minute's label, or an ISO date-time with its offset.
fn local(site: &Site, ms: i64, iso: bool) -> String {
    let Ok(at) = jiff::Timestamp::from_millisecond(ms) else { return String::new() };
    if iso {
        date_range::iso(&site.timezone, at)
    } else {
        site.timezone.to_datetime(at).strftime("%Y-%m-%d %H:%M:00").to_string()
    }
}
