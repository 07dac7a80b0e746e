//! CORS for the public ingest endpoint: any origin may post events, as with `tally serve`.

use worker::{Headers, Response, Result};

/// Adds the CORS headers every ingest answer carries.
pub fn allow(headers: &Headers) -> Result<()> {
    headers.set("access-control-allow-origin", "*")?;
    Ok(())
}

/// The answer to a browser's preflight `OPTIONS /api/event`.
pub fn preflight() -> Result<Response> {
    let response = Response::empty()?.with_status(204);
    let headers = response.headers();
    allow(headers)?;
    headers.set("access-control-allow-methods", "POST,OPTIONS")?;
    headers.set("access-control-allow-headers", "*")?;
    headers.set("access-control-max-age", "86400")?;
    Ok(response)
}
