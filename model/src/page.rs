//! Page URL reduction: hostname, normalised path, UTM parameters, the `ref` parameter and ad
//! click ids.

/// Longest query-parameter value kept, in characters; longer values are truncated.
const MAX_PARAM_CHARS: usize = 2000;

/// The five UTM parameters of a page URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Utm {
    /// `utm_source`.
    pub source: Option<String>,
    /// `utm_medium`.
    pub medium: Option<String>,
    /// `utm_campaign`.
    pub campaign: Option<String>,
    /// `utm_content`.
    pub content: Option<String>,
    /// `utm_term`.
    pub term: Option<String>,
}

/// A page URL reduced to what analytics keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Lower-case host name without a leading "www.", a trailing dot or a port.
    pub hostname: String,
    /// Normalised path (see [`normalize_path`]): starts with "/", no query, no fragment.
    pub path: String,
    /// UTM parameters.
    pub utm: Utm,
    /// The `ref` query parameter, or `source` when there is no `ref` (as Plausible does).
    pub ref_param: Option<String>,
    /// Which ad click ids (`gclid`, `msclkid`) the URL carried, for the visit's channel.
    pub click: crate::channel::ClickId,
}

/// Why a page URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    /// Not a URL at all.
    Unparseable,
    /// A scheme other than http or https.
    NotHttp,
    /// No host, an empty host, or an empty authority such as `http:///path`.
    NoHost,
}

/// Parses a page URL into hostname, path, UTM and ref dimensions.
///
/// Only `utm_source`, `utm_medium`, `utm_campaign`, `utm_content`, `utm_term`, `ref`,
/// `source`, `gclid` and `msclkid` (whether present) are read from the query; their values are decoded and trimmed, empty values
/// count as absent, and the first non-empty occurrence of a parameter wins. The rest of the
/// query and the fragment are dropped. An http(s) URL must spell its host after `//`:
/// `http:///x` and `http:x` (which WHATWG parsing would repair) are refused with
/// [`PageError::NoHost`].
pub fn parse_page(url: &str) -> Result<Page, PageError> {
    parse_page_in_mode(url, false)
}

/// [`parse_page`], and for a tracker in hash mode (Plausible's `h`), the URL's fragment kept in
/// the path after a `#` (`/app#/settings`), as Plausible keeps it; an empty fragment adds nothing.
pub fn parse_page_in_mode(url: &str, hash_mode: bool) -> Result<Page, PageError> {
    let raw = url.trim();
    let parsed = url::Url::parse(raw).map_err(|e| match e {
        url::ParseError::EmptyHost => PageError::NoHost,
        _ => PageError::Unparseable,
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(PageError::NotHttp);
    }
    let hostname = parsed.host_str().map(normalize_host).unwrap_or_default();
    if hostname.is_empty() || !has_authority(raw) {
        return Err(PageError::NoHost);
    }
    let param = |names: &[&str]| names.iter().find_map(|n| query_param(&parsed, n));
    let mut path = normalize_path(parsed.path());
    if let Some(fragment) = parsed.fragment().filter(|f| hash_mode && !f.is_empty()) {
        path.push('#');
        path.push_str(fragment);
    }
    Ok(Page {
        hostname,
        path,
        utm: Utm {
            source: param(&["utm_source"]),
            medium: param(&["utm_medium"]),
            campaign: param(&["utm_campaign"]),
            content: param(&["utm_content"]),
            term: param(&["utm_term"]),
        },
        ref_param: param(&["ref", "source"]),
        click: crate::channel::ClickId { gclid: param(&["gclid"]).is_some(), msclkid: param(&["msclkid"]).is_some() },
    })
}

/// Normalises a path: ensures a leading "/" and removes trailing slashes except for the
/// root. Percent-encoding is left as it is. Idempotent.
pub fn normalize_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let mut out = String::with_capacity(trimmed.len() + 1);
    if !trimmed.starts_with('/') {
        out.push('/');
    }
    out.push_str(trimmed);
    out
}

/// Lower-cases a host and strips a leading "www." and trailing dots.
fn normalize_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    host.trim_end_matches('.').to_string()
}

/// Whether the raw URL has exactly two slashes (or backslashes) after its scheme and then
/// a non-empty authority.
fn has_authority(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once(':') else {
        return false;
    };
    let mut chars = rest.chars().map(|c| if c == '\\' { '/' } else { c });
    chars.next() == Some('/') && chars.next() == Some('/') && !matches!(chars.next(), Some('/') | None)
}

/// The first non-empty value of a query parameter, decoded, trimmed and truncated.
fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().filter(|(key, _)| key == name).find_map(|(_, value)| clean_value(&value))
}

