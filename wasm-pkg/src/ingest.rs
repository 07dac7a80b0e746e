//! `ingest(body, ctx, sites, subPartitions)`: the edge's whole decision for one request, with
//! its log entries packed into Kinesis records, answered as the native server answers.

use crate::context::Context;
use crate::js::to_js;
use crate::sites::SiteCheck;
use crate::types::{IngestContext, IngestResult, Sites};
use serde::Serialize;
use std::net::IpAddr;
use tally_model::event::LogEntry;
use tally_model::ingest::answer_counts;
use tally_model::record::{self, Record};
use tally_model::reject::Rejection;
use wasm_bindgen::prelude::*;

/// The answer to one body (see `IngestResult` in the TypeScript types).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// At most a batch (25), so a JavaScript number rather than a bigint.
    accepted: u32,
    dropped: Vec<&'static str>,
    records: Vec<PackedRecord>,
}

/// One Kinesis record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PackedRecord {
    partition_key: String,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

impl Answer {
    fn rejected(rejection: Rejection) -> Answer {
        let error = Some(rejection.to_string());
        Answer { status: rejection.status(), error, accepted: 0, dropped: Vec::new(), records: Vec::new() }
    }

    fn taken(entries: &[LogEntry], ip: IpAddr, sub_partitions: u16) -> Answer {
        let (accepted, dropped) = answer_counts(entries);
        let accepted = u32::try_from(accepted).unwrap_or(u32::MAX);
        let records = record::pack(entries, |entry| record::sub_of_request(entry, ip, sub_partitions))
            .into_iter()
            .map(|Record { partition_key, data }| PackedRecord { partition_key, data })
            .collect();
        Answer { status: 202, error: None, accepted, dropped, records }
    }
}

/// Checks, enriches and packs one request body. Never throws for bad input (that is a 4xx
/// result); throws for a malformed `ctx`, `sites` or `subPartitions`, or rethrows what a
/// `sites` predicate threw.
#[wasm_bindgen(js_name = ingest)]
pub fn ingest(
    body: &[u8],
    ctx: &IngestContext,
    sites: &Sites,
    #[wasm_bindgen(js_name = subPartitions)] sub_partitions: u32,
) -> Result<IngestResult, JsValue> {
    let context = Context::read(ctx)?;
    let sites = SiteCheck::read(sites)?;
    let sub_partitions = u16::try_from(sub_partitions)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| JsError::new("`subPartitions` must be in 1..=65535"))?;
    let answer = decide(body, &context, &sites, sub_partitions);
    if let Some(thrown) = sites.thrown() {
        return Err(thrown);
    }
    Ok(to_js(&answer)?.unchecked_into())
}

fn decide(body: &[u8], context: &Context, sites: &SiteCheck, sub_partitions: u16) -> Answer {
    let request = context.request();
    match tally_model::ingest::ingest(body, &request, |site| sites.contains(site)) {
        Ok(entries) => Answer::taken(&entries, request.ip, sub_partitions),
        Err(rejection) => Answer::rejected(rejection),
    }
}
