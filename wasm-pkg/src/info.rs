//! `formatInfo()`: the versions and limits of the formats this build reads and writes.

use crate::js::to_js;
use crate::types::FormatInfo;
use serde::Serialize;
use tally_model::{codec, limits, record};
use wasm_bindgen::prelude::*;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    record_version: u8,
    entry_version: u8,
    max_record_bytes: u32,
    max_body_bytes: u32,
    max_batch_events: u32,
}

/// The record and entry version bytes and the size limits (`FormatInfo`).
#[wasm_bindgen(js_name = formatInfo)]
pub fn format_info() -> Result<FormatInfo, JsError> {
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let info = Info {
        record_version: record::RECORD_VERSION,
        entry_version: codec::VERSION,
        max_record_bytes: small(record::MAX_RECORD_BYTES),
        max_body_bytes: small(limits::MAX_BODY_BYTES),
        max_batch_events: small(limits::MAX_BATCH_EVENTS),
    };
    Ok(to_js(&info)?.unchecked_into())
}