/// Trims a parameter value and truncates it to [`MAX_PARAM_CHARS`]; empty gives `None`.
fn clean_value(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some(value.chars().take(MAX_PARAM_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(url: &str) -> Page {
        parse_page(url).expect("test URL should parse")
    }

    #[test]
    fn plain_url() {
        let p = page("https://example.com/blog/post");
        assert_eq!(p.hostname, "example.com");
        assert_eq!(p.path, "/blog/post");
        assert_eq!(p.utm, Utm::default());
        assert_eq!(p.ref_param, None);
    }

    #[test]
    fn www_and_case_in_host() {
        let p = page("HTTP://WWW.Example.COM./About");
        assert_eq!(p.hostname, "example.com");
        assert_eq!(p.path, "/About");
        assert_eq!(page("http://www.example.com:8080/").hostname, "example.com");
    }

    #[test]
    fn utm_parameters() {
        let p = page(
            "https://example.com/?utm_source=news%20letter&utm_medium=email&utm_campaign=spring+sale\
             &utm_content=%20button%20&utm_term=shoes&other=1",
        );
        let want = Utm {
            source: Some("news letter".into()),
            medium: Some("email".into()),
            campaign: Some("spring sale".into()),
            content: Some("button".into()),
            term: Some("shoes".into()),
        };
        assert_eq!(p.utm, want);
        assert_eq!(p.path, "/");
    }

    #[test]
    fn empty_and_repeated_parameters() {
        let p = page("https://example.com/?utm_source=&utm_medium=%20&utm_term=&utm_term=b&utm_term=c");
        assert_eq!(p.utm.source, None);
        assert_eq!(p.utm.medium, None);
        assert_eq!(p.utm.term, Some("b".into()));
    }

    #[test]
    fn long_values_are_truncated() {
        let long = "é".repeat(MAX_PARAM_CHARS + 10);
        let p = page(&format!("https://example.com/?utm_campaign={long}"));
        let kept = p.utm.campaign.expect("campaign kept");
        assert_eq!(kept.chars().count(), MAX_PARAM_CHARS);
    }

    #[test]
    fn ref_and_source() {
        assert_eq!(page("https://example.com/?ref=producthunt").ref_param, Some("producthunt".into()));
        assert_eq!(page("https://example.com/?source=hn").ref_param, Some("hn".into()));
        assert_eq!(page("https://example.com/?source=hn&ref=ph").ref_param, Some("ph".into()));
        assert_eq!(page("https://example.com/?ref=&source=hn").ref_param, Some("hn".into()));
    }

    #[test]
    fn hash_mode_keeps_the_fragment_in_the_path() {
        let path = |url: &str, hash_mode| parse_page_in_mode(url, hash_mode).expect("valid").path;
        assert_eq!(path("https://a.com/#/settings/", true), "/#/settings/");
        assert_eq!(path("https://a.com/app/?q=1#/a?b=c", true), "/app#/a?b=c", "the fragment as sent");
        assert_eq!(path("https://a.com/app#", true), "/app", "an empty fragment adds nothing");
        assert_eq!(path("https://a.com/app", true), "/app");
        assert_eq!(path("https://a.com/app#/settings", false), "/app");
    }

    #[test]
    fn fragment_and_query_dropped() {
        let p = page("https://example.com/docs?page=2#install");
        assert_eq!(p.path, "/docs");
        assert_eq!(page("https://example.com/#/app/route").path, "/");
    }

    #[test]
    fn trailing_slash_and_root() {
        assert_eq!(page("https://example.com/docs/").path, "/docs");
        assert_eq!(page("https://example.com/docs//").path, "/docs");
        assert_eq!(page("https://example.com").path, "/");
        assert_eq!(page("https://example.com/").path, "/");
    }

    #[test]
    fn percent_encoding_kept() {
        assert_eq!(page("https://example.com/caf%C3%A9/").path, "/caf%C3%A9");
        assert_eq!(page("https://example.com/café").path, "/caf%C3%A9");
    }

    #[test]
    fn refused_urls() {
        assert_eq!(parse_page("not a url"), Err(PageError::Unparseable));
        assert_eq!(parse_page(""), Err(PageError::Unparseable));
        assert_eq!(parse_page("ftp://x"), Err(PageError::NotHttp));
        assert_eq!(parse_page("file:///etc/passwd"), Err(PageError::NotHttp));
        assert_eq!(parse_page("http:///nohost"), Err(PageError::NoHost));
        assert_eq!(parse_page("http://"), Err(PageError::NoHost));
        assert_eq!(parse_page("http:nohost"), Err(PageError::NoHost));
        assert_eq!(parse_page("http://www./"), Err(PageError::NoHost));
    }

    #[test]
    fn normalize_path_cases() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("///"), "/");
        assert_eq!(normalize_path("a/b/"), "/a/b");
        assert_eq!(normalize_path("/a%20b"), "/a%20b");
    }

    proptest::proptest! {
        #[test]
        fn normalize_path_is_idempotent(p in "\\PC*") {
            let once = normalize_path(&p);
            proptest::prop_assert!(once.starts_with('/'));
            proptest::prop_assert_eq!(normalize_path(&once), once);
        }

        #[test]
        fn parse_page_never_panics(u in "\\PC*") {
            let _ = parse_page(&u);
        }

        #[test]
        fn parse_page_never_panics_on_url_like(path in "[/a-z%?#&=.\\\\ ]{0,40}") {
            if let Ok(p) = parse_page(&format!("https://example.com{path}")) {
                proptest::prop_assert!(p.path.starts_with('/'));
            }
        }
    }
}
