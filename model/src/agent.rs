//! User-agent classification: browser, operating system, device class and bot verdict.
//!
//! Browser and OS detection come from `woothee`, the bot verdict from `isbot` plus a few
//! rules of our own; names are mapped to the spelling analytics users expect.

use std::sync::OnceLock;

/// Device class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Device {
    /// A desktop or laptop computer, or anything not recognised as mobile.
    Desktop,
    /// A phone.
    Mobile,
    /// A tablet.
    Tablet,
}

impl Device {
    /// The display name of the device class: "Desktop", "Mobile" or "Tablet".
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "Desktop",
            Device::Mobile => "Mobile",
            Device::Tablet => "Tablet",
        }
    }
}

/// What a user agent says about the visitor's software.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Browser name, e.g. "Chrome"; "Unknown" when not recognised.
    pub browser: String,
    /// Browser version as major.minor (as Plausible reports it), e.g. "120.0"; empty when unknown.
    pub browser_version: String,
    /// Operating system name, e.g. "Windows"; "Unknown" when not recognised.
    pub os: String,
    /// OS version as major or major.minor, e.g. "10" or "14.2"; empty when unknown.
    pub os_version: String,
    /// Device class.
    pub device: Device,
    /// Whether the user agent belongs to a bot, crawler, headless browser or HTTP library.
    pub bot: bool,
}

/// Woothee's "unknown" marker.
const UNKNOWN: &str = "UNKNOWN";

/// Browser names from woothee that users know by another name.
const BROWSER_NAMES: &[(&str, &str)] = &[("SamsungBrowser", "Samsung Internet"), (UNKNOWN, "Unknown")];

/// OS names from woothee that users know by another name.
const OS_NAMES: &[(&str, &str)] = &[
    ("Mac OSX", "macOS"),
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("iPod", "iOS"),
    ("ChromeOS", "Chrome OS"),
    (UNKNOWN, "Unknown"),
];

/// Woothee OS names that start with "Windows " but are not a desktop Windows version.
const WINDOWS_OTHERS: &[&str] = &["Windows Phone OS", "Windows CE"];

/// Lower-case user-agent fragments of automated clients that `isbot` does not catch.
const EXTRA_BOT_MARKERS: &[&str] =
    &["dart:io", "insomnia/", "undici", "deno/", "bun/", "reqwest/", "puppeteer", "playwright", "selenium"];

/// Classifies a user agent. Never panics; an empty or whitespace-only agent is a bot.
pub fn classify(user_agent: &str) -> Agent {
    let parsed = woothee::parser::Parser::new().parse(user_agent);
    let (browser, version, os, os_version, category) = match &parsed {
        Some(r) => (r.name, r.version, r.os, r.os_version.as_ref(), r.category),
        None => (UNKNOWN, "", UNKNOWN, "", ""),
    };
    let (os, os_version) = map_os(os, os_version);
    Agent {
        browser: rename(BROWSER_NAMES, browser).to_string(),
        browser_version: major_minor(version).to_string(),
        os,
        os_version,
        device: device(user_agent, category),
        bot: is_bot(user_agent, category, browser),
    }
}

/// Looks `name` up in a rename table, falling back to `name` itself.
fn rename<'a>(table: &[(&str, &'a str)], name: &'a str) -> &'a str {
    table.iter().find(|(from, _)| *from == name).map_or(name, |(_, to)| to)
}

/// Maps woothee's OS name and version to ours, e.g. ("Windows 10", "NT 10.0") → ("Windows", "10").
fn map_os(os: &str, version: &str) -> (String, String) {
    if let Some(win) = os.strip_prefix("Windows ")
        && !WINDOWS_OTHERS.contains(&os)
    {
        let win = if win.starts_with(UNKNOWN) { "" } else { win };
        return ("Windows".to_string(), win.to_string());
    }
    let name = rename(OS_NAMES, os).to_string();
    (name, major_minor(version).to_string())
}

