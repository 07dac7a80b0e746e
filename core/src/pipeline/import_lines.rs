//! The lines of an import, whatever the backend: each NDJSON line through the same checks as
//! `POST /api/event` (`model::ingest`) into a log entry with its id, handed in batches to a
//! sink (the embedded event log, or a Kinesis stream), counting what happened to every line.
//!
//! Visitor ids of imported events use import salts, one per UTC day, derived from a random key
//! kept in the backend's redb file ([`import_key`]; so re-runs make the same ids); they never
//! match live visitors' ids.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::collections::BTreeMap;
use std::hash::Hasher;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;
use tally_model::agent;
use tally_model::event::LogEntry;
use tally_model::ingest::{Parsed, RequestContext};
use tally_model::visitor::{Salt, Salts, route, route_of_key, visitor_id_of_key};
use tally_model::wire;

/// Entries handed to the sink at once.
pub const BATCH: usize = 10_000;
/// Most user agents whose bot verdict one import remembers (more start the memory afresh).
const BOTS_KEPT: usize = 20_000;
/// Longest accepted line; longer ones are rejected (an event body is at most 64 KiB).
const MAX_LINE_BYTES: usize = 70_000;
const DAY_MS: i64 = 86_400_000;
/// Fields of an import line that are not ingest fields.
const IMPORT_FIELDS: [&str; 8] = ["timestamp", "user_agent", "ip", "visitor", "country", "region", "city", "id"];
/// The import salts' key: (name) → 16 random bytes, made on the first import.
const IMPORT_KEY: TableDefinition<&str, [u8; 16]> = TableDefinition::new("import_key");

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Lines read (blank lines not counted).
    pub lines: u64,
    /// Events accepted into the log.
    pub accepted: u64,
    /// Events already imported before (same id): not counted again.
    pub duplicates: u64,
    /// Events dropped, by drop reason (as `X-Tally-Dropped` names them).
    pub dropped: BTreeMap<String, u64>,
    /// Lines that are not an import event, by what is wrong.
    pub rejected: BTreeMap<String, u64>,
}

/// The id an import gives an entry, and the id an older release gave the same line, if
/// different: the embedded log, which may hold ids of older releases, looks that one up too, so a
/// file imported before an upgrade still counts nothing twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportId {
    /// The id recorded now (also the event's id).
    pub id: u128,
    /// The id older releases recorded for the same line.
    pub before: Option<u128>,
}

/// A batch of accepted lines: their entries and ids, in input order.
#[derive(Debug, Default)]
pub struct Batch {
    /// The events (lines the checks drop are only counted).
    pub entries: Vec<LogEntry>,
    /// Their ids.
    pub ids: Vec<ImportId>,
    /// Their routes (`tally_model::visitor::route`), which pick their sub-partitions on a stream.
    pub routes: Vec<u64>,
}

/// Reads every line of `reader` and hands the entries to `sink` in batches of [`BATCH`]; the
/// sink returns how many of a batch it already held (not added again). `key` makes the import
/// salts, `is_site` tells registered sites; `progress` hears the bytes read so far and the events
/// accepted after each batch.
pub fn read_lines(
    reader: &mut dyn BufRead,
    key: &[u8; 16],
    is_site: &dyn Fn(&str) -> bool,
    sink: &mut dyn FnMut(Batch) -> anyhow::Result<usize>,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut batch = Batch::default();
    let mut read = 0u64;
    let mut bots = Bots::default();
    let mut hand_over = |batch: &mut Batch, summary: &mut Summary| -> anyhow::Result<()> {
        if batch.entries.is_empty() {
            return Ok(());
        }
        let n = batch.entries.len() as u64;
        let held = sink(std::mem::take(batch))? as u64;
        summary.duplicates += held;
        summary.accepted += n - held;
        Ok(())
    };
    for line in reader.split(b'\n') {
        let line = line.context("reading the input")?;
        read += line.len() as u64 + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        summary.lines += 1;
        match parse_line(line, key, is_site, &mut bots) {
            Ok((LogEntry::Drop(drop), ..)) => {
                *summary.dropped.entry(drop.reason.as_str().to_owned()).or_default() += 1;
            }
            Ok((entry, id, route)) => {
                batch.entries.push(entry);
                batch.ids.push(id);
                batch.routes.push(route);
            }
            Err(reason) => *summary.rejected.entry(reason.to_owned()).or_default() += 1,
        }
        if batch.entries.len() >= BATCH {
            hand_over(&mut batch, &mut summary)?;
            progress(read, summary.accepted);
        }
    }
    hand_over(&mut batch, &mut summary)?;
    progress(read, summary.accepted);
    Ok(summary)
}

