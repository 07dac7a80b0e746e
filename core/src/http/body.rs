//! Reading a bounded request body for the JSON APIs: at most a limit, else a 413; a larger body
//! is read on (and dropped) up to [`MAX_DRAINED_BYTES`], so that the client, still sending, gets
//! its 413 rather than a reset; a body that stops arriving is a 408.

use super::error::{ApiError, is_body_timeout};
use crate::query::limits::MAX_DRAINED_BYTES;
use axum::body::{Body, Bytes, HttpBody};

/// The body, if it is at most `max` bytes; `what` names it in the errors ("a query body").
pub async fn read_bounded(mut body: Body, max: usize, what: &str) -> Result<Bytes, ApiError> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            if is_body_timeout(&e) {
                ApiError::BodyTimeout
            } else {
                ApiError::BadRequest(format!("reading {what}: {e}"))
            }
        })?;
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            kept.extend_from_slice(&data);
        } else if seen > MAX_DRAINED_BYTES {
            break;
        }
    }
    if seen > max {
        return Err(ApiError::TooLarge(format!("{what} is at most {max} bytes")));
    }
    Ok(Bytes::from(kept))
}
