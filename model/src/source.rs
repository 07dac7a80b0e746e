//! Referrer classification: which traffic source (search engine, social network or site) a
//! referrer URL stands for.

/// Known referring domains and the source name they map to. First match wins.
///
/// A plain entry matches the domain itself and every subdomain of it. An entry ending in
/// `.*` matches the brand under any country domain: `google.*` matches `google.com`,
/// `google.de`, `google.co.uk`, `google.com.au` and their subdomains.
const SOURCES: &[(&str, &str)] = &[
    // AI assistants, before the search engines whose domains they live under.
    ("chatgpt.com", "ChatGPT"),
    ("chat.openai.com", "ChatGPT"),
    ("perplexity.ai", "Perplexity"),
    ("gemini.google.com", "Gemini"),
    ("claude.ai", "Claude"),
    // Search engines.
    ("google.*", "Google"),
    ("bing.*", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("yahoo.*", "Yahoo!"),
    ("yandex.*", "Yandex"),
    ("ya.ru", "Yandex"),
    ("baidu.com", "Baidu"),
    ("ecosia.org", "Ecosia"),
    ("search.brave.com", "Brave"),
    ("qwant.com", "Qwant"),
    ("startpage.com", "Startpage"),
    ("kagi.com", "Kagi"),
    ("naver.com", "Naver"),
    ("seznam.cz", "Seznam"),
    // Social networks and communities.
    ("facebook.com", "Facebook"),
    ("fb.com", "Facebook"),
    ("fb.me", "Facebook"),
    ("instagram.com", "Instagram"),
    ("x.com", "X"),
    ("twitter.com", "X"),
    ("t.co", "X"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("reddit.com", "Reddit"),
    ("news.ycombinator.com", "Hacker News"),
    ("youtube.com", "YouTube"),
    ("youtu.be", "YouTube"),
    ("pinterest.*", "Pinterest"),
    ("pin.it", "Pinterest"),
    ("tiktok.com", "TikTok"),
    ("github.com", "GitHub"),
    ("t.me", "Telegram"),
    ("telegram.org", "Telegram"),
    ("whatsapp.com", "WhatsApp"),
    ("wa.me", "WhatsApp"),
    ("threads.net", "Threads"),
    ("threads.com", "Threads"),
    ("bsky.app", "Bluesky"),
    ("producthunt.com", "Product Hunt"),
    ("wikipedia.org", "Wikipedia"),
];

/// Second-level labels under which brands register country domains (`google.co.uk`).
const COUNTRY_SECOND_LEVELS: &[&str] = &["co", "com"];

/// A referrer that names another site: its host (lower-cased, without a leading "www.") and its
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    /// The referring host, normalised.
    pub host: String,
    /// The referrer's path, without a trailing "/" (empty for the root).
    pub path: String,
}

impl Referral {
    /// The traffic source it stands for (see [`source_for_host`]).
    pub fn source(&self) -> String {
        source_for_host(&self.host)
    }

    /// The referrer as `visit:referrer` shows it (as Plausible cleans it): host, then path; no
    /// scheme, query or fragment.
    pub fn url(&self) -> String {
        format!("{}{}", self.host, self.path)
    }
}

/// The referral a referrer URL makes, or `None` when there is none.
///
/// `None` is returned for: no or blank referrer; an unparseable one; a scheme other than
/// http/https (so app referrers such as `android-app://com.google.android.gm` give `None`);
/// a referrer without a host; and a self-referral, i.e. a referrer host equal to
/// `page_host` once both are lower-cased and stripped of a leading "www." (subdomains of
/// the page host are *not* self-referrals).
pub fn referral(referrer: Option<&str>, page_host: &str) -> Option<Referral> {
    let url = url::Url::parse(referrer?.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = normalize_host(url.host_str()?);
    if host.is_empty() || host == normalize_host(page_host) {
        return None;
    }
    Some(Referral { path: url.path().trim_end_matches('/').to_owned(), host })
}

/// The traffic source a referrer URL stands for, or `None` when it makes no [`referral`].
pub fn referrer_source(referrer: Option<&str>, page_host: &str) -> Option<String> {
    referral(referrer, page_host).map(|r| r.source())
}

/// The source name for a referring host: a known search engine, social network or AI
/// assistant's name (e.g. "Google", "Facebook", "X", "Hacker News"), else the host itself.
///
/// The host should already be lower-cased with "www." stripped; this is done again here so
/// the result is the same either way.
pub fn source_for_host(host: &str) -> String {
    let host = normalize_host(host);
    SOURCES
        .iter()
        .find(|(pattern, _)| host_matches(&host, pattern))
        .map_or(host.clone(), |(_, name)| (*name).to_string())
}

/// Lower-cases a host and strips surrounding whitespace, a leading "www." and trailing dots.
fn normalize_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    host.trim_end_matches('.').to_string()
}

/// Whether `host` is covered by a table pattern (see [`SOURCES`]).
fn host_matches(host: &str, pattern: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(brand) => brand_domain_matches(host, brand),
        None => is_domain_or_subdomain(host, pattern),
    }
}

/// Whether `host` equals `domain` or is a subdomain of it.
fn is_domain_or_subdomain(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain).is_some_and(|prefix| prefix.is_empty() || prefix.ends_with('.'))
}

/// Whether `host` is `brand.<tld>`, `brand.co.<tld>` or `brand.com.<tld>`, or a subdomain
/// of one of them.
fn brand_domain_matches(host: &str, brand: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    (0..labels.len()).any(|i| labels[i] == brand && is_country_suffix(&labels[i + 1..]))
}