/// The leading digits of a version string: "120.0.1" → "120", "UNKNOWN" → "".
fn major(version: &str) -> &str {
    let end = version.find(|c: char| !c.is_ascii_digit()).unwrap_or(version.len());
    &version[..end]
}

/// Major and, if present, minor of a dotted version: "10.15.7" → "10.15", "14" → "14".
/// Anything not starting with a digit gives "".
fn major_minor(version: &str) -> &str {
    let maj = major(version);
    if maj.is_empty() {
        return "";
    }
    let rest = &version[maj.len()..];
    match rest.strip_prefix('.').map(major) {
        Some(min) if !min.is_empty() => &version[..maj.len() + 1 + min.len()],
        _ => maj,
    }
}

/// The device class, from the raw agent and woothee's category.
fn device(ua: &str, category: &str) -> Device {
    let tablet_word = ua.match_indices("Tablet").any(|(i, _)| !ua[i..].starts_with("Tablet PC"));
    let android_tablet = ua.contains("Android") && !ua.contains("Mobile");
    if ua.contains("iPad") || tablet_word || android_tablet {
        Device::Tablet
    } else if matches!(category, "smartphone" | "mobilephone") {
        Device::Mobile
    } else {
        Device::Desktop
    }
}

/// The bot verdict: blank agents, woothee crawlers and HTTP libraries, `isbot`, extra markers.
fn is_bot(ua: &str, category: &str, browser: &str) -> bool {
    if ua.trim().is_empty() || category == "crawler" || browser == "HTTP Library" {
        return true;
    }
    let lower = ua.to_ascii_lowercase();
    EXTRA_BOT_MARKERS.iter().any(|m| lower.contains(m)) || bots().is_bot(ua)
}