/// Where the events come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

/// The input as a buffered reader, with its size when it is a file.
pub fn open_input(input: &Input) -> anyhow::Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    Ok(match input {
        Input::File(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(std::io::BufReader::with_capacity(1 << 20, file)), size)
        }
        Input::Stdin => (Box::new(std::io::BufReader::new(std::io::stdin())), None),
    })
}

/// A progress bar over the input's bytes (a spinner without a size), or a hidden one.
pub fn progress_bar(visible: bool, size: Option<u64>) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = size.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
    let template = if size.is_some() {
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}"
    } else {
        "{spinner} {bytes} read, {bytes_per_sec} {msg}"
    };
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    bar
}

/// The summary as the command prints it.
pub fn render(summary: &Summary, took: Duration) -> String {
    let mut out = format!(
        "imported {} events from {} lines in {:.1} s ({:.0} lines/s)\n",
        summary.accepted,
        summary.lines,
        took.as_secs_f64(),
        summary.lines as f64 / took.as_secs_f64().max(1e-9)
    );
    out += &format!("already imported (skipped): {}\n", summary.duplicates);
    let dropped: u64 = summary.dropped.values().sum();
    out += &format!("dropped: {dropped}\n");
    for (reason, n) in &summary.dropped {
        out += &format!("  {reason}: {n}\n");
    }
    let rejected: u64 = summary.rejected.values().sum();
    out += &format!("rejected lines: {rejected}\n");
    for (reason, n) in &summary.rejected {
        out += &format!("  {reason}: {n}\n");
    }
    out
}

/// The key the import salts are derived from: made on the first import and kept in the backend's
/// redb file (the embedded event log's, or the Kinesis import ledger's), so re-runs make the same
/// visitor ids.
pub fn import_key(db: &Database) -> anyhow::Result<[u8; 16]> {
    let txn = db.begin_write()?;
    let key = {
        let mut table = txn.open_table(IMPORT_KEY)?;
        let existing = table.get("salt_key")?.map(|v| v.value());
        match existing {
            Some(key) => key,
            None => {
                let mut key = [0u8; 16];
                getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for the import key: {e}"))?;
                table.insert("salt_key", key)?;
                key
            }
        }
    };
    txn.commit()?;
    Ok(key)
}

/// The import salt of a UTC day.
pub fn salt_of_day(key: &[u8; 16], day: i64) -> Salt {
    let mut hasher = SipHasher13::new_with_key(key);
    hasher.write_i64(day);
    Salt(hasher.finish128().as_bytes())
}

/// The bot verdicts of the user agents seen so far ([`agent::classify`] is most of a line's cost,
/// and an import repeats a few thousand user agents).
#[derive(Default)]
struct Bots(crate::pipeline::flush::FastMap<String, bool>);

impl Bots {
    fn is_bot(&mut self, user_agent: &str) -> bool {
        if let Some(&bot) = self.0.get(user_agent) {
            return bot;
        }
        if self.0.len() >= BOTS_KEPT {
            self.0.clear();
        }
        let bot = agent::classify(user_agent).bot;
        self.0.insert(user_agent.to_owned(), bot);
        bot
    }
}

