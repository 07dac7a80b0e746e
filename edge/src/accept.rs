//! `POST /api/event`: check and enrich with the model, rate-limit, hand to the queue, answer.
//!
//! The statuses, error reasons and `X-Tally-*` headers are those of `tally serve` for the same
//! body (the shared bad-input vectors check it). The answer is 202 only after the queue send has
//! resolved; anything that stops the hand-off is a 503, so the tracker may retry.

use crate::{config, cors, queue_message, rate_limit, salts, sites};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use tally_model::event::LogEntry;
use tally_model::hostnames;
use tally_model::ingest::{self, RequestContext, answer_counts};
use tally_model::limits::MAX_BODY_BYTES;
use tally_model::record;
use tally_model::reject::Rejection;
use worker::{Date, Env, Request, Response, Result};

/// Handles one tracking request.
pub async fn event(mut req: Request, env: &Env) -> Result<Response> {
    let declared = req.headers().get("content-length")?.and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return rejected(Rejection::BodyTooLarge);
    }
    let body = req.bytes().await?;
    let headers = req.headers();
    let content_type = headers.get("content-type")?;
    let user_agent = headers.get("user-agent")?.unwrap_or_default();
    // Cloudflare sets CF-Connecting-IP; the IP feeds the visitor id and rate-limit key only.
    let ip = headers.get("cf-connecting-ip")?.and_then(|v| v.parse().ok()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let cf = req.cf();
    let geo = |field: fn(&worker::Cf) -> Option<String>| cf.and_then(field);
    let (country, region, city) = (geo(worker::Cf::country), geo(worker::Cf::region_code), geo(worker::Cf::city));
    let now_ms = Date::now().as_millis();

    let parsed = match ingest::parse(content_type.as_deref(), &body) {
        Ok(parsed) => parsed,
        Err(rejection) => return rejected(rejection),
    };
    let domains: Vec<String> = parsed.domains().into_iter().map(str::to_owned).collect();
    let (settings, salts) = match (sites::lookup(env, &domains, now_ms).await, salts::salts_at(env, now_ms).await) {
        (Ok(settings), Ok(salts)) => (settings, salts),
        (Err(error), _) | (_, Err(error)) => return unavailable(&error),
    };
    let registered: Vec<(&str, &sites::SiteSettings)> =
        settings.iter().filter_map(|(domain, s)| Some((domain.as_str(), s.as_ref()?))).collect();
    if !rate_limit::allow(env, &salts, ip, &user_agent, &registered).await {
        return error_response(429, "rate_limited");
    }

    let ctx = RequestContext {
        content_type: content_type.as_deref(),
        user_agent: &user_agent,
        ip,
        country: country.as_deref(),
        region: region.as_deref(),
        city: city.as_deref(),
        received_ms: now_ms as i64,
        salts: &salts,
        first_event_id: random_id()?,
    };
    let mut entries = parsed.enrich(&ctx, |domain| matches!(settings.get(domain), Some(Some(_))));
    hostnames::enforce(&mut entries, |site| Some(settings.get(site)?.as_ref()?.allowed_hostnames.as_slice()));

    // The sub-partition of each entry, from the IP that the queue consumer will not see.
    let sub_partitions = config::sub_partitions(env)?;
    let subs: Vec<u16> = entries.iter().map(|e| record::sub_of_request(e, ip, sub_partitions)).collect();
    let message = queue_message::encode(&entries, &subs);
    if let Err(error) = queue_message::send(&env.queue(config::binding::EVENTS)?, &message).await {
        return unavailable(&error);
    }
    accepted(&entries)
}

/// 202 with the accepted count and the drop reasons in body order, as `tally serve` answers.
fn accepted(entries: &[LogEntry]) -> Result<Response> {
    let (accepted, dropped) = answer_counts(entries);
    let response = Response::ok("ok")?.with_status(202);
    let headers = response.headers();
    cors::allow(headers)?;
    headers.set("x-tally-accepted", &accepted.to_string())?;
    if !dropped.is_empty() {
        headers.set("x-tally-dropped", &dropped.join(", "))?;
    }
    Ok(response)
}

fn rejected(rejection: Rejection) -> Result<Response> {
    error_response(rejection.status(), &rejection.to_string())
}

/// The hand-off could not be made: nothing was accepted, the client should retry.
fn unavailable(error: &worker::Error) -> Result<Response> {
    worker::console_error!("ingest unavailable: {error}");
    error_response(503, "unavailable")
}

fn error_response(status: u16, reason: &str) -> Result<Response> {
    let mut body = HashMap::new();
    body.insert("error", reason);
    let response = Response::from_json(&body)?.with_status(status);
    cors::allow(response.headers())?;
    Ok(response)
}

fn random_id() -> Result<u128> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| worker::Error::RustError(format!("no randomness for an event id: {e}")))?;
    Ok(u128::from_le_bytes(bytes))
}