/// The compiled `isbot` pattern set, built once.
fn bots() -> &'static isbot::Bots {
    static BOTS: OnceLock<isbot::Bots> = OnceLock::new();
    BOTS.get_or_init(isbot::Bots::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (user agent, browser, browser version, os, os version, device, bot)
    type Case = (&'static str, &'static str, &'static str, &'static str, &'static str, Device, bool);

    const CASES: &[Case] = &[
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Chrome",
            "120.0",
            "Windows",
            "10",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "Firefox",
            "121.0",
            "Linux",
            "",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
            "Safari",
            "17.2",
            "macOS",
            "10.15",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
            "Firefox",
            "121.0",
            "macOS",
            "10.15",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
            "Safari",
            "17.2",
            "iOS",
            "17.2",
            Device::Mobile,
            false,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
            "Chrome",
            "120.0",
            "iOS",
            "17.2",
            Device::Mobile,
            false,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
            "Safari",
            "17.2",
            "iOS",
            "17.2",
            Device::Tablet,
            false,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
            "Chrome",
            "120.0",
            "Android",
            "14",
            Device::Mobile,
            false,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Safari/537.36",
            "Chrome",
            "120.0",
            "Android",
            "13",
            Device::Tablet,
            false,
        ),
        (
            "Mozilla/5.0 (Android 14; Tablet; rv:121.0) Gecko/121.0 Firefox/121.0",
            "Firefox",
            "121.0",
            "Android",
            "14",
            Device::Tablet,
            false,
        ),
        (
            "Mozilla/5.0 (Linux; U; Android 4.4.2; en-us; SCH-I535 Build/KOT49H) AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
            "Safari",
            "4.0",
            "Android",
            "4.4",
            Device::Mobile,
            false,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
            "Edge",
            "120.0",
            "Windows",
            "10",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
            "Opera",
            "106.0",
            "Windows",
            "10",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
            "Samsung Internet",
            "23.0",
            "Android",
            "14",
            Device::Mobile,
            false,
        ),
        (
            "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
            "Internet Explorer",
            "11.0",
            "Windows",
            "7",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; WOW64; Trident/5.0; SLCC2; Media Center PC 6.0; Tablet PC 2.0)",
            "Internet Explorer",
            "9.0",
            "Windows",
            "7",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (Windows NT 5.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0 Safari/537.36",
            "Chrome",
            "49.0",
            "Windows",
            "XP",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Chrome",
            "120.0",
            "Chrome OS",
            "",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) FooBrowser/1.0",
            "Unknown",
            "",
            "Windows",
            "10",
            Device::Desktop,
            false,
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Googlebot",
            "",
            "Unknown",
            "",
            Device::Desktop,
            true,
        ),
        (
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "bingbot",
            "",
            "Unknown",
            "",
            Device::Desktop,
            true,
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
            "misc crawler",
            "",
            "Unknown",
            "",
            Device::Desktop,
            true,
        ),
        (
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "facebook",
            "",
            "Unknown",
            "",
            Device::Desktop,
            true,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
            "Chrome",
            "120.0",
            "Linux",
            "",
            Device::Desktop,
            true,
        ),
        ("curl/8.4.0", "HTTP Library", "", "Unknown", "", Device::Desktop, true),
        ("python-requests/2.31.0", "Unknown", "", "Unknown", "", Device::Desktop, true),
        ("Go-http-client/1.1", "Unknown", "", "Unknown", "", Device::Desktop, true),
        ("okhttp/4.12.0", "Unknown", "", "Unknown", "", Device::Desktop, true),
        ("Java/17.0.2", "HTTP Library", "", "Unknown", "", Device::Desktop, true),
        ("Dart/3.2 (dart:io)", "Unknown", "", "Unknown", "", Device::Desktop, true),
        ("", "Unknown", "", "Unknown", "", Device::Desktop, true),
        ("   \t", "Unknown", "", "Unknown", "", Device::Desktop, true),
    ];

    #[test]
    fn classifies_table() {
        let mut wrong = Vec::new();
        for &(ua, browser, bv, os, ov, device, bot) in CASES {
            let want = Agent {
                browser: browser.into(),
                browser_version: bv.into(),
                os: os.into(),
                os_version: ov.into(),
                device,
                bot,
            };
            let got = classify(ua);
            if got != want {
                wrong.push(format!("{ua:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn isbot_misses_are_caught() {
        for ua in ["axios/1.6.2", "node-fetch/1.0", "Wget/1.21.4", "undici", "Deno/1.39.0", "reqwest/0.12"] {
            assert!(classify(ua).bot, "{ua}");
        }
    }

    #[test]
    fn device_names() {
        assert_eq!(Device::Desktop.as_str(), "Desktop");
        assert_eq!(Device::Mobile.as_str(), "Mobile");
        assert_eq!(Device::Tablet.as_str(), "Tablet");
    }

    #[test]
    fn version_helpers() {
        assert_eq!(major("120.0.1"), "120");
        assert_eq!(major("UNKNOWN"), "");
        assert_eq!(major_minor("10.15.7"), "10.15");
        assert_eq!(major_minor("14"), "14");
        assert_eq!(major_minor("14."), "14");
        assert_eq!(major_minor("x86_64 1.2"), "");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            "\0",
            "\u{feff}",
            "ü",
            "🦀🦀🦀",
            "(",
            ")",
            ";;;;",
            "/",
            "Mozilla/",
            "Android",
            "iPad",
            "Tablet",
            "Windows ",
            "Windows NT",
            "Mac OS X ",
            "CPU iPhone OS _ like",
            "Version/",
            "Chrome/.",
            "MSIE ",
            "Trident/",
            "rv:",
            "Edg/",
            "OPR/",
            "SamsungBrowser/",
        ];
        for a in odd {
            for b in odd {
                let _ = classify(&format!("{a}{b}"));
                let _ = classify(&format!("Mozilla/5.0 ({a}; {b}) {b}/{a}"));
            }
        }
        let _ = classify(&"x".repeat(100_000));
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics(s in "\\PC*") {
            let _ = classify(&s);
        }
    }
}
