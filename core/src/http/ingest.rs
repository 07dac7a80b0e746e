//! `POST /api/event`: Plausible-compatible ingest. Answers 202 only after the request's events
//! (and drops) are durably in the event log; 429 with `Retry-After` over a rate limit.

use super::AppState;
use super::error::{ApiError, is_body_timeout};
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use tally_model::codec;
use tally_model::event::LogEntry;
use tally_model::ingest::{RequestContext, answer_counts, ingest};
use tally_model::limits::MAX_BODY_BYTES;
use tally_model::reject::Rejection;
use tally_model::visitor::visitor_id;

/// Handles one ingest request.
#[utoipa::path(post, path = "/api/event", tag = "ingest",
    request_body(description = "One event or an array of up to 25 (`text/plain` avoids a CORS preflight)",
        content((Vec<super::answers::EventPayload> = "application/json"), (Vec<super::answers::EventPayload> = "text/plain"))),
    responses(
        (status = 202, description = "`ok`: every event is in the event log; `X-Tally-Accepted` counts them and `X-Tally-Dropped` lists the reasons of dropped ones", body = String, content_type = "text/plain"),
        (status = 400, description = "A body that is no event (`invalid_json`, `not_an_event`, `bad_batch_size`, …)", body = super::answers::IngestRefusal),
        (status = 413, description = "A body over 64 KiB", body = super::answers::IngestRefusal),
        (status = 415, description = "A content type other than JSON or text", body = super::answers::IngestRefusal),
        (status = 429, description = "Over the client's or the site's rate limit (see `Retry-After`)", body = super::answers::IngestRefusal),
        (status = 503, description = "The event log cannot be written; retry", body = super::answers::IngestRefusal),
    ))]
pub async fn event(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Ok(rejected(Rejection::BodyTooLarge));
    }
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) if is_body_timeout(&error) => return Err(ApiError::BodyTimeout),
        Err(_) => return Ok(rejected(Rejection::BodyTooLarge)),
    };
    if app.ingest.is_none() {
        return Ok(StatusCode::NOT_FOUND.into_response());
    }
    let trusted = app.ingest.as_ref().map_or(0, |ingest| ingest.trusted_proxy_hops);
    // Cloudflare's geo headers (CF-IPCountry, and with its visitor location headers on,
    // CF-Region-Code and CF-IPCity), believed only from a trusted proxy.
    let proxy_header = |name| if trusted > 0 { header_str(&headers, name) } else { None };
    let request = Incoming {
        body: &body,
        content_type: header_str(&headers, header::CONTENT_TYPE.as_str()),
        user_agent: header_str(&headers, header::USER_AGENT.as_str()).unwrap_or(""),
        ip: client_ip(&headers, peer.ip(), trusted),
        country: proxy_header("cf-ipcountry"),
        region: proxy_header("cf-region-code"),
        city: proxy_header("cf-ipcity"),
    };
    accept(&app, &request).await
}

/// One ingest request as the endpoint sees it once its headers are read: the body, and what the
/// client and the trusted proxies in front say about it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The body.
    pub body: &'a [u8],
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The `User-Agent` header ("" if absent).
    pub user_agent: &'a str,
    /// The client's IP (for the visitor id only; never stored or logged).
    pub ip: IpAddr,
    /// The country, region and city from a trusted proxy's geo headers, if any.
    pub country: Option<&'a str>,
    /// See `country`.
    pub region: Option<&'a str>,
    /// See `country`.
    pub city: Option<&'a str>,
}

