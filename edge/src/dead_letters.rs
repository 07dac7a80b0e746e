//! Dead letters: messages that exhausted their deliveries are parked in R2 until an operator
//! replays them into the events queue (`edge/scripts/replay-dead-letters`).
//!
//! The dead-letter queue's consumer writes each message's bytes to the `DEAD_LETTERS` bucket
//! under `dead/<sent ms>-<message id>` and acknowledges it only once stored. The admin routes
//! need `Authorization: Bearer <ADMIN_TOKEN>` (a secret; without it they are disabled):
//! `GET /admin/dead-letters` counts parked messages, `POST /admin/dead-letters/replay?limit=N`
//! sends up to N of them back to the events queue, deleting each only after its send resolved.

use crate::{config, queue_message};
use serde_json::json;
use sha2::{Digest, Sha256};
use wasm_bindgen::JsValue;
use worker::{Data, Env, Error, MessageBatch, MessageExt, Request, Response, Result};

const PREFIX: &str = "dead/";
const DEFAULT_REPLAY_LIMIT: u32 = 100;
const MAX_REPLAY_LIMIT: u32 = 1_000;

/// Consumes the dead-letter queue: parks every message in R2.
pub async fn park(batch: &MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let bucket = env.bucket(config::binding::DEAD_LETTERS)?;
    for message in batch.raw_iter() {
        let bytes = match queue_message::bytes(&message.body()) {
            Ok(bytes) => bytes,
            Err(error) => {
                // Not ours to read; it stays in the dead-letter queue, never silently dropped.
                worker::console_error!("dead letter {} cannot be parked: {error}", message.id());
                message.retry();
                continue;
            }
        };
        let key = format!("{PREFIX}{:013}-{}", message.timestamp().as_millis(), message.id());
        match bucket.put(&key, Data::Bytes(bytes)).execute().await {
            Ok(_) => {
                worker::console_warn!("parked dead letter {key}");
                message.ack();
            }
            Err(error) => {
                worker::console_error!("could not park dead letter {key}: {error}");
                message.retry();
            }
        }
    }
    Ok(())
}

/// `GET /admin/dead-letters`: how many messages are parked.
pub async fn count(req: &Request, env: &Env) -> Result<Response> {
    if let Some(refusal) = authorize(req, env)? {
        return Ok(refusal);
    }
    let bucket = env.bucket(config::binding::DEAD_LETTERS)?;
    let mut parked = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let mut list = bucket.list().prefix(PREFIX.to_owned());
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await?;
        parked += page.objects().len();
        match page.cursor() {
            Some(c) if page.truncated() => cursor = Some(c),
            _ => break,
        }
    }
    Response::from_json(&json!({ "parked": parked }))
}

/// `POST /admin/dead-letters/replay?limit=N`: sends up to N parked messages (oldest first) back
/// to the events queue. Answers how many were replayed and whether more remain.
pub async fn replay(req: &Request, env: &Env) -> Result<Response> {
    if let Some(refusal) = authorize(req, env)? {
        return Ok(refusal);
    }
    let limit = req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == "limit")
        .map(|(_, v)| v.parse::<u32>().map_err(|_| Error::RustError("limit is not a number".into())))
        .transpose()?
        .unwrap_or(DEFAULT_REPLAY_LIMIT)
        .clamp(1, MAX_REPLAY_LIMIT);
    let bucket = env.bucket(config::binding::DEAD_LETTERS)?;
    let queue = env.queue(config::binding::EVENTS)?;
    let page = bucket.list().prefix(PREFIX.to_owned()).limit(limit).execute().await?;
    let mut replayed = 0usize;
    for object in page.objects() {
        let key = object.key();
        let Some(stored) = bucket.get(&key).execute().await? else { continue };
        let Some(body) = stored.body() else { continue };
        let bytes = body.bytes().await?;
        queue_message::send(&queue, &bytes).await?;
        bucket.delete(&key).await?;
        replayed += 1;
    }
    Response::from_json(&json!({ "replayed": replayed, "more": page.truncated() }))
}

/// None if the request carries the admin token; else the refusal to send.
fn authorize(req: &Request, env: &Env) -> Result<Option<Response>> {
    let Ok(token) = env.secret("ADMIN_TOKEN").map(|t| t.to_string()) else {
        return Response::error("admin routes are disabled: set the ADMIN_TOKEN secret", 503).map(Some);
    };
    let given = req.headers().get("authorization")?.unwrap_or_default();
    let given = given.strip_prefix("Bearer ").unwrap_or_default();
    // Compare digests, so the time taken says nothing about the token.
    if token.is_empty() || Sha256::digest(given.as_bytes()) != Sha256::digest(token.as_bytes()) {
        return Response::error("unauthorized", 401).map(Some);
    }
    Ok(None)
}
