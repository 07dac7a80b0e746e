//! The wire format trackers send: Plausible's Events API body, one event or a batch of them.
//!
//! Long keys (`name`, `url`, `domain`, `referrer`, `props`, `revenue`, `interactive`) and the
//! short keys of Plausible's script (`n`, `u`, `d`, `r`, `p`, `$`, `i`) are both accepted.
//! Problems with the body as a whole are a [`Rejection`]; problems with one event are a
//! [`DropReason`] for that event alone.

use crate::event::{ENGAGEMENT, Engagement};
use crate::limits::{
    MAX_BATCH_EVENTS, MAX_BODY_BYTES, MAX_DOMAINS_PER_EVENT, MAX_EVENT_NAME_CHARS, MAX_JSON_DEPTH, MAX_PROP_NAME_CHARS,
    MAX_PROP_VALUE_CHARS, MAX_PROPS, MAX_REFERRER_CHARS, MAX_URL_CHARS,
};
use crate::reject::{DropReason, Rejection};
use crate::site::normalize_domain;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Revenue attached to an event, as sent: a decimal amount and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revenue {
    /// The amount as a decimal string, e.g. `"12.50"`.
    pub amount: String,
    /// The upper-case three-letter currency code, e.g. `"EUR"`.
    pub currency: String,
}

/// One event as sent, checked against the limits but not yet normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    /// Event name: `pageview` or a custom goal name.
    pub name: String,
    /// The page URL, at most [`MAX_URL_CHARS`] characters (not yet parsed).
    pub url: String,
    /// The site id: the normalised domain.
    pub domain: String,
    /// The referrer, if any, at most [`MAX_REFERRER_CHARS`] characters.
    pub referrer: Option<String>,
    /// Custom properties, sorted by name, values as strings.
    pub props: Vec<(String, String)>,
    /// Revenue, if any.
    pub revenue: Option<Revenue>,
    /// Whether the event counts against a bounce (Plausible's `interactive`, default true).
    pub interactive: bool,
    /// An `engagement` event's scroll depth (`sd`) and engaged time (`e`); `None` on others.
    pub engagement: Option<Engagement>,
    /// Whether the tracker runs in hash mode (`hash_mode` or Plausible's `h`: `1` or `true`):
    /// the URL's fragment is part of the page's path.
    pub hash_mode: bool,
}

/// An event of the body that cannot be taken, with the domain it named when that was readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireDrop {
    /// The normalised domain, when the event had a valid one.
    pub domain: Option<String>,
    /// Why it was dropped.
    pub reason: DropReason,
}

/// Accepts `application/json`, `text/plain` (what `navigator.sendBeacon` sends) or no type.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), Rejection> {
    let Some(value) = content_type else {
        return Ok(());
    };
    let mime = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "text/plain" | "" => Ok(()),
        _ => Err(Rejection::UnsupportedContentType),
    }
}

/// Parses a request body into its events, each either checked or dropped with a reason.
pub fn parse_body(body: &[u8]) -> Result<Vec<Result<WireEvent, WireDrop>>, Rejection> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Rejection::BodyTooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| Rejection::InvalidUtf8)?;
    if text.trim().is_empty() {
        return Err(Rejection::EmptyBody);
    }
    check_depth(text.as_bytes())?;
    let value: Value = serde_json::from_str(text).map_err(|_| Rejection::InvalidJson)?;
    let items = match value {
        Value::Object(event) => vec![Value::Object(event)],
        Value::Array(items) if (1..=MAX_BATCH_EVENTS).contains(&items.len()) => items,
        Value::Array(_) => return Err(Rejection::BadBatchSize),
        _ => return Err(Rejection::NotAnEvent),
    };
    // An event sent to several sites is copied once per site: the copies are bounded as a body
    // is, at most a batch's events and the body's bytes in all (the queue message and the
    // Kinesis record that carry them have room for that, not for more).
    let (mut entries, mut bytes) = (0usize, body.len());
    for item in &items {
        let copies = item.as_object().map_or(1, domain_copies);
        entries += copies;
        if copies > 1 {
            bytes += (copies - 1) * item.to_string().len();
        }
    }
    if entries > MAX_BATCH_EVENTS {
        return Err(Rejection::BadBatchSize);
    }
    if bytes > MAX_BODY_BYTES {
        return Err(Rejection::BodyTooLarge);
    }
    Ok(items
        .iter()
        .flat_map(|item| match item {
            Value::Object(event) => parse_event_for_each_domain(event),
            _ => vec![Err(WireDrop { domain: None, reason: DropReason::WrongType })],
        })
        .collect())
}

