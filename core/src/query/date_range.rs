//! A Stats API v2 `date_range`, with Plausible's meaning of each form, resolved into the site's
//! local-hour buckets `from..to`.
//!
//! - `"day"`: today; `"month"`, `"year"`: the whole calendar month or year that holds today.
//! - `"Nd"` (1 to 5,000): the N days before today, ending yesterday; `"Nmo"` (1 to 100): the N
//!   whole calendar months before this one.
//! - `"24h"`: the current hour and the 23 before it.
//! - `"all"`: from the site's first day with data to today (the handler asks the store for that
//!   day and passes dates).
//! - `["YYYY-MM-DD", "YYYY-MM-DD"]`: those local days, both included; or two ISO 8601
//!   date-times with an offset: on whole hours of the site's time zone, the hours between them
//!   (an end on a whole hour is not included; the last second of an hour is, as Plausible writes
//!   ranges); otherwise the seconds from the first to the last, both included ([`seconds`]),
//!   which only the segments answer (their rows keep each event's second).
//! - `"realtime"` and `"30m"` are answered before this, from the live events in memory
//!   (`http/realtime.rs`); as buckets they are a 400.

use super::request::QueryError;
use super::suggest::did_you_mean;
use crate::pipeline::timebucket::{bucket_start, day_start, local_hour, today};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;
use std::ops::Range;
use tally_model::rollup::Bucket;

/// Most days an `Nd` preset may name (as Plausible).
const MAX_N_DAYS: i64 = 5_000;
/// Most months an `Nmo` preset may name (as Plausible).
const MAX_N_MONTHS: i64 = 100;

fn invalid<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(message.into()))
}

/// The buckets `date_range` covers for a site in `zone` at `now`.
pub fn buckets(range: &Value, zone: &TimeZone, now: Timestamp) -> Result<Range<Bucket>, QueryError> {
    let today = today(zone, now);
    let days = |from: Date, to: Date| -> Result<Range<Bucket>, QueryError> {
        if from > to {
            return invalid("date_range starts after it ends");
        }
        Ok(day_start(from)..day_start(to) + 24)
    };
    let err = |e: jiff::Error| QueryError(e.to_string());
    match range {
        Value::String(preset) => match preset.as_str() {
            "day" => days(today, today),
            "month" => days(today.first_of_month(), today.last_of_month()),
            "year" => days(today.first_of_year(), today.last_of_year()),
            "24h" => {
                let hour = local_hour(Some(zone), now.as_millisecond());
                Ok(hour - 23..hour + 1)
            }
            "realtime" | "30m" => invalid(format!(
                "date_range `{preset}` needs minute buckets, which Tally does not keep yet; use \"24h\" or \"day\""
            )),
            "all" => invalid("date_range `all` is resolved by the server; this is a bug"),
            other => {
                let (n, unit) = other.split_at(other.find(|c: char| !c.is_ascii_digit()).unwrap_or(other.len()));
                let n: i64 = n.parse().unwrap_or(0);
                match unit {
                    "d" if (1..=MAX_N_DAYS).contains(&n) => {
                        days(today.checked_sub(n.days()).map_err(err)?, today.yesterday().map_err(err)?)
                    }
                    "mo" if (1..=MAX_N_MONTHS).contains(&n) => {
                        let this_month = today.first_of_month();
                        let first = this_month.checked_sub(n.months()).map_err(err)?;
                        days(first, this_month.yesterday().map_err(err)?)
                    }
                    _ => invalid(format!(
                        "unknown date_range `{other}`{}: use day, 24h, Nd (1 to {MAX_N_DAYS}), Nmo (1 to {MAX_N_MONTHS}), \
                         month, year, all, or [from, to] as dates or date-times",
                        did_you_mean(other, ["day", "24h", "7d", "30d", "month", "6mo", "12mo", "year", "all"])
                    )),
                }
            }
        },
        Value::Array(pair) => match pair.as_slice() {
            // A plain date is YYYY-MM-DD alone (jiff would also take the date of a date-time).
            [Value::String(a), Value::String(b)] if a.len() == 10 && b.len() == 10 => {
                let date =
                    |t: &str| t.parse::<Date>().map_err(|_| QueryError(format!("`{t}` is not a date (YYYY-MM-DD)")));
                days(date(a)?, date(b)?)
            }
            [Value::String(a), Value::String(b)] => instants(a, b, zone),
            _ => invalid("date_range as a list is [from, to]: two dates (YYYY-MM-DD) or two ISO 8601 date-times"),
        },
        _ => invalid("date_range is a preset such as \"7d\" or [from, to]"),
    }
}