/// Takes one request's events as `POST /api/event` does (`tally serve --demo` sends its live
/// traffic through here too): checks and enriches them (`model::ingest`), applies the rate
/// limits, appends them to the event log and the realtime window, and answers 202 with the
/// counts. 404 where this process takes no events.
pub async fn accept(app: &AppState, request: &Incoming<'_>) -> Result<Response, ApiError> {
    let Some(ingest_state) = &app.ingest else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    // Held until the entries are in the log, so no freshness claims this arrival time before.
    let arrival = ingest_state.log.arrive();
    let received_ms = arrival.received_ms;
    // The day's salt is written to the log's database on its first use: if that fails (disk
    // full, I/O error), nothing was accepted and the client may retry: a 503, as for the log.
    let salts = ingest_state.salts.salts_at(received_ms).map_err(|error| {
        tracing::error!(error = format!("{error:#}"), "ingest could not read or write the day's salt");
        ApiError::LogUnavailable
    })?;
    let registry = app.registry.snapshot();
    let ctx = RequestContext {
        content_type: request.content_type,
        user_agent: request.user_agent,
        ip: request.ip,
        country: request.country,
        region: request.region,
        city: request.city,
        received_ms,
        salts: &salts,
        first_event_id: random_id()?,
    };
    let entries = match ingest(request.body, &ctx, |domain| registry.site(domain).is_some()) {
        Ok(entries) => entries,
        Err(rejection) => return Ok(rejected(rejection)),
    };
    // The client is known by a salted hash of its IP and user agent (a visitor id of no site),
    // like a visitor: the limiter never holds an address.
    let client = visitor_id(&salts.current, "", ctx.ip, ctx.user_agent);
    if let Err(retry_after_s) = ingest_state.limits.check(client, &per_site(&entries)) {
        ingest_state.limits.refuse(&entries, received_ms);
        return Err(ApiError::IngestRateLimited { retry_after_s });
    }
    let (accepted, dropped) = answer_counts(&entries);
    ingest_state.log.append(entries.iter().map(codec::encode).collect()).await.map_err(|error| {
        tracing::error!(%error, "ingest could not append to the event log");
        ApiError::LogUnavailable
    })?;
    if let Some(recent) = &app.recent {
        recent.add(&entries, received_ms);
    }
    let mut response = (StatusCode::ACCEPTED, "ok").into_response();
    let out = response.headers_mut();
    out.insert("x-tally-accepted", HeaderValue::from(accepted));
    if !dropped.is_empty()
        && let Ok(value) = HeaderValue::from_str(&dropped.join(", "))
    {
        out.insert("x-tally-dropped", value);
    }
    Ok(response)
}

/// Entries per registered site (`None`: no registered site) of one request.
fn per_site(entries: &[LogEntry]) -> Vec<(Option<&str>, u32)> {
    let mut out: Vec<(Option<&str>, u32)> = Vec::new();
    for entry in entries {
        let site = match entry {
            LogEntry::Event(event) => Some(event.site.as_str()),
            LogEntry::Drop(drop) => drop.site.as_deref(),
            LogEntry::Drops(drops) => drops.site.as_deref(),
        };
        match out.iter_mut().find(|(s, _)| *s == site) {
            Some((_, n)) => *n += 1,
            None => out.push((site, 1)),
        }
    }
    out
}

fn rejected(rejection: Rejection) -> Response {
    let status = StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, Json(json!({ "error": rejection.to_string() }))).into_response();
    if rejection == Rejection::BodyTooLarge {
        // The rest of the body is left unread, so the connection cannot carry another request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The client's IP behind `hops` trusted proxies: each appends to `X-Forwarded-For` the address
/// it got the request from, so the client's is the `hops`-th from the right, and whatever the
/// client wrote itself stands left of it. With fewer addresses than hops, the leftmost; with no
/// trusted proxy, or no usable header, the peer's address. The IP feeds the visitor id and is
/// never stored or logged.
fn client_ip(headers: &HeaderMap, peer: IpAddr, hops: u8) -> IpAddr {
    if hops == 0 {
        return peer;
    }
    let all: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let at = all.len().saturating_sub(usize::from(hops));
    all.get(at).and_then(|a| a.parse().ok()).unwrap_or(peer)
}

/// A random 128-bit id (for the first event of a request, or a counted drop).
pub(crate) fn random_id() -> Result<u128, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for an event id: {e}"))?;
    Ok(u128::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_of(forwarded: &[&str], hops: u8) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).expect("a header value"));
        }
        client_ip(&headers, "10.9.9.9".parse().expect("an address"), hops).to_string()
    }

    #[test]
    fn the_client_is_the_address_the_trusted_hops_appended() {
        // Without a trusted proxy the header is the client's own word: ignored.
        assert_eq!(ip_of(&["1.1.1.1"], 0), "10.9.9.9");
        // One proxy appended the client's address after what the client forged.
        assert_eq!(ip_of(&["6.6.6.6, 1.1.1.1"], 1), "1.1.1.1");
        // Two proxies: the client's address, then the first proxy's.
        assert_eq!(ip_of(&["6.6.6.6, 1.1.1.1, 172.16.0.1"], 2), "1.1.1.1");
        // Several header lines count as one list.
        assert_eq!(ip_of(&["6.6.6.6", "1.1.1.1"], 1), "1.1.1.1");
        // Fewer addresses than hops: the leftmost; garbage: the peer.
        assert_eq!(ip_of(&["1.1.1.1"], 3), "1.1.1.1");
        assert_eq!(ip_of(&["not an ip"], 1), "10.9.9.9");
        assert_eq!(ip_of(&[], 1), "10.9.9.9");
    }
}
