//! Acquisition channels: which channel (`visit:channel`) a visit came through, from its source,
//! UTM parameters and ad click id, following the GA4 default channel group as Plausible applies it.
//!
//! # Rules
//!
//! The source, `utm_source`, `utm_medium` and `utm_campaign` are trimmed and lower-cased; a
//! missing value is the empty string and the source "Direct / None" ([`crate::facts::DIRECT`])
//! is empty too. The rules are tried in this order and the first that holds names the channel:
//!
//! 1. **Cross-network**: the campaign contains "cross-network".
//! 2. **Paid Shopping**: a shopping source or a shopping campaign (one containing "shopping", or
//!    "shop" at its start or after any character but a–d and f–z, so "eshop" and "summer-shop"
//!    count and "workshop" does not), with a paid medium.
//! 3. **Paid Search**: a search source with a paid medium or a paid `utm_source` (such as
//!    "adwords"); or the source "google" with a `gclid`; or "bing" with an `msclkid`.
//! 4. **Paid Social**: a social source with a paid medium or a paid `utm_source`.
//! 5. **Paid Video**: a video source with a paid medium or a paid `utm_source`.
//! 6. **Display**: the medium is "display", "banner", "expandable", "interstitial" or "cpm".
//! 7. **Paid Other**: a paid medium (one containing "cp", equal to "ppc" or "retargeting", or
//!    starting with "paid").
//! 8. **Organic Shopping**: a shopping source or a shopping campaign.
//! 9. **Organic Social**: a social source, or the medium "social", "social-network",
//!    "social-media", "sm", "social network" or "social media".
//! 10. **Organic Video**: a video source, or a medium containing "video".
//! 11. **Organic Search**: a search source.
//! 12. **Email**: an email source, or a `utm_source` or medium containing "email", "e-mail",
//!     "e_mail", "e mail" or "newsletter".
//! 13. **Affiliates**: the medium "affiliate".
//! 14. **Audio**: the medium "audio".
//! 15. **SMS**: the `utm_source` or the medium "sms".
//! 16. **Mobile Push Notifications**: a medium ending in "push" or containing "mobile" or
//!     "notification", or the source "firebase".
//! 17. **Referral**: the medium "referral", "app" or "link", or any non-empty source: a source in
//!     none of the tables below (a bare referring host such as "example.org", an unknown
//!     `utm_source`) is Referral.
//! 18. **Direct**: everything else (no source and no medium that says otherwise).
//!
//! # Where we differ from Plausible
//!
//! - **The source categories.** Plausible looks sources up in GA4's list of several hundred
//!   sources and hosts. We keep our own small tables ([`SEARCH`], [`SOCIAL`], [`SHOPPING`],
//!   [`VIDEO`], [`EMAIL`], and [`PAID_TAGS`] for ad tags): every name [`crate::source`] gives a referring host, the raw
//!   `utm_source` spellings people commonly use ("fb", "ig", "yt", "newsletter", …), and a few
//!   hosts that [`crate::source`] leaves bare ("vk.com", "amazon.de", …; a subdomain of one counts
//!   too). A source GA4 lists but we do not is Referral here.
//! - **Raw `utm_source`.** Plausible first maps a tagged source onto a known name ("ig" becomes
//!   "Instagram"), then categorises the name; Tally keeps the raw value, so the tables list the
//!   raw spellings as well as the names.
//! - **AI assistants** (ChatGPT, Perplexity, Gemini, Claude) are in no table, so they are
//!   Referral. Recent Plausible versions give them an "AI Assistants" channel of their own; the
//!   channel names Tally answers with are the 18 in [`CHANNELS`].
//! - **Webmail under a search brand's domain** (mail.google.com, mail.yahoo.com) is named after
//!   the search engine by [`crate::source`], so it counts as Organic Search, not Email.
//! - Values are trimmed as well as lower-cased.

use crate::page::Utm;

/// Every channel name, in the order the rules try them; "Direct" is the fallback.
pub const CHANNELS: [&str; 18] = [
    "Cross-network",
    "Paid Shopping",
    "Paid Search",
    "Paid Social",
    "Paid Video",
    "Display",
    "Paid Other",
    "Organic Shopping",
    "Organic Social",
    "Organic Video",
    "Organic Search",
    "Email",
    "Affiliates",
    "Audio",
    "SMS",
    "Mobile Push Notifications",
    "Referral",
    "Direct",
];

