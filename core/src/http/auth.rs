//! Bearer-key authentication (known, not expired; each use noted for `last_used`), per-site
//! scoping of reads, and the admin scope check.

use super::error::ApiError;
use crate::registry::{KeyScope, Scope, Site, Snapshot};
use axum::http::{HeaderMap, header};
use tally_model::site::normalize_domain;

/// The answer of an admin route to a stats key.
pub const READ_ONLY_KEY: &str = "this key is read-only (scope stats); admin routes need an admin key";

/// The site an authenticated key may read: the site must be registered and in the key's
/// scope. An unknown site and a site out of scope get the same [`ApiError::SiteNotFound`].
pub fn authorize<'a>(registry: &'a Snapshot, scope: &KeyScope, site_id: &str) -> Result<&'a Site, ApiError> {
    let domain = normalize_domain(site_id).ok_or(ApiError::SiteNotFound)?;
    if !scope.sites.contains(&domain) {
        return Err(ApiError::SiteNotFound);
    }
    registry.site(&domain).ok_or(ApiError::SiteNotFound)
}

/// The valid key the request carries: known (else [`ApiError::Unauthorized`]) and not expired
/// at this moment (else [`ApiError::KeyExpired`], also a 401). Notes the use, in memory, for
/// the key's `last_used`.
pub fn authenticate<'a>(registry: &'a Snapshot, headers: &HeaderMap) -> Result<&'a KeyScope, ApiError> {
    let key = bearer(headers).and_then(|token| registry.key_scope(token)).ok_or(ApiError::Unauthorized)?;
    if key.is_expired_at(jiff::Timestamp::now()) {
        let at = key.expires.map(|at| at.to_string()).unwrap_or_default();
        return Err(ApiError::KeyExpired(at));
    }
    registry.note_use(&key.id);
    Ok(key)
}

/// The valid key the request carries ([`authenticate`]), within its rate limit (else a 429):
/// what every keyed route starts with.
pub fn rated_key<'a>(
    app: &super::AppState,
    registry: &'a Snapshot,
    headers: &HeaderMap,
) -> Result<&'a KeyScope, ApiError> {
    let key = authenticate(registry, headers)?;
    if let Some(limit) = &app.key_rate {
        limit.check(&key.id)?;
    }
    Ok(key)
}

/// Whether an authenticated key may use the admin routes: only an admin key (else 403).
pub fn require_admin(key: &KeyScope) -> Result<(), ApiError> {
    match key.scope {
        Scope::Admin => Ok(()),
        Scope::Stats => Err(ApiError::Forbidden(READ_ONLY_KEY.to_owned())),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}
