//! Reads an `IngestContext` from JavaScript into what the model's `RequestContext` borrows.

use crate::js::{bytes16, optional_string, property, string};
use std::net::IpAddr;
use tally_model::ingest::RequestContext;
use tally_model::visitor::{Salt, Salts};
use wasm_bindgen::prelude::*;

/// The request's context, owned, as read from the host.
#[derive(Debug)]
pub struct Context {
    content_type: Option<String>,
    user_agent: String,
    ip: IpAddr,
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
    received_ms: i64,
    salts: Salts,
    first_event_id: u128,
}

impl Context {
    /// Reads and checks every field of an `IngestContext` object.
    pub fn read(ctx: &JsValue) -> Result<Context, JsError> {
        let ip = string(ctx, "ip")?;
        let salts = property(ctx, "salts")?;
        Ok(Context {
            content_type: optional_string(ctx, "contentType")?,
            user_agent: string(ctx, "userAgent")?,
            ip: ip.trim().parse().map_err(|_| JsError::new(&format!("`ip` is not an IP address: {ip:?}")))?,
            country: optional_string(ctx, "country")?,
            region: optional_string(ctx, "region")?,
            city: optional_string(ctx, "city")?,
            received_ms: received_ms(&property(ctx, "receivedMs")?)?,
            salts: Salts {
                current: Salt(bytes16(&property(&salts, "current")?, "salts.current")?),
                previous: Salt(bytes16(&property(&salts, "previous")?, "salts.previous")?),
            },
            first_event_id: event_id(&property(ctx, "firstEventId")?)?,
        })
    }

    /// The model's view of this context.
    pub fn request(&self) -> RequestContext<'_> {
        RequestContext {
            content_type: self.content_type.as_deref(),
            user_agent: &self.user_agent,
            ip: self.ip,
            country: self.country.as_deref(),
            region: self.region.as_deref(),
            city: self.city.as_deref(),
            received_ms: self.received_ms,
            salts: &self.salts,
            first_event_id: self.first_event_id,
        }
    }
}

/// Milliseconds since the epoch, as `Date.now()` gives them: a whole, finite number.
fn received_ms(value: &JsValue) -> Result<i64, JsError> {
    let ms = value.as_f64().filter(|ms| ms.is_finite() && ms.fract() == 0.0 && ms.abs() < 9.0e15);
    // In range and whole, so the conversion is exact.
    ms.map(|ms| ms as i64).ok_or_else(|| JsError::new("`receivedMs` must be whole milliseconds since the epoch"))
}

/// The first event id: 16 bytes read little-endian (as the native server reads its random
/// bytes), or a bigint in `0..2^128`.
pub fn event_id(value: &JsValue) -> Result<u128, JsError> {
    if value.is_bigint() {
        return u128::try_from(value.clone()).map_err(|_| JsError::new("`firstEventId` must be a bigint in 0..2^128"));
    }
    Ok(u128::from_le_bytes(bytes16(value, "firstEventId")?))
}
