//! `POST /api/v2/funnel`: a funnel of a site the key may read over a date range, saved
//! (`"funnel": name`) or given as its steps (`"steps": [goal names]`), with the query's filters;
//! answered in the shape of Plausible's funnel answers (`query/funnel.rs` says how it counts).

use super::AppState;
use super::answers::ErrorBody;
use super::auth::{authorize, rated_key};
use super::body::read_bounded;
use super::error::ApiError;
use super::stored_query::{self, StoredQuery};
use crate::query::funnel::{FunnelCounts, WINDOW_SECONDS};
use crate::query::goals::goal_filter;
use crate::query::limits::MAX_BODY_BYTES;
use crate::query::source::complete_until;
use crate::registry::step_goals;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /api/v2/funnel`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunnelRequest {
    /// The site's domain.
    pub site_id: String,
    /// As in a query: a preset (`"30d"`, `"month"`, `"all"`, …) or `[from, to]`; not `realtime`.
    #[schema(schema_with = crate::query::request::date_range_schema)]
    pub date_range: Value,
    /// As in a query: only the events that pass them count, for every step and for
    /// `all_visitors`.
    #[serde(default)]
    #[schema(schema_with = crate::query::request::filters_schema)]
    pub filters: Vec<Value>,
    /// A saved funnel's name (`tally funnel add`, `PUT /api/v1/sites/funnels`)…
    pub funnel: Option<String>,
    /// …or the steps themselves: 2 to 8 goal names of the site, in order.
    pub steps: Option<Vec<String>>,
    /// Whether no other event may come between the steps (ClickHouse's `strict_order`, as
    /// Plausible's strict funnels): default false, or the saved funnel's.
    pub strict_order: Option<bool>,
}

/// One step of a funnel's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FunnelStepAnswer {
    /// The step's goal.
    pub label: String,
    /// Visitors who reached this step (in order, within the window).
    pub visitors: u64,
    /// Of the visitors who reached the first step, the share who reached this one, in percent
    /// as text (two decimals at most: `"66.67"`, `"100"`).
    pub conversion_rate: String,
    /// Of the visitors who reached the step before, the share who reached this one (`"0"` for the
    /// first step).
    pub conversion_rate_step: String,
    /// Visitors who reached the step before but not this one (0 for the first step).
    pub dropoff: u64,
    /// `dropoff` as a share of the step before's visitors, in percent as text.
    pub dropoff_percentage: String,
}

/// What a funnel answer says about its data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FunnelMeta {
    /// The site's time zone.
    pub time_zone: String,
    /// The first and last local day of the range.
    pub date_range: [String; 2],
    /// How long after a chain's first step its last may come, in seconds.
    pub window_seconds: i64,
    /// The arrival time of the last event applied, where the store knows it.
    pub data_complete_until: Option<String>,
}

/// The answer of `POST /api/v2/funnel`, in the shape of Plausible's funnel answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FunnelAnswer {
    /// The saved funnel's name (`null` for steps given in the request).
    pub name: Option<String>,
    /// Whether it was counted in strict order.
    pub strict_order: bool,
    /// The steps, in order.
    pub steps: Vec<FunnelStepAnswer>,
    /// Visitors with any event in the range that passes the filters.
    pub all_visitors: u64,
    /// Visitors who reached the first step.
    pub entering_visitors: u64,
    /// `entering_visitors` as a share of `all_visitors`, in percent as text.
    pub entering_visitors_percentage: String,
    /// Visitors who did not reach the first step.
    pub never_entering_visitors: u64,
    /// `never_entering_visitors` as a share of `all_visitors`, in percent as text.
    pub never_entering_visitors_percentage: String,
    /// About the data.
    pub meta: FunnelMeta,
}

/// `part` as a percentage of `whole`, rounded half up to two decimals, written without trailing
/// zeros (`"66.67"`, `"50.5"`, `"100"`); `"0"` when `whole` is 0.
pub fn percentage(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0".into();
    }
    let hundredths = (u128::from(part) * 20_000 + u128::from(whole)) / (2 * u128::from(whole));
    let text = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The answer's steps and totals from the counts.
fn answer_of(
    labels: &[String],
    counts: &FunnelCounts,
    (name, strict_order): (Option<String>, bool),
    meta: FunnelMeta,
) -> FunnelAnswer {
    let mut steps = Vec::with_capacity(labels.len());
    let entering = counts.reached(1);
    let mut before: Option<u64> = None;
    for (i, label) in labels.iter().enumerate() {
        let visitors = counts.reached(i + 1);
        let dropoff = before.map_or(0, |b| b - visitors);
        steps.push(FunnelStepAnswer {
            label: label.clone(),
            visitors,
            conversion_rate: percentage(visitors, entering),
            conversion_rate_step: before.map_or_else(|| "0".into(), |b| percentage(visitors, b)),
            dropoff,
            dropoff_percentage: before.map_or_else(|| "0".into(), |b| percentage(dropoff, b)),
        });
        before = Some(visitors);
    }
    let never = counts.all_visitors - entering;
    FunnelAnswer {
        name,
        strict_order,
        steps,
        all_visitors: counts.all_visitors,
        entering_visitors: entering,
        entering_visitors_percentage: percentage(entering, counts.all_visitors),
        never_entering_visitors: never,
        never_entering_visitors_percentage: percentage(never, counts.all_visitors),
        meta,
    }
}

/// Counts a funnel of a site the caller's key may read.
#[utoipa::path(post, path = "/api/v2/funnel", tag = "stats", security(("api_key" = [])),
    request_body = FunnelRequest,
    responses(
        (status = 200, description = "Visitors per step, conversion and drop-off", body = FunnelAnswer),
        (status = 400, description = "A malformed request, an unknown funnel or goal; the message says what to fix", body = ErrorBody),
        (status = 401, description = "No key, an unknown key or an expired one", body = ErrorBody),
        (status = 404, description = "No such site, or not the key's", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "The funnel would take more time than allowed", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit (see `Retry-After`)", body = ErrorBody),
        (status = 503, description = "Every query turn is taken (see `Retry-After`)", body = ErrorBody),
    ))]
pub async fn funnel(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<FunnelAnswer>, ApiError> {
    let registry = app.registry.snapshot();
    let key = rated_key(&app, &registry, &headers)?;
    let body = read_bounded(body, MAX_BODY_BYTES, "a funnel body").await?;
    let request: FunnelRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid funnel request: {e}")))?;
    let site = authorize(&registry, key, &request.site_id)?;
    let (name, labels, saved_strict) = match (request.funnel, request.steps) {
        (Some(name), None) => {
            let saved = site.funnels.iter().find(|f| f.name == name).ok_or_else(|| {
                let names: Vec<&str> = site.funnels.iter().map(|f| f.name.as_str()).collect();
                ApiError::BadRequest(format!(
                    "{} has no funnel named `{name}`; its funnels are: {}",
                    site.domain,
                    if names.is_empty() { "none yet".to_owned() } else { names.join(", ") }
                ))
            })?;
            (Some(name), saved.steps.clone(), saved.strict_order)
        }
        (None, Some(steps)) => (None, steps, false),
        _ => return Err(ApiError::BadRequest("give either \"funnel\" (a saved funnel's name) or \"steps\"".into())),
    };
    let strict = request.strict_order.unwrap_or(saved_strict);
    let goals = step_goals(&labels, &site.goals, &site.domain).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let StoredQuery { query, fresh, days: [first, last] } =
        stored_query::resolve(&app, site, &request.date_range, &request.filters, "funnels").await?;
    let steps = goals.into_iter().map(goal_filter).collect();
    let counts = app.queries.funnel(&app.stats, query, steps, strict).await?;
    let meta = FunnelMeta {
        time_zone: site.timezone_name.clone(),
        date_range: [first, last],
        window_seconds: WINDOW_SECONDS,
        data_complete_until: fresh.until_ms.and_then(complete_until),
    };
    Ok(Json(answer_of(&labels, &counts, (name, strict), meta)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_written_as_plausible_writes_them() {
        assert_eq!(percentage(2, 3), "66.67");
        assert_eq!(percentage(1, 3), "33.33");
        assert_eq!(percentage(3, 3), "100");
        assert_eq!(percentage(1, 2), "50");
        assert_eq!(percentage(101, 200), "50.5");
        assert_eq!(percentage(1, 8), "12.5");
        assert_eq!(percentage(1, 200_000), "0", "0.0005 rounds to 0.00");
        assert_eq!(percentage(1, 20_000), "0.01", "0.005 rounds half up");
        assert_eq!(percentage(0, 0), "0");
    }

    #[test]
    fn steps_count_from_the_deepest_step_of_each_visitor() {
        // 10 visitors: 3 reached no step, 2 only the first, 1 the second, 4 the third.
        let counts = FunnelCounts { all_visitors: 10, deepest: vec![3, 2, 1, 4] };
        let labels: Vec<String> = ["A", "B", "C"].map(String::from).to_vec();
        let meta = FunnelMeta {
            time_zone: "Etc/UTC".into(),
            date_range: ["2026-01-01".into(), "2026-01-01".into()],
            window_seconds: WINDOW_SECONDS,
            data_complete_until: None,
        };
        let answer = answer_of(&labels, &counts, (None, false), meta);
        let visitors: Vec<u64> = answer.steps.iter().map(|s| s.visitors).collect();
        assert_eq!(visitors, [7, 5, 4]);
        assert_eq!(answer.steps[1].dropoff, 2);
        assert_eq!(answer.steps[1].dropoff_percentage, "28.57");
        assert_eq!(answer.steps[2].conversion_rate, "57.14");
        assert_eq!(answer.steps[2].conversion_rate_step, "80");
        assert_eq!((answer.entering_visitors, answer.never_entering_visitors), (7, 3));
        assert_eq!(answer.entering_visitors_percentage, "70");
    }
}
