//! `POST /api/v2/export`: a site's aggregates over a range as a zip of CSV files, one per report
//! of the dashboard (as Plausible's export gives them): visitors by day, sources, channels, UTM
//! parameters, referrers, pages, entry and exit pages, locations, devices, browsers and their
//! versions, operating systems and theirs, hostnames and custom events. Each report is a Stats
//! API query run through the same gate, cache-free, every row (no `(other)`, no row cap).
//! With `filters`, every report is answered under them (as Plausible's dashboard exports what it
//! shows); a column or report the Stats API refuses under them (views per visit filtered by a
//! page, exit pages filtered at all) is left out and listed, with the reason, in
//! `not_exported.csv`.

use super::AppState;
use super::answers::ErrorBody;
use super::auth::{authorize, rated_key};
use super::body::read_bounded;
use super::csv_export::cell;
use super::error::ApiError;
use crate::query::exec::Row;
use crate::query::limits::MAX_BODY_BYTES;
use crate::query::{Query, QueryRequest};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;

/// The reports: file name, metrics, dimensions. Every one is answered by the rollups, so the
/// export works on both stores.
const REPORTS: [(&str, &[&str], &[&str]); 23] = [
    (
        "visitors.csv",
        &["visitors", "pageviews", "visits", "views_per_visit", "bounce_rate", "visit_duration"],
        &["time:day"],
    ),
    ("sources.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:source"]),
    ("channels.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:channel"]),
    ("referrers.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:referrer"]),
    ("utm_sources.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:utm_source"]),
    ("utm_mediums.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:utm_medium"]),
    ("utm_campaigns.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:utm_campaign"]),
    ("utm_contents.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:utm_content"]),
    ("utm_terms.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:utm_term"]),
    ("pages.csv", &["visitors", "pageviews", "bounce_rate"], &["event:page"]),
    ("entry_pages.csv", &["visitors", "visits", "bounce_rate", "visit_duration"], &["visit:entry_page"]),
    ("exit_pages.csv", &["visitors", "visits", "bounce_rate"], &["visit:exit_page"]),
    ("hostnames.csv", &["visitors", "pageviews"], &["event:hostname"]),
    ("countries.csv", &["visitors", "visits"], &["visit:country"]),
    ("regions.csv", &["visitors", "visits"], &["visit:region"]),
    ("cities.csv", &["visitors", "visits"], &["visit:city"]),
    ("devices.csv", &["visitors", "visits", "bounce_rate"], &["visit:device"]),
    ("browsers.csv", &["visitors", "visits", "bounce_rate"], &["visit:browser"]),
    ("browser_versions.csv", &["visitors", "visits"], &["visit:browser_version"]),
    ("operating_systems.csv", &["visitors", "visits", "bounce_rate"], &["visit:os"]),
    ("operating_system_versions.csv", &["visitors", "visits"], &["visit:os_version"]),
    ("custom_events.csv", &["visitors", "events"], &["event:name"]),
    ("revenue.csv", &["events", "total_revenue", "average_revenue"], &["event:name"]),
];

/// The body of `POST /api/v2/export`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The site's domain.
    pub site_id: String,
    /// A range as the Stats API takes it (`"30d"`, `["2026-11-01", "2026-11-30"]`, …).
    #[schema(value_type = Object)]
    pub date_range: Value,
    /// Filters as the Stats API takes them (saved segments included); none by default.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub filters: Vec<Value>,
}

/// Answers a zip of the site's reports over the range.
#[utoipa::path(post, path = "/api/v2/export", tag = "stats", security(("api_key" = [])),
    request_body = ExportRequest,
    responses(
        (status = 200, description = "A zip of CSV files, one per report (visitors.csv, sources.csv, pages.csv, …)",
            content_type = "application/zip", body = Vec<u8>),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit", body = ErrorBody),
    ))]