/// One line → its log entry (event or drop) and its id, or what is wrong with the line.
fn parse_line(
    line: &[u8],
    key: &[u8; 16],
    is_site: &dyn Fn(&str) -> bool,
    bots: &mut Bots,
) -> Result<(LogEntry, ImportId, u64), &'static str> {
    if line.len() > MAX_LINE_BYTES {
        return Err("line_too_long");
    }
    wire::check_depth(line).map_err(|rejection| rejection.code())?;
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(line) else {
        return Err("not_a_json_object");
    };
    let received_ms = timestamp(fields.get("timestamp"))?;
    let user_agent = match fields.get("user_agent") {
        Some(Value::String(ua)) => ua.clone(),
        None | Some(Value::Null) => return Err("missing_user_agent"),
        Some(_) => return Err("bad_user_agent"),
    };
    let visitor = match (fields.get("ip"), fields.get("visitor")) {
        (Some(Value::String(ip)), _) => Who::Ip(ip.trim().parse().map_err(|_| "bad_ip")?),
        (_, Some(Value::String(v))) if !v.is_empty() => Who::Key(v.clone()),
        (_, Some(Value::Number(n))) => Who::Key(n.to_string()),
        _ => return Err("missing_ip_or_visitor"),
    };
    let text = |name: &str, bad: &'static str| match fields.get(name) {
        Some(Value::String(c)) => Ok(Some(c.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(bad),
    };
    let country = text("country", "bad_country")?;
    let region = text("region", "bad_region")?;
    let city = text("city", "bad_city")?;
    let id = match fields.get("id") {
        Some(Value::String(s)) => ImportId { id: hash128(s.as_bytes(), 1), before: None },
        Some(Value::Number(n)) => ImportId { id: hash128(n.to_string().as_bytes(), 1), before: None },
        None | Some(Value::Null) => line_id(received_ms, line),
        Some(_) => return Err("bad_id"),
    };
    for field in IMPORT_FIELDS {
        fields.remove(field);
    }
    let day = received_ms.div_euclid(DAY_MS);
    let salts = Salts { current: salt_of_day(key, day), previous: salt_of_day(key, day - 1) };
    let ip = match &visitor {
        Who::Ip(ip) => *ip,
        Who::Key(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let ctx = RequestContext {
        content_type: None,
        user_agent: &user_agent,
        ip,
        country: country.as_deref(),
        region: region.as_deref(),
        city: city.as_deref(),
        received_ms,
        salts: &salts,
        first_event_id: id.id,
    };
    let mut entries = Parsed::one(&fields).enrich_as(bots.is_bot(&user_agent), &ctx, is_site);
    let (Some(mut entry), true) = (entries.pop(), entries.is_empty()) else {
        return Err("not_one_event");
    };
    let mut route_of = 0;
    if let LogEntry::Event(event) = &mut entry {
        route_of = match &visitor {
            Who::Key(visitor) => {
                event.visitor.current = visitor_id_of_key(&salts.current, &event.site, visitor);
                event.visitor.previous = visitor_id_of_key(&salts.previous, &event.site, visitor);
                route_of_key(&event.site, visitor)
            }
            Who::Ip(ip) => route(&event.site, *ip, &event.user_agent),
        };
    }
    Ok((entry, id, route_of))
}

/// What an imported visitor id is made of.
enum Who {
    /// An IP address (with the user agent), as live events.
    Ip(IpAddr),
    /// An explicit key.
    Key(String),
}

/// `timestamp`: RFC 3339 text or ms since the epoch, between 1970 and 9999.
fn timestamp(value: Option<&Value>) -> Result<i64, &'static str> {
    let ms = match value {
        Some(Value::String(text)) => text.parse::<jiff::Timestamp>().map_err(|_| "bad_timestamp")?.as_millisecond(),
        Some(Value::Number(n)) => n.as_i64().ok_or("bad_timestamp")?,
        None | Some(Value::Null) => return Err("missing_timestamp"),
        Some(_) => return Err("bad_timestamp"),
    };
    const MAX_MS: i64 = 253_402_300_799_999;
    if (0..=MAX_MS).contains(&ms) { Ok(ms) } else { Err("bad_timestamp") }
}

/// The id of a line without an `id` field: its timestamp (ms) in the high 64 bits and a hash of
/// its bytes in the low 64, so that a time-ordered file adds its ids at the end of their B-tree
/// (random 128-bit ids made each append rewrite thousands of its pages). Two different lines of
/// one millisecond are taken for one only if their hashes collide in 64 bits (about 2⁻⁶⁴ per
/// pair). `before` is what releases before this one recorded: the whole hash.
fn line_id(received_ms: i64, line: &[u8]) -> ImportId {
    let hash = hash128(line, 0);
    ImportId {
        id: (u128::from(received_ms.max(0).cast_unsigned()) << 64) | (hash & u128::from(u64::MAX)),
        before: Some(hash),
    }
}

fn hash128(bytes: &[u8], domain: u8) -> u128 {
    let mut hasher = SipHasher13::new_with_keys(0x7461_6c6c_795f_696d, 0x706f_7274_5f69_6431);
    hasher.write_u8(domain);
    hasher.write(bytes);
    hasher.finish128().as_u128()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

    fn line(extra: &str) -> String {
        format!(
            r#"{{"name":"pageview","url":"https://a.com/x","domain":"a.com","timestamp":"2026-11-01T10:00:00Z","user_agent":"{UA}"{extra}}}"#
        )
    }

    fn parse(text: &str) -> Result<(LogEntry, ImportId), &'static str> {
        parse_line(text.as_bytes(), &[7; 16], &|d| d == "a.com", &mut Bots::default()).map(|(e, id, _)| (e, id))
    }

    #[test]
    fn a_line_becomes_an_event_with_its_time_and_a_stable_id() {
        let text = line(r#","ip":"203.0.113.9","country":"de","region":"BE","city":"Berlin""#);
        let (entry, id) = parse(&text).expect("valid line");
        let LogEntry::Event(event) = entry else { panic!("an event") };
        assert_eq!(event.received_ms, 1_793_527_200_000);
        assert_eq!(event.country.as_deref(), Some("DE"));
        assert_eq!((event.region.as_deref(), event.city.as_deref()), (Some("DE-BE"), Some("Berlin")));
        let Ok((LogEntry::Event(no_country), _)) = parse(&line(r#","ip":"203.0.113.9","region":"BE","city":"Berlin""#))
        else {
            panic!("an event")
        };
        assert_eq!((no_country.region, no_country.city), (None, None), "no region or city without a country");
        assert_eq!(parse(&text).expect("valid").1, id, "the same line gets the same id");
        let visitor = |v: &str| match parse(&line(&format!(r#","visitor":"{v}""#))) {
            Ok((LogEntry::Event(e), _)) => e.visitor.current,
            other => panic!("{other:?}"),
        };
        assert_eq!(visitor("u1"), visitor("u1"));
        assert_ne!(visitor("u1"), visitor("u2"));
    }

    #[test]
    fn the_salts_key_is_made_once_per_file() {
        let path = std::env::temp_dir().join(format!("tally-import-key-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let made = import_key(&Database::create(&path).expect("db")).expect("made");
        assert_eq!(import_key(&Database::create(&path).expect("db")).expect("read"), made, "kept across opens");
        let _ = std::fs::remove_file(&path);
        let other = import_key(&Database::create(&path).expect("db")).expect("made");
        assert_ne!(other, made, "a new file makes a new random key");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(parse("[1]").err(), Some("not_a_json_object"));
        assert_eq!(parse(&line("")).err(), Some("missing_ip_or_visitor"));
        assert_eq!(parse(&line(r#","ip":"300.1.1.1""#)).err(), Some("bad_ip"));
        assert_eq!(parse(&line(r#","ip":"203.0.113.9","region":7"#)).err(), Some("bad_region"));
        assert_eq!(parse(&line(r#","ip":"203.0.113.9","city":[]"#)).err(), Some("bad_city"));
        let no_time = line(r#","ip":"1.2.3.4""#).replace(r#""timestamp":"2026-11-01T10:00:00Z","#, "");
        assert_eq!(parse(&no_time).err(), Some("missing_timestamp"));
        let other_site = line(r#","ip":"1.2.3.4""#).replace(r#""domain":"a.com""#, r#""domain":"b.com""#);
        assert!(matches!(parse(&other_site), Ok((LogEntry::Drop(_), _))));
        let deep = line(&format!(r#","ip":"1.2.3.4","p":{}1{}"#, "[".repeat(9), "]".repeat(9)));
        assert_eq!(parse(&deep).err(), Some("nesting_too_deep"), "the body's nesting bound holds for lines");
    }
}
