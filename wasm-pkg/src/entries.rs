//! `unpackRecord(data)`: a Kinesis record's log entries as plain JavaScript objects, for tests,
//! debugging and JavaScript consumers.

use crate::js::to_js;
use crate::types::LogEntries;
use serde::Serialize;
use tally_model::event::{Drop, DropCount, Event, LogEntry};
use tally_model::record;
use tally_model::wire::Revenue;
use wasm_bindgen::prelude::*;

/// One entry as JavaScript sees it (`LogEntry` in the TypeScript types).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum EntryView<'a> {
    Event(EventView<'a>),
    Drop(DropView<'a>),
    Drops(DropsView<'a>),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EventView<'a> {
    id: u128,
    received_ms: f64,
    site: &'a str,
    name: &'a str,
    url: &'a str,
    referrer: Option<&'a str>,
    props: &'a [(String, String)],
    revenue: Option<&'a Revenue>,
    interactive: bool,
    user_agent: &'a str,
    country: Option<&'a str>,
    visitor: VisitorView,
    region: Option<&'a str>,
    city: Option<&'a str>,
    engagement: Option<EngagementView>,
    hash_mode: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EngagementView {
    scroll_depth: Option<u8>,
    engaged_ms: u32,
}

#[derive(Debug, Serialize)]
struct VisitorView {
    current: u64,
    previous: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DropView<'a> {
    id: Option<u128>,
    site: Option<&'a str>,
    reason: &'static str,
    received_ms: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DropsView<'a> {
    id: u128,
    site: Option<&'a str>,
    reason: &'static str,
    received_ms: f64,
    count: f64,
}

fn view(entry: &LogEntry) -> EntryView<'_> {
    match entry {
        LogEntry::Event(event) => EntryView::Event(event_view(event)),
        LogEntry::Drop(Drop { id, site, reason, received_ms }) => {
            // Milliseconds since the epoch stay far below 2^53, so they are exact as a number.
            EntryView::Drop(DropView {
                id: id.map(|id| id.0),
                site: site.as_deref(),
                reason: reason.as_str(),
                received_ms: *received_ms as f64,
            })
        }
        // Counts of refused requests stay far below 2^53 as well.
        LogEntry::Drops(DropCount { id, site, reason, received_ms, count }) => EntryView::Drops(DropsView {
            id: id.0,
            site: site.as_deref(),
            reason: reason.as_str(),
            received_ms: *received_ms as f64,
            count: *count as f64,
        }),
    }
}

fn event_view(event: &Event) -> EventView<'_> {
    EventView {
        id: event.id.0,
        received_ms: event.received_ms as f64,
        site: &event.site,
        name: &event.name,
        url: &event.url,
        referrer: event.referrer.as_deref(),
        props: &event.props,
        revenue: event.revenue.as_ref(),
        interactive: event.interactive,
        user_agent: &event.user_agent,
        country: event.country.as_deref(),
        visitor: VisitorView { current: event.visitor.current, previous: event.visitor.previous },
        region: event.region.as_deref(),
        city: event.city.as_deref(),
        engagement: event.engagement.map(|e| EngagementView { scroll_depth: e.scroll_depth, engaged_ms: e.engaged_ms }),
        hash_mode: event.hash_mode,
    }
}

/// Decodes a record's data. Throws if it is not a record of a version this build knows.
#[wasm_bindgen(js_name = unpackRecord)]
pub fn unpack_record(data: &[u8]) -> Result<LogEntries, JsError> {
    let entries = record::unpack(data).map_err(|e| JsError::new(&format!("not a Tally record: {e}")))?;
    let views: Vec<EntryView<'_>> = entries.iter().map(view).collect();
    Ok(to_js(&views)?.unchecked_into())
}