/// The ad click ids a visit's landing URL carried. Both may be set; each only counts with its own
/// ad network's source (see [`channel`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClickId {
    /// The URL had a Google Ads `gclid` parameter.
    pub gclid: bool,
    /// The URL had a Microsoft Advertising `msclkid` parameter.
    pub msclkid: bool,
}

/// Search engines: Tally's names and raw `utm_source` spellings (ad tags are in [`PAID_TAGS`]).
pub const SEARCH: &[&str] = &[
    "google",
    "bing",
    "duckduckgo",
    "yahoo!",
    "yahoo",
    "yandex",
    "baidu",
    "ecosia",
    "brave",
    "qwant",
    "startpage",
    "kagi",
    "naver",
    "seznam",
    "sogou",
    "ask",
    "aol",
    "msn",
];

/// Social networks and communities: Tally's names, raw `utm_source` spellings and hosts
/// [`crate::source`] does not name.
pub const SOCIAL: &[&str] = &[
    "facebook",
    "fb",
    "fcb",
    "meta",
    "messenger",
    "instagram",
    "ig",
    "x",
    "twitter",
    "x (twitter)",
    "linkedin",
    "reddit",
    "hacker news",
    "hackernews",
    "pinterest",
    "tiktok",
    "tik.tok",
    "telegram",
    "whatsapp",
    "threads",
    "bluesky",
    "bsky",
    "product hunt",
    "producthunt",
    "github",
    "discord",
    "discord.com",
    "slack",
    "microsoft teams",
    "mastodon",
    "mastodon.social",
    "vk",
    "vkontakte",
    "vk.com",
    "quora",
    "quora.com",
    "tumblr",
    "tumblr.com",
    "snapchat",
    "snapchat.com",
    "weibo",
    "weibo.com",
    "wechat",
    "line",
    "medium.com",
];

/// Shopping sites: names, raw spellings and hosts.
pub const SHOPPING: &[&str] = &[
    "google shopping",
    "google-shopping",
    "amazon",
    "amazon.com",
    "amazon.ca",
    "amazon.co.jp",
    "amazon.co.uk",
    "amazon.de",
    "amazon.es",
    "amazon.fr",
    "amazon.in",
    "amazon.it",
    "ebay",
    "ebay.com",
    "ebay.co.uk",
    "ebay.de",
    "etsy",
    "etsy.com",
    "shopify",
    "shopify.com",
    "walmart",
    "walmart.com",
    "aliexpress",
    "aliexpress.com",
    "alibaba",
    "alibaba.com",
    "temu",
    "temu.com",
    "idealo",
    "idealo.de",
];

/// Video sites: names, raw spellings and hosts.
pub const VIDEO: &[&str] =
    &["youtube", "yt", "vimeo", "vimeo.com", "twitch", "twitch.tv", "dailymotion", "dailymotion.com", "wistia"];

/// Email: raw spellings, mail clients and webmail hosts.
pub const EMAIL: &[&str] = &[
    "email",
    "e-mail",
    "e_mail",
    "mail",
    "newsletter",
    "gmail",
    "outlook",
    "outlook.com",
    "outlook.live.com",
    "outlook.office.com",
    "outlook.office365.com",
    "yahoo mail",
    "mailchimp",
    "proton mail",
    "mail.proton.me",
];

/// `utm_source` tags that only paid campaigns use, with the kind of site they advertise on: such a
/// source is of that category, and paid whatever its medium.
pub const PAID_TAGS: [(Category, &[&str]); 3] = [
    (
        Category::Search,
        &[
            "adwords",
            "gads",
            "google ads",
            "google-ads",
            "google_ads",
            "googleads",
            "bing ads",
            "bing-ads",
            "bingads",
            "microsoft ads",
            "microsoft-ads",
        ],
    ),
    (
        Category::Social,
        &[
            "fb-ads",
            "fbad",
            "fbads",
            "facebook-ads",
            "facebook_ad",
            "facebook_ads",
            "facebook_feed_ad",
            "twitter-ads",
            "linkedin-ads",
            "reddit-ads",
            "tiktokads",
        ],
    ),
    (Category::Video, &["yt-ads"]),
];