pub async fn export(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let registry = app.registry.snapshot();
    let key = rated_key(&app, &registry, &headers)?;
    let body = read_bounded(body, MAX_BODY_BYTES, "an export body").await?;
    let request: ExportRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid export: {e}")))?;
    let site = authorize(&registry, key, &request.site_id)?;
    if request.date_range == "all" || request.date_range == "realtime" || request.date_range == "30m" {
        return Err(ApiError::BadRequest("an export's date_range is a preset such as 30d, or two dates".into()));
    }
    let filters = crate::query::saved_segments::expand(&request.filters, &site.segments)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let now = jiff::Timestamp::now();
    // The filters themselves must make a query (visitors in all is asked under any).
    let total = QueryRequest {
        site_id: site.domain.clone(),
        metrics: vec!["visitors".to_owned()],
        date_range: request.date_range.clone(),
        dimensions: Vec::new(),
        filters: filters.clone(),
        order_by: None,
        include: None,
        pagination: None,
    };
    Query::resolve(&total, &site.timezone, now).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    // What the filters left out: (file, column or "", why).
    let mut left_out: Vec<[String; 3]> = Vec::new();
    for (file, all_metrics, dimensions) in REPORTS {
        let ask = |metrics: &[&str]| QueryRequest {
            site_id: site.domain.clone(),
            metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
            date_range: request.date_range.clone(),
            dimensions: dimensions.iter().map(|d| (*d).to_owned()).collect(),
            filters: filters.clone(),
            order_by: None,
            include: None,
            pagination: None,
        };
        let resolve = |metrics: &[&str]| Query::resolve(&ask(metrics), &site.timezone, now);
        // Unfiltered, every report is answered: a refusal is the request's fault (its range).
        let mut metrics: Vec<&str> = all_metrics.to_vec();
        let mut query = match resolve(&metrics) {
            Ok(query) => query,
            Err(error) if filters.is_empty() => return Err(ApiError::BadRequest(error.to_string())),
            Err(error) => {
                // Keep the metrics the filters allow; a report left without any is left out.
                metrics.retain(|m| resolve(&[m]).is_ok());
                if metrics.is_empty() {
                    left_out.push([(*file).to_owned(), String::new(), error.to_string()]);
                    continue;
                }
                for refused in all_metrics.iter().filter(|m| !metrics.contains(m)) {
                    let why = resolve(&[refused]).err().map_or_else(|| error.to_string(), |e| e.to_string());
                    left_out.push([(*file).to_owned(), (*refused).to_owned(), why]);
                }
                resolve(&metrics).map_err(|e| ApiError::BadRequest(format!("{file}: {e}")))?
            }
        };
        query.site = site.domain.clone();
        if let Some(refusal) = app.stats.refuse(&query) {
            return Err(ApiError::BadRequest(format!("{file}: {refusal}")));
        }
        let (_, rows) = app.queries.answer(&app.stats, query).await?;
        let columns: Vec<&str> = dimensions.iter().chain(metrics.iter()).map(|c| column_name(c)).collect();
        zip.start_file(file, options).map_err(|e| ApiError::Internal(e.into()))?;
        zip.write_all(&csv_of(&columns, &rows)?).map_err(|e| ApiError::Internal(e.into()))?;
    }
    if !left_out.is_empty() {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(["file", "column", "why"]).map_err(|e| ApiError::Internal(e.into()))?;
        for row in &left_out {
            out.write_record(row).map_err(|e| ApiError::Internal(e.into()))?;
        }
        let text = out.into_inner().map_err(|e| ApiError::Internal(anyhow::anyhow!("writing CSV: {e}")))?;
        zip.start_file("not_exported.csv", options).map_err(|e| ApiError::Internal(e.into()))?;
        zip.write_all(&text).map_err(|e| ApiError::Internal(e.into()))?;
    }
    let bytes = zip.finish().map_err(|e| ApiError::Internal(e.into()))?.into_inner();
    let name = format!("attachment; filename=\"{}-export.zip\"", site.domain);
    let disposition = HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Bytes::from(bytes),
    )
        .into_response())
}

/// A column's name in a report: the dimension's short name (`page`, `source`, `date`) or the
/// metric's.
fn column_name(name: &str) -> &str {
    match name {
        "time:day" => "date",
        other => other.rsplit(':').next().unwrap_or(other),
    }
}

/// Every row as CSV under `columns` (a revenue metric as its value; empty for none or several
/// currencies).
fn csv_of(columns: &[&str], rows: &[Row]) -> Result<Vec<u8>, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(columns).map_err(|e| ApiError::Internal(e.into()))?;
    for row in rows {
        let cells: Vec<String> = row.dimensions.iter().cloned().chain(row.metrics.iter().map(cell)).collect();
        out.write_record(&cells).map_err(|e| ApiError::Internal(e.into()))?;
    }
    out.into_inner().map_err(|e| ApiError::Internal(anyhow::anyhow!("writing CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Tier, plan};

    #[test]
    fn every_report_is_answered_by_the_rollups_so_both_stores_export() {
        let now = "2026-11-28T12:00:00Z".parse().expect("now");
        for (file, metrics, dimensions) in REPORTS {
            let request = QueryRequest {
                site_id: "a.com".into(),
                metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
                date_range: Value::from("30d"),
                dimensions: dimensions.iter().map(|d| (*d).to_owned()).collect(),
                filters: Vec::new(),
                order_by: None,
                include: None,
                pagination: None,
            };
            let query = Query::resolve(&request, &jiff::tz::TimeZone::UTC, now).expect(file);
            assert_eq!(plan(&query), Tier::Rollups, "{file}");
        }
    }
}
