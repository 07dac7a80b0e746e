//! `GET /js/tally.js`: the tracking script, the same bytes `tally serve` serves
//! ([`tally_model::tracker::SCRIPT`]), so a site can load it from the edge it sends events to.

use tally_model::tracker;
use worker::{Response, Result};

/// The script, with its content type and cache lifetime; any origin may load it.
pub fn script() -> Result<Response> {
    let response = Response::ok(tracker::SCRIPT)?;
    let headers = response.headers();
    headers.set("content-type", tracker::CONTENT_TYPE)?;
    headers.set("cache-control", tracker::CACHE_CONTROL)?;
    headers.set("access-control-allow-origin", "*")?;
    Ok(response)
}