/// The kind of site a source is, as far as the channel rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// A search engine.
    Search,
    /// A social network or community.
    Social,
    /// A shopping site.
    Shopping,
    /// A video site.
    Video,
    /// Email.
    Email,
}

/// The category tables, looked up in this order.
const CATEGORIES: [(Category, &[&str]); 5] = [
    (Category::Search, SEARCH),
    (Category::Social, SOCIAL),
    (Category::Shopping, SHOPPING),
    (Category::Video, VIDEO),
    (Category::Email, EMAIL),
];

/// Media that mean display advertising.
const DISPLAY_MEDIUMS: &[&str] = &["display", "banner", "expandable", "interstitial", "cpm"];

/// Media that mean social traffic.
const SOCIAL_MEDIUMS: &[&str] = &["social", "social-network", "social-media", "sm", "social network", "social media"];

/// Words in a `utm_source` or medium that mean email.
const EMAIL_TAGS: &[&str] = &["email", "e-mail", "e_mail", "e mail", "newsletter"];

/// Media that mean a referral.
const REFERRAL_MEDIUMS: &[&str] = &["referral", "app", "link"];

/// The channel of a visit, from its source as Tally names it ([`crate::facts::Landing::source`],
/// e.g. "Google", "Facebook", "Direct / None", a raw `utm_source`, or a bare referring host such
/// as "example.org"), its UTM parameters, and the ad click ids its landing URL carried.
///
/// Always one of [`CHANNELS`]; the rules are in the [module documentation](self).
pub fn channel(source: &str, utm: &Utm, click: ClickId) -> &'static str {
    let visit = Visit::new(source, utm, click);
    RULES.iter().find(|(_, holds)| holds(&visit)).map_or("Direct", |(name, _)| name)
}

/// What the rules look at, normalised.
struct Visit {
    source: String,
    category: Option<Category>,
    utm_source: String,
    medium: String,
    campaign: String,
    click: ClickId,
}

impl Visit {
    fn new(source: &str, utm: &Utm, click: ClickId) -> Visit {
        let mut source = lower(Some(source));
        if source.eq_ignore_ascii_case(crate::facts::DIRECT) {
            source.clear();
        }
        Visit {
            category: category(&source),
            source,
            utm_source: lower(utm.source.as_deref()),
            medium: lower(utm.medium.as_deref()),
            campaign: lower(utm.campaign.as_deref()),
            click,
        }
    }

    fn is(&self, category: Category) -> bool {
        self.category == Some(category)
    }

    fn paid_medium(&self) -> bool {
        let m = self.medium.as_str();
        m.contains("cp") || m == "ppc" || m == "retargeting" || m.starts_with("paid")
    }

    /// A paid medium, or a `utm_source` that only paid campaigns use.
    fn paid(&self) -> bool {
        self.paid_medium() || PAID_TAGS.iter().any(|(_, tags)| tags.contains(&self.utm_source.as_str()))
    }

    fn shopping(&self) -> bool {
        self.is(Category::Shopping) || shopping_campaign(&self.campaign)
    }
}