/// How many events [`parse_event_for_each_domain`] makes of `event`: one per site of a
/// comma-separated domain, else one.
fn domain_copies(event: &Map<String, Value>) -> usize {
    match required_str(event, "domain", "d") {
        Ok(raw) if raw.contains(',') => {
            let sites = raw.split(',').filter(|d| !d.trim().is_empty()).count();
            if (1..=MAX_DOMAINS_PER_EVENT).contains(&sites) { sites } else { 1 }
        }
        _ => 1,
    }
}

/// Refuses a JSON text nested deeper than [`MAX_JSON_DEPTH`] (checked before it is parsed).
pub fn check_depth(text: &[u8]) -> Result<(), Rejection> {
    // A text with no more opening brackets than the bound cannot nest deeper (a quick count that
    // most bodies pass, instead of following strings and escapes byte by byte).
    let opening = text.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opening > MAX_JSON_DEPTH && json_depth(text) > MAX_JSON_DEPTH { Err(Rejection::NestingTooDeep) } else { Ok(()) }
}

/// One event given as a parsed JSON object (a host that parsed the body itself: `tally import`,
/// whose lines carry fields of their own beside the event's), checked or dropped with a reason.
pub fn parse_object(event: &Map<String, Value>) -> Result<WireEvent, WireDrop> {
    parse_event(event)
}

/// The deepest nesting of arrays and objects in a JSON text, without parsing it.
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The value under the long key or, failing that, the short key.
fn field<'a>(event: &'a Map<String, Value>, long: &str, short: &str) -> Option<&'a Value> {
    event.get(long).or_else(|| event.get(short)).filter(|v| !v.is_null())
}

fn required_str<'a>(event: &'a Map<String, Value>, long: &str, short: &str) -> Result<&'a str, DropReason> {
    match field(event, long, short) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(DropReason::WrongType),
        None => Err(DropReason::MissingField),
    }
}

/// An event of a body, once per site its `domain` names: Plausible's script sends
/// `"a.example,b.example"` to count one page view on several sites (at most
/// [`MAX_DOMAINS_PER_EVENT`]; more is one `invalid_domain` drop). Each domain is checked on its
/// own, so one that is not valid drops only its copy.
fn parse_event_for_each_domain(event: &Map<String, Value>) -> Vec<Result<WireEvent, WireDrop>> {
    let Ok(raw) = required_str(event, "domain", "d") else { return vec![parse_event(event)] };
    if !raw.contains(',') {
        return vec![parse_event(event)];
    }
    let domains: Vec<&str> = raw.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    if domains.is_empty() || domains.len() > MAX_DOMAINS_PER_EVENT {
        return vec![Err(WireDrop { domain: None, reason: DropReason::InvalidDomain })];
    }
    domains
        .into_iter()
        .map(|raw| {
            let domain = normalize_domain(raw).ok_or(WireDrop { domain: None, reason: DropReason::InvalidDomain })?;
            check_fields(event, &domain).map_err(|reason| WireDrop { domain: Some(domain.clone()), reason })
        })
        .collect()
}

