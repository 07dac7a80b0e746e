//! The queue message: one request's log entries with the sub-partition of each (picked from the
//! request's IP by `record::sub_of_request`, which the queue consumer no longer knows), in the
//! format of `record::with_subs`, sent as bytes. A message of the release before (the record
//! data alone) still reads: its events go to the sub-partition of their visitor id, as they did
//! then.
//!
//! A request body is at most 64 KiB, and its entries encode to about as much, well inside a
//! queue message's 128 KB.

use js_sys::Uint8Array;
use tally_model::event::LogEntry;
use tally_model::{codec, record};
use wasm_bindgen::{JsCast, JsValue};
use worker::{Error, Queue, QueueContentType, RawMessageBuilder, Result};

/// The message body for these entries, each with its sub-partition (`subs`, as many).
pub fn encode(entries: &[LogEntry], subs: &[u16]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = entries.iter().map(codec::encode).collect();
    record::with_subs(&encoded, subs)
}

/// The entries of a message body, each with its sub-partition (`None` in a message of the
/// release before, which did not carry them).
pub fn decode(body: &JsValue) -> Result<Vec<(LogEntry, Option<u16>)>> {
    record::unpack_with_subs(&bytes(body)?).map_err(|e| Error::RustError(format!("queue message: {e}")))
}

/// The bytes of a message body as the queue delivers it.
pub fn bytes(body: &JsValue) -> Result<Vec<u8>> {
    body.dyn_ref::<Uint8Array>()
        .map(Uint8Array::to_vec)
        .or_else(|| body.dyn_ref::<js_sys::ArrayBuffer>().map(|b| Uint8Array::new(b).to_vec()))
        .ok_or_else(|| Error::RustError("queue message is not bytes".into()))
}

/// Sends a message body; resolves once the queue has stored it.
pub async fn send(queue: &Queue, body: &[u8]) -> Result<()> {
    let message = RawMessageBuilder::new(Uint8Array::from(body).into()).build_with_content_type(QueueContentType::V8);
    queue.send_raw(message).await
}
