//! Site ids: a site is named by its domain, as in Plausible.

/// Longest domain accepted as a site id (the DNS limit).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Normalises a domain into a site id: trimmed, lower-cased, without a leading `www.` or a
/// trailing dot. Returns `None` unless the result is a plausible host name (labels of ASCII
/// letters, digits and `-`, separated by dots, optionally ending in a port-free name).
pub fn normalize_domain(raw: &str) -> Option<String> {
    let lower = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let domain = lower.trim_start_matches("www.");
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let ok = !domain.is_empty() && domain.len() <= MAX_DOMAIN_LEN && domain.split('.').all(valid_label);
    ok.then(|| domain.to_owned())
}

#[cfg(test)]
mod tests {
    use super::normalize_domain;

    #[test]
    fn normalises_case_www_and_trailing_dot() {
        assert_eq!(normalize_domain(" WWW.Example.COM. ").as_deref(), Some("example.com"));
        assert_eq!(normalize_domain("shop.example.co.uk").as_deref(), Some("shop.example.co.uk"));
        assert_eq!(normalize_domain("localhost").as_deref(), Some("localhost"));
    }

    #[test]
    fn rejects_what_is_not_a_host_name() {
        for bad in ["", "exa mple.com", "example..com", "-a.com", "a_b.com", "http://a.com", "a.com/x", "a.com:80"] {
            assert_eq!(normalize_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn normalising_twice_equals_once() {
        let once = normalize_domain("WWW.Foo.Example.").expect("valid");
        assert_eq!(normalize_domain(&once).as_deref(), Some(once.as_str()));
    }
}
