//! The query behind a question that reads a site's stored events rather than answering a Stats
//! API query (funnels, prop names): its `date_range` and `filters` resolved as a query's are
//! (saved segments, goals, `has_done`), refused where the store refuses them, with the
//! freshness and the range's first and last local day for the answer's meta.

use super::AppState;
use super::error::ApiError;
use super::query::resolve_all;
use crate::query::goals::expand_filters;
use crate::query::source::Freshness;
use crate::query::{Query, QueryRequest};
use crate::registry::Site;
use serde_json::Value;

/// A resolved question over stored events.
#[derive(Debug)]
pub struct StoredQuery {
    /// The query: the site, range and filters (its metrics and dimensions are not read).
    pub query: Query,
    /// How current the store's data is.
    pub fresh: Freshness,
    /// The first and last local day of the range.
    pub days: [String; 2],
}

/// Resolves `date_range` and `filters` for `site` as a query's; `what` names the question in
/// the 400 for a realtime range ("funnels").
pub async fn resolve(
    app: &AppState,
    site: &Site,
    date_range: &Value,
    filters: &[Value],
    what: &str,
) -> Result<StoredQuery, ApiError> {
    if matches!(date_range.as_str(), Some("realtime" | "30m")) {
        return Err(ApiError::BadRequest(format!("{what} read stored events; realtime ranges are not offered")));
    }
    let bad = |e: &dyn std::fmt::Display| ApiError::BadRequest(e.to_string());
    let filters = crate::query::saved_segments::expand(filters, &site.segments).map_err(|e| bad(&e))?;
    let mut request = QueryRequest {
        site_id: site.domain.clone(),
        metrics: vec!["visitors".into()],
        date_range: date_range.clone(),
        dimensions: Vec::new(),
        filters,
        order_by: None,
        include: None,
        pagination: None,
    };
    let now = jiff::Timestamp::now();
    resolve_all(app, site, &mut request, now).await?;
    let mut query = Query::resolve(&request, &site.timezone, now).map_err(|e| bad(&e))?;
    query.site = site.domain.clone();
    query.filters = expand_filters(&query.filters, &site.goals).map_err(|e| bad(&e))?;
    if let Some(refusal) = app.stats.refuse(&query) {
        return Err(ApiError::BadRequest(refusal));
    }
    let fresh = app.stats.freshness(&query)?;
    let day = |bucket| crate::pipeline::timebucket::bucket_start(bucket).date().to_string();
    let days = [day(query.buckets.start), day(query.buckets.end - 1)];
    Ok(StoredQuery { query, fresh, days })
}
