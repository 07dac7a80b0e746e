//! End-to-end tests of the edge Worker: the real Worker under workerd (`wrangler dev --env
//! test`) with its Queue, Durable Object, KV, R2 and rate limiters simulated locally, against
//! kinesalite on loopback. Events are read back from the stream and decoded with the model's
//! record codec, as the core's consumer decodes them.
//!
//! Needs the Worker built (`edge/scripts/build`) and its npm tools (`npm ci --prefix edge`);
//! `scripts/test` does both.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

#[path = "../aws/stand_ins.rs"]
#[allow(dead_code, reason = "not every helper is used here")]
mod stand_ins;

#[path = "../aws/bed.rs"]
#[allow(dead_code, reason = "not every helper is used here")]
mod bed;

#[path = "../aws/proxy.rs"]
mod proxy;

#[path = "../e2e/vectors.rs"]
mod vectors;

mod poll;
mod stream;
mod worker;

mod bad_input;
mod cpu;
mod forwarding;
mod outage;
mod pipeline;
mod settings;