/// Whether the labels after a brand form a top-level domain, optionally under "co"/"com".
fn is_country_suffix(labels: &[&str]) -> bool {
    let is_tld = |l: &str| l.len() >= 2 && l.bytes().all(|b| b.is_ascii_alphabetic());
    match labels {
        [tld] => is_tld(tld),
        [second, tld] => COUNTRY_SECOND_LEVELS.contains(second) && is_tld(tld),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &[(&str, &str)] = &[
        ("google.com", "Google"),
        ("google.co.uk", "Google"),
        ("google.de", "Google"),
        ("google.com.au", "Google"),
        ("news.google.com", "Google"),
        ("bing.com", "Bing"),
        ("cn.bing.com", "Bing"),
        ("duckduckgo.com", "DuckDuckGo"),
        ("search.yahoo.com", "Yahoo!"),
        ("yahoo.co.jp", "Yahoo!"),
        ("yandex.ru", "Yandex"),
        ("yandex.com.tr", "Yandex"),
        ("baidu.com", "Baidu"),
        ("ecosia.org", "Ecosia"),
        ("search.brave.com", "Brave"),
        ("facebook.com", "Facebook"),
        ("m.facebook.com", "Facebook"),
        ("l.facebook.com", "Facebook"),
        ("lm.facebook.com", "Facebook"),
        ("instagram.com", "Instagram"),
        ("l.instagram.com", "Instagram"),
        ("x.com", "X"),
        ("twitter.com", "X"),
        ("mobile.twitter.com", "X"),
        ("t.co", "X"),
        ("linkedin.com", "LinkedIn"),
        ("lnkd.in", "LinkedIn"),
        ("reddit.com", "Reddit"),
        ("old.reddit.com", "Reddit"),
        ("news.ycombinator.com", "Hacker News"),
        ("youtube.com", "YouTube"),
        ("m.youtube.com", "YouTube"),
        ("youtu.be", "YouTube"),
        ("pinterest.com", "Pinterest"),
        ("pinterest.co.uk", "Pinterest"),
        ("tiktok.com", "TikTok"),
        ("github.com", "GitHub"),
        ("t.me", "Telegram"),
        ("web.telegram.org", "Telegram"),
        ("web.whatsapp.com", "WhatsApp"),
        ("threads.net", "Threads"),
        ("bsky.app", "Bluesky"),
        ("producthunt.com", "Product Hunt"),
        ("en.wikipedia.org", "Wikipedia"),
        ("en.m.wikipedia.org", "Wikipedia"),
        ("chatgpt.com", "ChatGPT"),
        ("chat.openai.com", "ChatGPT"),
        ("perplexity.ai", "Perplexity"),
        ("gemini.google.com", "Gemini"),
        ("WWW.Google.COM", "Google"),
        ("google.google.com", "Google"),
        // Not matches: look-alikes and unrelated hosts keep their own name.
        ("blog.example.org", "blog.example.org"),
        ("notgoogle.com", "notgoogle.com"),
        ("google.example.com", "google.example.com"),
        ("tx.co", "tx.co"),
        ("github.io", "github.io"),
        ("openai.com", "openai.com"),
    ];

    #[test]
    fn maps_hosts() {
        for &(host, name) in HOSTS {
            assert_eq!(source_for_host(host), name, "host {host}");
        }
    }

    #[test]
    fn referrer_urls() {
        let src = |r: &str| referrer_source(Some(r), "example.com");
        assert_eq!(src("https://www.google.com/"), Some("Google".into()));
        assert_eq!(src("https://l.facebook.com/l.php?u=x"), Some("Facebook".into()));
        assert_eq!(src("http://blog.example.org/post"), Some("blog.example.org".into()));
        assert_eq!(src("https://sub.example.com/"), Some("sub.example.com".into()));
        assert_eq!(src("  https://t.co/abc  "), Some("X".into()));
    }

    #[test]
    fn referrer_urls_are_host_and_path() {
        let url = |r: &str| referral(Some(r), "example.com").map(|r| r.url());
        assert_eq!(url("https://www.Google.com/"), Some("google.com".into()));
        assert_eq!(url("https://blog.example.org/post/?utm=1#top"), Some("blog.example.org/post".into()));
        assert_eq!(url("http://t.co/abc"), Some("t.co/abc".into()));
        assert_eq!(url("https://www.example.com/a"), None, "self-referral");
        assert_eq!(url("android-app://com.google.android.gm/"), None);
        assert_eq!(referral(None, "example.com"), None);
    }

    #[test]
    fn self_referrals() {
        let src = |r: &str, host: &str| referrer_source(Some(r), host);
        assert_eq!(src("https://example.com/a", "example.com"), None);
        assert_eq!(src("https://www.example.com/a", "example.com"), None);
        assert_eq!(src("https://example.com/a", "www.example.com"), None);
        assert_eq!(src("https://EXAMPLE.com:8080/a", "Example.COM"), None);
    }

    #[test]
    fn no_source() {
        assert_eq!(referrer_source(None, "example.com"), None);
        for r in [
            "",
            "   ",
            "not a url",
            "google.com",
            "http://",
            "ftp://google.com/",
            "file:///etc/passwd",
            "android-app://com.google.android.gm/",
            "javascript:alert(1)",
            "http://www./",
            "\u{0}\u{1}",
        ] {
            assert_eq!(referrer_source(Some(r), "example.com"), None, "referrer {r:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(r in "\\PC*", h in "\\PC*") {
            let _ = referrer_source(Some(&r), &h);
            let _ = source_for_host(&h);
        }
    }
}