fn parse_event(event: &Map<String, Value>) -> Result<WireEvent, WireDrop> {
    let domain = match required_str(event, "domain", "d") {
        Ok(raw) => normalize_domain(raw).ok_or(DropReason::InvalidDomain),
        Err(reason) => Err(reason),
    };
    let domain = domain.map_err(|reason| WireDrop { domain: None, reason })?;
    let drop = |reason| WireDrop { domain: Some(domain.clone()), reason };
    check_fields(event, &domain).map_err(drop)
}

fn check_fields(event: &Map<String, Value>, domain: &str) -> Result<WireEvent, DropReason> {
    let name = required_str(event, "name", "n")?.trim();
    if name.is_empty() || name.chars().count() > MAX_EVENT_NAME_CHARS {
        return Err(DropReason::InvalidName);
    }
    let url = required_str(event, "url", "u")?.trim();
    if url.chars().count() > MAX_URL_CHARS {
        return Err(DropReason::InvalidUrl);
    }
    let referrer = match field(event, "referrer", "r") {
        None => None,
        Some(Value::String(r)) if r.trim().is_empty() => None,
        Some(Value::String(r)) if r.chars().count() > MAX_REFERRER_CHARS => {
            return Err(DropReason::ReferrerTooLong);
        }
        Some(Value::String(r)) => Some(r.trim().to_owned()),
        Some(_) => return Err(DropReason::WrongType),
    };
    let interactive = match field(event, "interactive", "i") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(DropReason::WrongType),
    };
    let engagement = (name == ENGAGEMENT).then(|| parse_engagement(event)).transpose()?;
    // As Plausible's tracker sends it, `1`; `true` too. Anything else is not hash mode.
    let hash_mode = match field(event, "hash_mode", "h") {
        Some(Value::Bool(on)) => *on,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n == 1.0),
        _ => false,
    };
    Ok(WireEvent {
        engagement,
        hash_mode,
        name: name.to_owned(),
        url: url.to_owned(),
        domain: domain.to_owned(),
        referrer,
        props: parse_props(field(event, "props", "p"))?,
        revenue: field(event, "revenue", "$").map(parse_revenue).transpose()?,
        interactive,
    })
}

/// Longest engaged time one engagement event may report (Plausible's bound): 30 days.
const MAX_ENGAGED_MS: u64 = 30 * 24 * 3_600_000;

/// An engagement event's `sd` (scroll depth in percent: a number or numeric string, above 100
/// taken as 100, negative or unreadable as not sent) and `e` (engaged milliseconds, 0 when
/// missing or out of `0..30 days`), as Plausible reads them. One that carries neither is dropped.
fn parse_engagement(event: &Map<String, Value>) -> Result<Engagement, DropReason> {
    let number = |value: Option<&Value>| match value {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let scroll_depth =
        number(event.get("sd")).filter(|d| d.is_finite() && *d >= 0.0).map(|d| d.round().min(100.0) as u8);
    let engaged_ms = number(event.get("e"))
        .filter(|e| e.is_finite() && *e >= 0.0 && *e < MAX_ENGAGED_MS as f64)
        .map_or(0, |e| e as u32);
    if scroll_depth.is_none() && engaged_ms == 0 {
        return Err(DropReason::MissingField);
    }
    Ok(Engagement { scroll_depth, engaged_ms })
}

/// Props are an object of scalars, or (as older trackers send them) a string holding one.
fn parse_props(props: Option<&Value>) -> Result<Vec<(String, String)>, DropReason> {
    let parsed;
    let map = match props {
        None => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Map<String, Value>>(s).map_err(|_| DropReason::WrongType)?;
            &parsed
        }
        Some(_) => return Err(DropReason::WrongType),
    };
    if map.len() > MAX_PROPS {
        return Err(DropReason::TooManyProps);
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        if name.is_empty() || name.chars().count() > MAX_PROP_NAME_CHARS {
            return Err(DropReason::PropNameTooLong);
        }
        let value = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => return Err(DropReason::PropValueNotScalar),
        };
        if value.chars().count() > MAX_PROP_VALUE_CHARS {
            return Err(DropReason::PropValueTooLong);
        }
        out.push((name.clone(), value));
    }
    out.sort();
    Ok(out)
}