/// A channel rule: its channel's name, and whether it holds for a visit.
type Rule = (&'static str, fn(&Visit) -> bool);

/// The rules before the fallback "Direct", in order; the first that holds names the channel.
const RULES: [Rule; 17] = [
    ("Cross-network", |v| v.campaign.contains("cross-network")),
    ("Paid Shopping", |v| v.shopping() && v.paid_medium()),
    ("Paid Search", |v| {
        (v.is(Category::Search) && v.paid())
            || (v.source == "google" && v.click.gclid)
            || (v.source == "bing" && v.click.msclkid)
    }),
    ("Paid Social", |v| v.is(Category::Social) && v.paid()),
    ("Paid Video", |v| v.is(Category::Video) && v.paid()),
    ("Display", |v| DISPLAY_MEDIUMS.contains(&v.medium.as_str())),
    ("Paid Other", Visit::paid_medium),
    ("Organic Shopping", Visit::shopping),
    ("Organic Social", |v| v.is(Category::Social) || SOCIAL_MEDIUMS.contains(&v.medium.as_str())),
    ("Organic Video", |v| v.is(Category::Video) || v.medium.contains("video")),
    ("Organic Search", |v| v.is(Category::Search)),
    ("Email", |v| {
        v.is(Category::Email) || EMAIL_TAGS.iter().any(|tag| v.utm_source.contains(tag) || v.medium.contains(tag))
    }),
    ("Affiliates", |v| v.medium == "affiliate"),
    ("Audio", |v| v.medium == "audio"),
    ("SMS", |v| v.utm_source == "sms" || v.medium == "sms"),
    ("Mobile Push Notifications", |v| {
        v.medium.ends_with("push")
            || v.medium.contains("mobile")
            || v.medium.contains("notification")
            || v.source == "firebase"
    }),
    ("Referral", |v| REFERRAL_MEDIUMS.contains(&v.medium.as_str()) || !v.source.is_empty()),
];

/// A value trimmed and lower-cased; missing is empty.
fn lower(value: Option<&str>) -> String {
    value.unwrap_or("").trim().to_lowercase()
}

/// The category of a lower-cased source: the table entry equal to it, or, for a host, the entry
/// equal to one of its parent domains ("m.vk.com" is "vk.com"). Only names with a dot are tried
/// as parents, so "foo.x" is not "x".
fn category(source: &str) -> Option<Category> {
    let mut name = source;
    loop {
        if let Some((category, _)) = CATEGORIES.iter().chain(&PAID_TAGS).find(|(_, names)| names.contains(&name)) {
            return Some(*category);
        }
        match name.split_once('.') {
            Some((_, parent)) if parent.contains('.') => name = parent,
            _ => return None,
        }
    }
}

/// Whether a lower-cased campaign names a shopping campaign: it contains "shopping", or "shop"
/// at its start or after a character other than a–d and f–z.
fn shopping_campaign(campaign: &str) -> bool {
    campaign.contains("shopping")
        || campaign
            .match_indices("shop")
            .any(|(i, _)| campaign[..i].chars().next_back().is_none_or(|c| !matches!(c, 'a'..='d' | 'f'..='z')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::DIRECT;
    use crate::source::source_for_host;

    /// A visit's UTM parameters: source, medium, campaign (empty means absent).
    fn utm(source: &str, medium: &str, campaign: &str) -> Utm {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Utm { source: opt(source), medium: opt(medium), campaign: opt(campaign), ..Utm::default() }
    }

    const NO_CLICK: ClickId = ClickId { gclid: false, msclkid: false };
    const GCLID: ClickId = ClickId { gclid: true, msclkid: false };
    const MSCLKID: ClickId = ClickId { gclid: false, msclkid: true };

    /// (source, utm_source, utm_medium, utm_campaign, click id, channel). Tally's source is the
    /// `utm_source` when there is one; the cases keep that, except where a test says otherwise.
    const CASES: &[(&str, &str, &str, &str, ClickId, &str)] = &[
        // One case (at least) per channel.
        ("google", "google", "cpc", "spring-cross-network", NO_CLICK, "Cross-network"),
        ("amazon", "amazon", "cpc", "", NO_CLICK, "Paid Shopping"),
        ("newsletter", "newsletter", "paid", "summer-shop", NO_CLICK, "Paid Shopping"),
        ("google", "google", "cpc", "", NO_CLICK, "Paid Search"),
        ("adwords", "adwords", "", "", NO_CLICK, "Paid Search"),
        ("facebook", "facebook", "paid_social", "", NO_CLICK, "Paid Social"),
        ("fb-ads", "fb-ads", "", "", NO_CLICK, "Paid Social"),
        ("youtube", "youtube", "ppc", "", NO_CLICK, "Paid Video"),
        ("yt-ads", "yt-ads", "", "", NO_CLICK, "Paid Video"),
        ("example.org", "example.org", "banner", "", NO_CLICK, "Display"),
        ("google", "google", "display", "", NO_CLICK, "Display"),
        ("partner", "partner", "retargeting", "", NO_CLICK, "Paid Other"),
        ("chatgpt", "chatgpt", "paid", "", NO_CLICK, "Paid Other"),
        ("etsy", "etsy", "", "", NO_CLICK, "Organic Shopping"),
        (DIRECT, "", "", "shopping-week", NO_CLICK, "Organic Shopping"),
        ("Instagram", "", "", "", NO_CLICK, "Organic Social"),
        ("ig", "ig", "", "", NO_CLICK, "Organic Social"),
        ("partner", "partner", "social media", "", NO_CLICK, "Organic Social"),
        ("YouTube", "", "", "", NO_CLICK, "Organic Video"),
        ("partner", "partner", "video-ads", "", NO_CLICK, "Organic Video"),
        ("Google", "", "", "", NO_CLICK, "Organic Search"),
        ("Yahoo!", "", "", "", NO_CLICK, "Organic Search"),
        ("newsletter", "newsletter", "", "", NO_CLICK, "Email"),
        ("acme", "acme", "weekly-newsletter", "", NO_CLICK, "Email"),
        ("acme-email", "acme-email", "", "", NO_CLICK, "Email"),
        ("gmail", "gmail", "", "", NO_CLICK, "Email"),
        ("partner", "partner", "affiliate", "", NO_CLICK, "Affiliates"),
        ("spotify", "spotify", "audio", "", NO_CLICK, "Audio"),
        ("sms", "sms", "", "", NO_CLICK, "SMS"),
        ("acme", "acme", "sms", "", NO_CLICK, "SMS"),
        ("acme", "acme", "web-push", "", NO_CLICK, "Mobile Push Notifications"),
        ("acme", "acme", "notification", "", NO_CLICK, "Mobile Push Notifications"),
        ("firebase", "firebase", "", "", NO_CLICK, "Mobile Push Notifications"),
        ("example.org", "", "", "", NO_CLICK, "Referral"),
        (DIRECT, "", "referral", "", NO_CLICK, "Referral"),
        ("ChatGPT", "", "", "", NO_CLICK, "Referral"),
        (DIRECT, "", "", "", NO_CLICK, "Direct"),
        ("", "", "", "", NO_CLICK, "Direct"),
        (DIRECT, "", "organic", "", NO_CLICK, "Direct"),
        // Precedence.
        ("Google", "", "", "", GCLID, "Paid Search"),
        ("Bing", "", "", "", MSCLKID, "Paid Search"),
        ("Bing", "", "", "", GCLID, "Organic Search"),
        ("Google", "", "", "", MSCLKID, "Organic Search"),
        ("example.org", "", "", "", GCLID, "Referral"),
        ("google", "google", "cpc", "cross-network", GCLID, "Cross-network"),
        ("amazon", "amazon", "display", "cross-network-q3", NO_CLICK, "Cross-network"),
        ("google", "google", "cpc", "eshop-sale", NO_CLICK, "Paid Shopping"),
        ("google", "google", "cpc", "workshop", NO_CLICK, "Paid Search"),
        ("google", "google", "banner", "", NO_CLICK, "Display"),
        ("google", "google", "email", "", NO_CLICK, "Organic Search"),
        ("facebook", "facebook", "email", "", NO_CLICK, "Organic Social"),
        ("fb", "fb", "cpm", "", NO_CLICK, "Paid Social"),
        ("example.org", "", "cpc", "", NO_CLICK, "Paid Other"),
        // Case and whitespace.
        ("GOOGLE", "GOOGLE", "CPC", "", NO_CLICK, "Paid Search"),
        ("Google", "Google", "cpc", "Spring-Cross-Network", NO_CLICK, "Cross-network"),
        ("FaceBook", "FaceBook", "", "", NO_CLICK, "Organic Social"),
        ("direct / none", "", "", "", NO_CLICK, "Direct"),
        ("Acme", "Acme", "SMS", "", NO_CLICK, "SMS"),
        (" Google ", "", "", "", NO_CLICK, "Organic Search"),
        // Hosts and their subdomains.
        ("m.vk.com", "", "", "", NO_CLICK, "Organic Social"),
        ("smile.amazon.de", "", "", "", NO_CLICK, "Organic Shopping"),
        ("outlook.live.com", "", "", "", NO_CLICK, "Email"),
        ("foo.x", "", "", "", NO_CLICK, "Referral"),
        ("notvk.com", "", "", "", NO_CLICK, "Referral"),
    ];

    #[test]
    fn cases() {
        for &(source, utm_source, medium, campaign, click, want) in CASES {
            let got = channel(source, &utm(utm_source, medium, campaign), click);
            assert_eq!(got, want, "source {source:?}, utm {utm_source:?}/{medium:?}/{campaign:?}, {click:?}");
        }
    }

    #[test]
    fn every_channel_has_a_case() {
        for name in CHANNELS {
            assert!(CASES.iter().any(|case| case.5 == name), "no case for {name}");
        }
    }

    #[test]
    fn rules_follow_the_channel_order() {
        let names: Vec<&str> = RULES.iter().map(|(name, _)| *name).chain(["Direct"]).collect();
        assert_eq!(names, CHANNELS);
    }

    #[test]
    fn tally_source_names() {
        let hosts: &[(&str, &str)] = &[
            ("google.com", "Organic Search"),
            ("bing.com", "Organic Search"),
            ("duckduckgo.com", "Organic Search"),
            ("search.yahoo.com", "Organic Search"),
            ("yandex.ru", "Organic Search"),
            ("ya.ru", "Organic Search"),
            ("baidu.com", "Organic Search"),
            ("ecosia.org", "Organic Search"),
            ("search.brave.com", "Organic Search"),
            ("qwant.com", "Organic Search"),
            ("startpage.com", "Organic Search"),
            ("kagi.com", "Organic Search"),
            ("naver.com", "Organic Search"),
            ("seznam.cz", "Organic Search"),
            ("facebook.com", "Organic Social"),
            ("instagram.com", "Organic Social"),
            ("t.co", "Organic Social"),
            ("linkedin.com", "Organic Social"),
            ("reddit.com", "Organic Social"),
            ("news.ycombinator.com", "Organic Social"),
            ("pinterest.com", "Organic Social"),
            ("tiktok.com", "Organic Social"),
            ("github.com", "Organic Social"),
            ("t.me", "Organic Social"),
            ("wa.me", "Organic Social"),
            ("threads.net", "Organic Social"),
            ("bsky.app", "Organic Social"),
            ("producthunt.com", "Organic Social"),
            ("youtube.com", "Organic Video"),
            ("chatgpt.com", "Referral"),
            ("perplexity.ai", "Referral"),
            ("gemini.google.com", "Referral"),
            ("claude.ai", "Referral"),
            ("en.wikipedia.org", "Referral"),
            ("blog.example.org", "Referral"),
        ];
        for &(host, want) in hosts {
            let source = source_for_host(host);
            assert_eq!(channel(&source, &Utm::default(), NO_CLICK), want, "host {host} (source {source})");
        }
    }

    #[test]
    fn shopping_campaigns() {
        for c in ["shop", "shopping", "eshop", "summer-shop", "summer_shop", "2024shop", "workshopping", "shops"] {
            assert!(shopping_campaign(c), "{c}");
        }
        for c in ["", "workshop", "bishop", "sho", "spring-sale"] {
            assert!(!shopping_campaign(c), "{c}");
        }
    }

    #[test]
    fn tables_are_clean() {
        let all: Vec<&str> = CATEGORIES.iter().chain(&PAID_TAGS).flat_map(|(_, names)| names.iter().copied()).collect();
        for (i, name) in all.iter().enumerate() {
            assert_eq!(*name, name.trim().to_lowercase(), "{name:?} is not trimmed and lower-case");
            assert!(!all[..i].contains(name), "{name:?} is listed twice");
        }
    }

    proptest::proptest! {
        #[test]
        fn always_a_channel(
            source in "\\PC*",
            utm_source in proptest::option::of("\\PC*"),
            medium in proptest::option::of("\\PC*"),
            campaign in proptest::option::of("\\PC*"),
            gclid: bool,
            msclkid: bool,
        ) {
            let utm = Utm { source: utm_source, medium, campaign, ..Utm::default() };
            let got = channel(&source, &utm, ClickId { gclid, msclkid });
            proptest::prop_assert!(CHANNELS.contains(&got), "{got:?}");
        }
    }
}
