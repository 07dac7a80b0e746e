//! Bearer-key authentication and per-site scoping of reads.

use super::error::ApiError;
use crate::registry::{KeyScope, Site, Snapshot};
use axum::http::{HeaderMap, header};
use tally_model::site::normalize_domain;

/// The site an authenticated key may read: the site must be registered and in the key's
/// scope. An unknown site and a site out of scope get the same [`ApiError::SiteNotFound`].
pub fn authorize<'a>(registry: &'a Snapshot, scope: &KeyScope, site_id: &str) -> Result<&'a Site, ApiError> {
    let domain = normalize_domain(site_id).ok_or(ApiError::SiteNotFound)?;
    if !scope.sites.contains(&domain) {
        return Err(ApiError::SiteNotFound);
    }
    registry.site(&domain).ok_or(ApiError::SiteNotFound)
}

/// The valid key the request carries.
pub fn authenticate<'a>(registry: &'a Snapshot, headers: &HeaderMap) -> Result<&'a KeyScope, ApiError> {
    bearer(headers).and_then(|token| registry.key_scope(token)).ok_or(ApiError::Unauthorized)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}