/// Two date-times of a `date_range`, parsed.
fn date_times(from: &str, to: &str) -> Result<(Timestamp, Timestamp), QueryError> {
    let parse = |text: &str| {
        text.parse::<Timestamp>().map_err(|_| {
            QueryError(format!("`{text}` is neither a date (YYYY-MM-DD) nor a date-time with an offset (ISO 8601)"))
        })
    };
    let (from, to) = (parse(from)?, parse(to)?);
    if from > to {
        return invalid("date_range starts after it ends");
    }
    Ok((from, to))
}

/// Whether `t` is a whole hour of `zone`'s wall clock.
fn on_the_hour(zone: &TimeZone, t: Timestamp) -> bool {
    let local = zone.to_datetime(t);
    local.minute() == 0 && local.second() == 0 && local.subsec_nanosecond() == 0
}

/// The seconds a pair of date-times covers, when they are not the whole hours between them
/// (Unix seconds, both included; a `to` on a whole hour is not included): `None` for every
/// other `date_range`, which covers whole hours.
pub fn seconds(range: &Value, zone: &TimeZone) -> Result<Option<(i64, i64)>, QueryError> {
    let Value::Array(pair) = range else { return Ok(None) };
    let [Value::String(a), Value::String(b)] = pair.as_slice() else { return Ok(None) };
    if a.len() == 10 && b.len() == 10 {
        return Ok(None);
    }
    let (from, to) = date_times(a, b)?;
    let after = to.checked_add(jiff::SignedDuration::from_secs(1)).map_err(|e| QueryError(e.to_string()))?;
    if on_the_hour(zone, from) && (on_the_hour(zone, to) || (on_the_hour(zone, after) && to.subsec_nanosecond() == 0)) {
        return Ok(None);
    }
    let last = if on_the_hour(zone, to) { to.as_second() - 1 } else { to.as_second() };
    if last < from.as_second() {
        return invalid("date_range covers no second");
    }
    Ok(Some((from.as_second(), last)))
}

/// Buckets between two date-times: the hours between them, or the hours that hold the seconds
/// between them ([`seconds`]).
fn instants(from: &str, to: &str, zone: &TimeZone) -> Result<Range<Bucket>, QueryError> {
    let (from, to) = date_times(from, to)?;
    let start = local_hour(Some(zone), from.as_millisecond());
    // The end: a whole hour (not included), else the hour that holds `to`.
    let end = if on_the_hour(zone, to) {
        local_hour(Some(zone), to.as_millisecond())
    } else {
        local_hour(Some(zone), to.as_millisecond()) + 1
    };
    if end <= start {
        return invalid("date_range covers no second");
    }
    Ok(start..end)
}

/// The range as Plausible echoes it: its first and last second, in the site's offset (of a
/// range to the second, those seconds).
pub fn echo(buckets: &Range<Bucket>, seconds: Option<(i64, i64)>, zone: &TimeZone) -> [String; 2] {
    if let Some((from, to)) = seconds {
        return [from, to].map(|s| Timestamp::from_second(s).map_or_else(|_| s.to_string(), |t| iso(zone, t)));
    }
    let at = |bucket: Bucket, minus_one: bool| {
        let start = bucket_start(bucket);
        let local = if minus_one { start.checked_sub(1.second()).unwrap_or(start) } else { start };
        // The offset in force at that wall-clock time (the earlier one where it is ambiguous).
        zone.to_ambiguous_timestamp(local).compatible().map_or_else(|_| local.to_string(), |t| iso(zone, t))
    };
    [at(buckets.start, false), at(buckets.end, true)]
}

