//! `visitorId(salt, site, ip, userAgent)` and `route(site, ip, userAgent)`: the model's keyed
//! hashes, for hosts and tests.

use crate::js::bytes16;
use std::net::IpAddr;
use tally_model::visitor::{self, Salt};
use wasm_bindgen::prelude::*;

/// The visitor id of (site id, IP, user agent) under a 16-byte salt, as a `bigint`. Throws on
/// a salt of another length or an unreadable IP.
#[wasm_bindgen(js_name = visitorId)]
pub fn visitor_id(
    salt: &[u8],
    site: &str,
    ip: &str,
    #[wasm_bindgen(js_name = userAgent)] user_agent: &str,
) -> Result<u64, JsError> {
    let salt = Salt(bytes16(&js_sys::Uint8Array::from(salt).into(), "salt")?);
    let ip: IpAddr = ip.trim().parse().map_err(|_| JsError::new(&format!("not an IP address: {ip:?}")))?;
    Ok(visitor::visitor_id(&salt, site, ip, user_agent))
}

/// The route of (site id, IP, user agent) as a `bigint`: its remainder by the sub-partition
/// count is the sub-partition `ingest` packs the visitor's events under, the same on every day.
/// Throws on an unreadable IP.
#[wasm_bindgen(js_name = route)]
pub fn route(site: &str, ip: &str, #[wasm_bindgen(js_name = userAgent)] user_agent: &str) -> Result<u64, JsError> {
    let ip: IpAddr = ip.trim().parse().map_err(|_| JsError::new(&format!("not an IP address: {ip:?}")))?;
    Ok(visitor::route(site, ip, user_agent))
}
