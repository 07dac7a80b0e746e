//! Realtime answers of `POST /api/v2/query`: `date_range` `"realtime"` (the last 5 minutes) or
//! `"30m"` (the last 30), counted from the live events held in memory
//! ([`crate::embedded::recent`]: what `tally serve` acknowledged, or what `tally query` read
//! from the stream), seconds old. They answer `visitors`, `pageviews` and `events`,
//! unfiltered, in all or by `time:minute`; nothing is cached.

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
            time_labels: None,
            total_rows: None,
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

/// `ms` on the site's wall clock: a minute's label, or an ISO date-time with its offset.
fn local(site: &Site, ms: i64, iso: bool) -> String {
    let Ok(at) = jiff::Timestamp::from_millisecond(ms) else { return String::new() };
    if iso {
        date_range::iso(&site.timezone, at)
    } else {
        site.timezone.to_datetime(at).strftime("%Y-%m-%d %H:%M:00").to_string()
    }
}