/// `at` as an ISO 8601 date-time on `zone`'s wall clock, with its offset
/// (`2026-07-01T00:00:00+02:00`).
pub fn iso(zone: &TimeZone, at: Timestamp) -> String {
    let offset = zone.to_offset(at).seconds();
    let (sign, minutes) = if offset < 0 { ('-', -offset / 60) } else { ('+', offset / 60) };
    format!("{}{sign}{:02}:{:02}", zone.to_datetime(at).strftime("%Y-%m-%dT%H:%M:%S"), minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dates(range: Value, zone: &str, now: &str) -> Result<(String, String), String> {
        let zone = TimeZone::get(zone).expect("a zone");
        let r = buckets(&range, &zone, now.parse().expect("now")).map_err(|e| e.0)?;
        Ok((bucket_start(r.start).to_string(), bucket_start(r.end - 1).to_string()))
    }

    #[test]
    fn presets_mean_what_plausible_means() {
        let now = "2026-03-15T10:30:00Z";
        let day = |from: &str, to: &str| Ok((format!("{from}T00:00:00"), format!("{to}T23:00:00")));
        assert_eq!(dates(json!("day"), "UTC", now), day("2026-03-15", "2026-03-15"));
        assert_eq!(dates(json!("7d"), "UTC", now), day("2026-03-08", "2026-03-14"), "ends yesterday");
        assert_eq!(dates(json!("30d"), "UTC", now), day("2026-02-13", "2026-03-14"));
        assert_eq!(dates(json!("1d"), "UTC", now), day("2026-03-14", "2026-03-14"));
        assert_eq!(dates(json!("month"), "UTC", now), day("2026-03-01", "2026-03-31"), "the whole month");
        assert_eq!(dates(json!("year"), "UTC", now), day("2026-01-01", "2026-12-31"));
        assert_eq!(dates(json!("6mo"), "UTC", now), day("2025-09-01", "2026-02-28"), "whole months before this");
        assert_eq!(dates(json!("12mo"), "UTC", now), day("2025-03-01", "2026-02-28"));
        assert_eq!(
            dates(json!("24h"), "UTC", now),
            Ok(("2026-03-14T11:00:00".to_owned(), "2026-03-15T10:00:00".to_owned())),
            "the current hour and the 23 before"
        );
        // Local days: in Kolkata it is already the 16th.
        assert_eq!(dates(json!("day"), "Asia/Kolkata", "2026-03-15T20:00:00Z"), day("2026-03-16", "2026-03-16"));
    }

    #[test]
    fn date_times_on_whole_local_hours() {
        let zone = "Asia/Kolkata";
        let now = "2026-03-15T10:30:00Z";
        let range = dates(json!(["2026-03-01T10:30:00Z", "2026-03-01T12:30:00Z"]), zone, now);
        assert_eq!(range, Ok(("2026-03-01T16:00:00".to_owned(), "2026-03-01T17:00:00".to_owned())));
        let last_second = dates(json!(["2026-03-01T16:00:00+05:30", "2026-03-01T17:59:59+05:30"]), zone, now);
        assert_eq!(last_second, range, "an hour's last second includes the hour");
        let kolkata = TimeZone::get(zone).expect("zone");
        let whole = seconds(&json!(["2026-03-01T10:30:00Z", "2026-03-01T12:30:00Z"]), &kolkata).map_err(|e| e.0);
        assert_eq!(whole, Ok(None), "whole hours: no seconds to keep to");
        // 10:00Z is 15:30 in Kolkata: the hours that hold the seconds, and the seconds.
        let partial = json!(["2026-03-01T10:00:00Z", "2026-03-01T12:00:00Z"]);
        let hours = dates(partial.clone(), zone, now);
        assert_eq!(hours, Ok(("2026-03-01T15:00:00".to_owned(), "2026-03-01T17:00:00".to_owned())));
        let from: Timestamp = "2026-03-01T10:00:00Z".parse().expect("from");
        let exact = seconds(&partial, &kolkata).map_err(|e| e.0);
        assert_eq!(exact, Ok(Some((from.as_second(), from.as_second() + 7_200))), "12:00Z is 17:30 there: included");
        let to_an_hour = seconds(&json!(["2026-03-01T10:00:00Z", "2026-03-01T12:30:00Z"]), &kolkata).map_err(|e| e.0);
        assert_eq!(to_an_hour, Ok(Some((from.as_second(), from.as_second() + 8_999))), "an end on an hour is not");
        let to_the_second = json!(["2026-03-01T10:00:07Z", "2026-03-01T10:00:09Z"]);
        assert_eq!(
            seconds(&to_the_second, &kolkata).map_err(|e| e.0),
            Ok(Some((from.as_second() + 7, from.as_second() + 9)))
        );
        assert!(dates(json!(["2026-03-01T10:30:00Z", "2026-03-01T10:30:00Z"]), zone, now).is_err());
        let one = seconds(&json!(["2026-03-01T10:00:07Z", "2026-03-01T10:00:07Z"]), &kolkata).map_err(|e| e.0);
        assert_eq!(one, Ok(Some((from.as_second() + 7, from.as_second() + 7))), "one second");
    }

    #[test]
    fn what_is_refused_says_why() {
        let now = "2026-03-15T10:30:00Z";
        for (range, says) in [
            (json!("realtime"), "minute buckets"),
            (json!("0d"), "unknown date_range"),
            (json!("5001d"), "unknown date_range"),
            (json!("101mo"), "unknown date_range"),
            (json!("1y"), "unknown date_range"),
            (json!(["2026-02-01", "2026-01-01"]), "starts after it ends"),
            (json!(["yesterday", "2026-01-01"]), "neither a date"),
            (json!([1, 2]), "two dates"),
        ] {
            let error = dates(range.clone(), "UTC", now).expect_err("refused");
            assert!(error.contains(says), "{range}: {error}");
        }
    }

    #[test]
    fn the_echo_is_the_first_and_last_second_in_the_sites_offset() {
        let zone = TimeZone::get("Europe/Berlin").expect("zone");
        let range = buckets(&json!(["2026-07-01", "2026-07-31"]), &zone, "2026-08-01T00:00:00Z".parse().expect("now"));
        let echo = echo(&range.expect("valid"), None, &zone);
        assert_eq!(echo, ["2026-07-01T00:00:00+02:00".to_owned(), "2026-07-31T23:59:59+02:00".to_owned()]);
    }
}