fn parse_revenue(value: &Value) -> Result<Revenue, DropReason> {
    let Value::Object(map) = value else {
        return Err(DropReason::InvalidRevenue);
    };
    let amount = match map.get("amount") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_owned(),
        _ => return Err(DropReason::InvalidRevenue),
    };
    let currency = match map.get("currency") {
        Some(Value::String(s)) => s.trim().to_ascii_uppercase(),
        _ => return Err(DropReason::InvalidRevenue),
    };
    // A decimal below 10^12 in magnitude (`money::micros_of` is what the aggregates count).
    let amount_ok = amount.len() <= 24 && crate::money::micros_of(&amount).is_some();
    let currency_ok = crate::money::Currency::parse(&currency).is_some();
    if amount_ok && currency_ok { Ok(Revenue { amount, currency }) } else { Err(DropReason::InvalidRevenue) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Result<WireEvent, WireDrop> {
        let mut events = parse_body(body.as_bytes()).expect("body accepted");
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn long_and_short_keys_mean_the_same() {
        let long = one(
            r#"{"name":"pageview","url":"https://a.com/x","domain":"a.com","referrer":"https://b.com/","props":{"k":"v","n":2},"revenue":{"amount":"1.50","currency":"eur"},"interactive":false}"#,
        );
        let short = one(
            r#"{"n":"pageview","u":"https://a.com/x","d":"a.com","r":"https://b.com/","p":"{\"k\":\"v\",\"n\":2}","$":{"amount":1.50,"currency":"EUR"},"i":false}"#,
        );
        let long = long.expect("valid");
        assert_eq!(long.props, vec![("k".into(), "v".into()), ("n".into(), "2".into())]);
        assert_eq!(long.revenue, Some(Revenue { amount: "1.50".into(), currency: "EUR".into() }));
        assert_eq!(short.expect("valid").props, long.props);
    }

    #[test]
    fn hash_mode_is_h_one_or_true() {
        let mode = |extra: &str| {
            one(&format!(r#"{{"n":"pageview","u":"https://a.com/#/x","d":"a.com"{extra}}}"#)).expect("valid").hash_mode
        };
        assert!(mode(r#","h":1"#) && mode(r#","h":true"#) && mode(r#","hash_mode":1"#));
        assert!(!mode("") && !mode(r#","h":0"#) && !mode(r#","h":"1""#) && !mode(r#","h":2"#) && !mode(r#","h":null"#));
    }

    #[test]
    fn a_comma_separated_domain_is_one_event_per_site() {
        let body = r#"{"n":"pageview","u":"https://a.com/x","d":"a.com, www.B.com,,"}"#;
        let events = parse_body(body.as_bytes()).expect("body accepted");
        let domains: Vec<String> = events.iter().map(|e| e.as_ref().expect("valid").domain.clone()).collect();
        assert_eq!(domains, ["a.com", "b.com"], "each normalised; empty parts skipped");
        // A part that is no domain drops only its copy; a field that is wrong drops every copy.
        let events = parse_body(br#"{"n":"pageview","u":"https://a.com/","d":"a.com,not a domain"}"#).expect("body");
        assert!(events[0].is_ok());
        assert_eq!(events[1], Err(WireDrop { domain: None, reason: DropReason::InvalidDomain }));
        let events = parse_body(br#"{"n":"","u":"https://a.com/","d":"a.com,b.com"}"#).expect("body");
        let reasons: Vec<_> = events.iter().map(|e| e.as_ref().map_err(|d| (d.domain.clone(), d.reason))).collect();
        assert_eq!(
            reasons,
            [
                Err((Some("a.com".into()), DropReason::InvalidName)),
                Err((Some("b.com".into()), DropReason::InvalidName))
            ]
        );
        // Past the bound: one drop. In a batch, each event is expanded in place; the copies of
        // a body count as a batch's events and its bytes.
        let batch = format!("[{}]", [r#"{"n":"pageview","u":"https://a.com/","d":"a.com,b.com,c.com"}"#; 9].join(","));
        assert_eq!(parse_body(batch.as_bytes()), Err(Rejection::BadBatchSize), "27 copies");
        let x = "x".repeat(2_000);
        let long = format!(
            r#"{{"n":"pageview","u":"https://a.com/","d":"a.com,b.com,c.com","p":{{"a":"{x}","b":"{x}","c":"{x}","d":"{x}"}}}}"#
        );
        let batch = format!("[{}]", vec![long; 6].join(","));
        assert!(batch.len() < MAX_BODY_BYTES, "the body itself is within the bound");
        assert_eq!(parse_body(batch.as_bytes()), Err(Rejection::BodyTooLarge), "18 copies of 8 KB");
        let many = (0..=MAX_DOMAINS_PER_EVENT).map(|i| format!("s{i}.com")).collect::<Vec<_>>().join(",");
        let body = format!(r#"{{"n":"pageview","u":"https://a.com/","d":"{many}"}}"#);
        let events = parse_body(body.as_bytes()).expect("body");
        assert_eq!(events, [Err(WireDrop { domain: None, reason: DropReason::InvalidDomain })]);
        let batch = br#"[{"n":"pageview","u":"https://a.com/","d":"a.com,b.com"},{"n":"pageview","u":"https://c.com/","d":"c.com"}]"#;
        let domains: Vec<String> =
            parse_body(batch).expect("body").into_iter().map(|e| e.expect("valid").domain).collect();
        assert_eq!(domains, ["a.com", "b.com", "c.com"]);
        // An import line is one event of one site.
        let line: Map<String, Value> =
            serde_json::from_str(r#"{"n":"pageview","u":"https://a.com/","d":"a.com,b.com"}"#).expect("json");
        assert_eq!(parse_object(&line).map_err(|d| d.reason), Err(DropReason::InvalidDomain));
    }

    #[test]
    fn engagement_events_carry_scroll_depth_and_engaged_time_as_plausible_reads_them() {
        let engagement = |extra: &str| {
            one(&format!(r#"{{"n":"engagement","u":"https://a.com/x","d":"a.com"{extra}}}"#))
                .map(|e| e.engagement)
                .map_err(|d| d.reason)
        };
        let measured = |scroll_depth, engaged_ms| Ok(Some(Engagement { scroll_depth, engaged_ms }));
        assert_eq!(engagement(r#","sd":42,"e":1500"#), measured(Some(42), 1500));
        assert_eq!(engagement(r#","sd":"42","e":"1500""#), measured(Some(42), 1500), "numeric strings");
        assert_eq!(engagement(r#","sd":250"#), measured(Some(100), 0), "over 100 is 100");
        assert_eq!(engagement(r#","sd":-3,"e":10"#), measured(None, 10), "negative: not sent");
        assert_eq!(engagement(r#","sd":"deep","e":10"#), measured(None, 10), "unreadable: not sent");
        assert_eq!(engagement(r#","sd":5,"e":-1"#), measured(Some(5), 0), "negative time: none");
        assert_eq!(engagement(r#","sd":5,"e":2592000000"#), measured(Some(5), 0), "30 days or more: none");
        assert_eq!(engagement(r#","sd":0"#), measured(Some(0), 0), "a depth of 0 is a measurement");
        assert_eq!(engagement(""), Err(DropReason::MissingField), "measuring nothing");
        assert_eq!(engagement(r#","e":0"#), Err(DropReason::MissingField));
        // Other events ignore both keys.
        let pageview = one(r#"{"n":"pageview","u":"https://a.com/x","d":"a.com","sd":42,"e":1500}"#);
        assert_eq!(pageview.map(|e| e.engagement), Ok(None));
    }

    #[test]
    fn body_level_rejections() {
        let cases: [(&[u8], Rejection); 7] = [
            (b"", Rejection::EmptyBody),
            (b"{not json", Rejection::InvalidJson),
            (b"\"a string\"", Rejection::NotAnEvent),
            (b"[]", Rejection::BadBatchSize),
            (b"{\"n\":\"\xff\"}", Rejection::InvalidUtf8),
            (b"[[[[[[[[[[1]]]]]]]]]]", Rejection::NestingTooDeep),
            (&[b' '; MAX_BODY_BYTES + 1], Rejection::BodyTooLarge),
        ];
        for (body, want) in cases {
            assert_eq!(parse_body(body).err(), Some(want));
        }
        let batch = format!("[{}]", vec!["{}"; MAX_BATCH_EVENTS + 1].join(","));
        assert_eq!(parse_body(batch.as_bytes()).err(), Some(Rejection::BadBatchSize));
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        assert_eq!(json_depth(br#"{"a":"[[[[[[[[[[[[\"{{{{{{{{{{{"}"#), 1);
    }

    #[test]
    fn event_level_drops() {
        let props = (0..=MAX_PROPS).map(|i| format!("\"k{i}\":1")).collect::<Vec<_>>().join(",");
        let cases = [
            (r#"{"name":"pageview","url":"https://a.com/"}"#, DropReason::MissingField, None),
            (r#"{"name":"pageview","url":"https://a.com/","domain":"not a domain"}"#, DropReason::InvalidDomain, None),
            (r#"{"url":"https://a.com/","domain":"a.com"}"#, DropReason::MissingField, Some("a.com")),
            (r#"{"name":"","url":"https://a.com/","domain":"a.com"}"#, DropReason::InvalidName, Some("a.com")),
            (r#"{"name":"x","url":7,"domain":"a.com"}"#, DropReason::WrongType, Some("a.com")),
            (
                r#"{"name":"x","url":"/","domain":"a.com","props":{"k":[1]}}"#,
                DropReason::PropValueNotScalar,
                Some("a.com"),
            ),
            (
                r#"{"name":"x","url":"/","domain":"a.com","$":{"amount":"1e3","currency":"EUR"}}"#,
                DropReason::InvalidRevenue,
                Some("a.com"),
            ),
            (
                r#"{"name":"x","url":"/","domain":"a.com","$":{"amount":"1000000000000","currency":"EUR"}}"#,
                DropReason::InvalidRevenue,
                Some("a.com"),
            ),
        ];
        for (body, reason, domain) in cases {
            assert_eq!(one(body), Err(WireDrop { domain: domain.map(str::to_owned), reason }), "{body}");
        }
        let many = format!(r#"{{"name":"x","url":"/","domain":"a.com","props":{{{props}}}}}"#);
        assert_eq!(one(&many).err().map(|d| d.reason), Some(DropReason::TooManyProps));
        let long_value = format!(
            r#"{{"name":"x","url":"/","domain":"a.com","props":{{"k":"{}"}}}}"#,
            "v".repeat(MAX_PROP_VALUE_CHARS + 1)
        );
        assert_eq!(one(&long_value).err().map(|d| d.reason), Some(DropReason::PropValueTooLong));
        let long_url =
            format!(r#"{{"name":"x","url":"https://a.com/{}","domain":"a.com"}}"#, "p".repeat(MAX_URL_CHARS));
        assert_eq!(one(&long_url).err().map(|d| d.reason), Some(DropReason::InvalidUrl));
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some("text/plain;charset=UTF-8")).is_ok());
        assert!(check_content_type(Some("Application/JSON")).is_ok());
        assert_eq!(
            check_content_type(Some("application/x-www-form-urlencoded")),
            Err(Rejection::UnsupportedContentType)
        );
    }
}
