//! Which page hosts a site accepts events from, per the site's settings at the edge.
//!
//! An entry `example.com` allows that host only; `*.example.com` allows its subdomains and
//! itself. No entries: every host is allowed (as `tally serve` does). Hosts are compared the
//! way [`crate::page`] normalises them: lower case, no leading `www.`.

use crate::event::{Drop, LogEntry};
use crate::page;
use crate::reject::DropReason;

/// Whether `host` (already normalised) matches one of `allowed`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    allowed.iter().any(|pattern| {
        let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(base) => {
                let base = base.strip_prefix("www.").unwrap_or(base);
                host == base || host.strip_suffix(base).is_some_and(|rest| rest.ends_with('.'))
            }
            None => host == pattern.strip_prefix("www.").unwrap_or(&pattern),
        }
    })
}

/// Turns every event whose page host its site does not allow into a
/// [`DropReason::HostnameNotAllowed`] drop. `allowed` gives a site's list (None: no limit).
pub fn enforce<'a>(entries: &mut [LogEntry], allowed: impl Fn(&str) -> Option<&'a [String]>) {
    for entry in entries.iter_mut() {
        let LogEntry::Event(event) = entry else { continue };
        let Some(list) = allowed(&event.site) else { continue };
        let host = page::parse_page(&event.url).map(|p| p.hostname).unwrap_or_default();
        if !host_allowed(&host, list) {
            *entry = LogEntry::Drop(Drop {
                id: Some(event.id),
                site: Some(event.site.clone()),
                reason: DropReason::HostnameNotAllowed,
                received_ms: event.received_ms,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_wildcard_and_empty_lists() {
        assert!(host_allowed("shop.com", &[]));
        assert!(host_allowed("shop.com", &list(&["shop.com"])));
        assert!(host_allowed("shop.com", &list(&["www.shop.com"])), "www. is normalised away");
        assert!(!host_allowed("blog.shop.com", &list(&["shop.com"])));
        assert!(host_allowed("blog.shop.com", &list(&["*.shop.com"])));
        assert!(host_allowed("shop.com", &list(&["*.shop.com"])));
        assert!(!host_allowed("evilshop.com", &list(&["*.shop.com"])));
        assert!(!host_allowed("shop.com.evil.io", &list(&["shop.com", "*.shop.com"])));
        assert!(host_allowed("shop.com", &list(&[" SHOP.com. "])));
    }
}
