//! Tally's edge Worker: a thin adapter between Cloudflare's runtime and the model crate.
//!
//! `fetch` answers tracking requests ([`accept`]) with the same statuses as `tally serve`, serves
//! the tracking script `/js/tally.js` ([`tracker`]), and takes the operator's dead-letter
//! commands ([`dead_letters`]). `queue` forwards accepted events to Kinesis ([`forward`]) and
//! parks what exhausted its retries ([`dead_letters`]).

mod accept;
mod config;
mod cors;
mod dead_letters;
mod forward;
mod kinesis;
mod queue_message;
mod rate_limit;
mod salts;
mod sites;
mod tracker;

use worker::{Context, Env, MessageBatch, Method, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Post, "/api/event") => accept::event(req, &env).await,
        (Method::Options, "/api/event") => cors::preflight(),
        (Method::Get, "/api/health") => Response::ok("ok"),
        (Method::Get, tally_model::tracker::PATH) => tracker::script(),
        (Method::Get, "/admin/dead-letters") => dead_letters::count(&req, &env).await,
        (Method::Post, "/admin/dead-letters/replay") => dead_letters::replay(&req, &env).await,
        _ => Response::error("not found", 404),
    }
}

#[event(queue)]
async fn queue(batch: MessageBatch<wasm_bindgen::JsValue>, env: Env, _ctx: Context) -> Result<()> {
    if batch.queue() == config::dead_letter_queue(&env)? {
        dead_letters::park(&batch, &env).await
    } else {
        forward::forward(&batch, &env).await
    }
}
