//! `tally import --kinesis-stream`: an NDJSON file put on a stream (kinesalite) and counted by
//! `tally ingest` (into dynoxide) answers what the same file imported into the embedded backend
//! answers; every event travels once, under its visitor's partition key.

use crate::bed::{
    Bed, Consumer, DASHBOARD, QueryServer, Serve, dashboard_answer, data_dir, ground_truth, import_to_stream, settle,
    unfolded_days,
};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;
use tally_core::aws::kinesis::api::{self, StartAt};
use tally_model::event::LogEntry;
use tally_model::record::unpack;

const SITES: [&str; 2] = ["site0.example", "site1.example"];
const DAYS: [&str; 3] = ["2026-11-01", "2026-11-02", "2026-11-03"];

/// 3 days of pageviews and custom events of 40 visitors on two sites (visits with gaps over
/// 30 minutes, some across midnight), plus a line of an unknown site and a broken line.
fn ndjson() -> (String, usize) {
    let mut lines = Vec::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let start_ms = 1_793_491_200_000i64; // 2026-11-01T00:00:00Z
    for visitor in 0..40u64 {
        let site = SITES[(visitor % 2) as usize];
        let mut at = start_ms + (next(3 * 86_400) as i64) * 1_000;
        for _ in 0..(1 + next(12)) {
            at += if next(4) == 0 { 3_600_000 } else { (next(600) as i64 + 1) * 1_000 };
            if at >= start_ms + 3 * 86_400_000 {
                break;
            }
            let extra = match next(5) {
                0 => format!(
                    r#""name":"Signup","props":{{"plan":"{}"}},"revenue":{{"amount":"{}.50","currency":"EUR"}}"#,
                    ["pro", "free"][next(2) as usize],
                    next(90)
                ),
                _ => r#""name":"pageview""#.to_owned(),
            };
            let referrer = ["", "https://www.google.com/", "https://news.ycombinator.com/"][next(3) as usize];
            let country = ["DE", "FR", "US"][next(3) as usize];
            lines.push(format!(
                r#"{{{extra},"url":"https://{site}/p/{}","domain":"{site}","referrer":"{referrer}","timestamp":{at},"visitor":"v{visitor}","user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0","country":"{country}"}}"#,
                next(7)
            ));
        }
    }
    let events = lines.len();
    lines.push(r#"{"name":"pageview","url":"https://other.example/","domain":"other.example","timestamp":1793491300000,"visitor":"x","user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}"#.into());
    lines.push("not json".into());
    (lines.join("\n") + "\n", events)
}

/// The conformance suite's requests (Plausible's Stats API v2 examples, `tests/e2e/conformance.rs`)
/// on both stores over the same events: what `tally query` answers equals what `tally serve`
/// answers; what it cannot answer yet (filters, goals, anything the segments answer) is a 400
/// that says the DynamoDB store lacks it.
async fn conformance_on_both(dynamo: &str, dynamo_key: &str, embedded: &str, embedded_key: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/vectors/stats_api_v2_examples.json");
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut same, mut refused, mut with_rows) = (0, Vec::new(), 0);
    for example in file["examples"].as_array().unwrap() {
        let mut request = example["request"].clone();
        request["site_id"] = serde_json::json!(SITES[0]);
        let got = crate::bed::ask(dynamo, dynamo_key, &request).await;
        let status = got.status().as_u16();
        let got: serde_json::Value = got.json().await.unwrap();
        let want = crate::bed::ask(embedded, embedded_key, &request).await;
        let want_status = want.status().as_u16();
        let want: serde_json::Value = want.json().await.unwrap();
        let name = example["name"].as_str().unwrap();
        // Both stores answer alike, or refuse alike (what Tally refuses on purpose).
        assert_eq!(status, want_status, "{name}: tally query {got}, tally serve {want}");
        if status == 200 {
            assert_eq!(got["results"], want["results"], "{name}: {request}");
            assert_eq!(got["meta"]["total_rows"], want["meta"]["total_rows"], "{name}: {request}");
            same += 1;
            with_rows += usize::from(got["results"].as_array().is_some_and(|r| !r.is_empty()));
        } else {
            assert_eq!((status, &got["error"]), (400, &want["error"]), "{name}");
            refused.push(format!("{name}: {}", got["error"]));
        }
    }
    eprintln!(
        "conformance on both stores: {same} answered alike, {} refused alike with a 400: {refused:#?}",
        refused.len()
    );
    assert!(same >= 38, "only {same} examples answered alike");
    assert!(with_rows >= 30, "only {with_rows} of the answers alike have rows");
}

/// Every entry on the stream, with its record's partition key.
async fn read_stream(client: &aws_sdk_kinesis::Client) -> Vec<(String, LogEntry)> {
    let mut out = Vec::new();
    for shard in api::list_shards(client, "events").await.unwrap() {
        let mut iterator =
            Some(api::shard_iterator(client, "events", &shard.shard_id, &StartAt::TrimHorizon).await.unwrap());
        while let Some(at) = iterator.take() {
            let page = api::get_records(client, &at, 1_000).await.unwrap();
            for record in &page.records {
                out.extend(unpack(&record.data).unwrap().into_iter().map(|e| (record.partition_key.clone(), e)));
            }
            if !page.records.is_empty() {
                iterator = page.next_iterator;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_through_kinesis_counts_what_the_embedded_import_counts() {
    let bed = Bed::start(2).await;
    let (text, events) = ndjson();
    let aws_dir = data_dir("import-kinesis", 2);
    let file = aws_dir.join("events.ndjson");
    std::fs::write(&file, &text).unwrap();

    let stdout = import_to_stream(&bed.kinesalite.url, &file, &aws_dir, 2);
    assert!(stdout.starts_with(&format!("imported {events} events from {} lines", events + 2)), "{stdout}");
    assert!(stdout.contains("not_a_json_object: 1") && stdout.contains("unknown_site: 1"), "{stdout}");
    assert!(stdout.contains("put on Kinesis stream events in"), "{stdout}");

    // Running it again puts nothing more: the data directory knows what it put.
    let again = import_to_stream(&bed.kinesalite.url, &file, &aws_dir, 2);
    assert!(again.contains(&format!("already imported (skipped): {events}")), "{again}");

    // Each event once, under `site#sub` of its visitor's route: one key per visitor id, and the
    // same key on both sides of a UTC midnight (the event's previous id, seen the day before).
    let carried = read_stream(&bed.kinesis).await;
    assert_eq!(carried.len(), events);
    let mut key_of: BTreeMap<u64, &str> = BTreeMap::new();
    let ids: BTreeSet<u128> = carried
        .iter()
        .map(|(key, entry)| {
            let LogEntry::Event(event) = entry else { panic!("only events are put: {entry:?}") };
            assert!(key == &format!("{}#0", event.site) || key == &format!("{}#1", event.site), "{key}");
            assert_eq!(*key_of.entry(event.visitor.current).or_insert(key), key.as_str(), "one key per visitor");
            event.id.0
        })
        .collect();
    assert_eq!(ids.len(), events, "event ids are unique");
    let mut across_midnight = 0;
    for (key, entry) in &carried {
        let LogEntry::Event(event) = entry else { continue };
        if let Some(before) =
            key_of.get(&event.visitor.previous).filter(|_| event.visitor.previous != event.visitor.current)
        {
            assert_eq!(before, key, "a visitor keeps its key across midnight");
            across_midnight += 1;
        }
    }
    assert!(across_midnight > 0, "some visitors come back the next UTC day");
    assert_eq!(key_of.values().collect::<BTreeSet<_>>().len(), 4, "both sites use both sub-partitions");

    // `tally ingest` counts them exactly.
    let consumer = Consumer::start(&bed.kinesalite.url, &bed.dynamo.url, "events", &aws_dir, "w1");
    let entries: Vec<LogEntry> = carried.into_iter().map(|(_, entry)| entry).collect();
    settle(&bed.dynamodb, &ground_truth(&entries), Duration::from_secs(60)).await;

    // The same file into the embedded backend: the same answers, from the deltas alone (the
    // consumer folds a day's deltas once they are a second old), then once every day is folded.
    let embedded_dir = data_dir("import-embedded", 2);
    let status = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["import", "--no-progress"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&embedded_dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let sites: Vec<String> = SITES.iter().map(|s| (*s).to_owned()).collect();
    // The conformance examples' goals and saved segment, saved after the traffic, on both.
    use tally_core::registry::{Goal, add_goal, add_segment};
    for dir in [&aws_dir, &embedded_dir] {
        for goal in [
            Goal::Event { event_name: "Signup".into(), currency: Some("EUR".into()) },
            Goal::Event { event_name: "Purchase".into(), currency: None },
            Goal::Page { page_path: "/p/1*".into() },
        ] {
            add_goal(dir, SITES[0], goal).unwrap();
        }
        add_segment(dir, SITES[0], "From HN", r#"[["is","visit:source",["Hacker News"]]]"#).unwrap();
    }
    let aws_key = tally_core::registry::create_key(&aws_dir, &sites).unwrap();
    let embedded_key = tally_core::registry::create_key(&embedded_dir, &sites).unwrap();
    let dynamo_answers = QueryServer::start(&bed.dynamo.url, &aws_dir, "us-east-1", 2);
    let embedded_answers = Serve::start(&embedded_dir);
    let compare = async |when: &str| {
        let mut compared = BTreeMap::new();
        for site in SITES {
            for day in DAYS {
                let want = embedded_answers.totals(&embedded_key, site, day).await;
                assert_eq!(dynamo_answers.totals(&aws_key, site, day).await, want, "{site} on {day}, {when}");
                compared.insert((site, day), want);
            }
            // Every question the rollups answer, over the three days and the day after (visits
            // reach into it): visitors by every dimension, exit pages, props, revenue.
            let range = [DAYS[0], "2026-11-04"];
            for (name, metrics, dimensions, limit) in DASHBOARD {
                let question = (metrics, dimensions, limit);
                let want = dashboard_answer(&embedded_answers.url, &embedded_key, site, range, question).await;
                let got = dashboard_answer(&dynamo_answers.url, &aws_key, site, range, question).await;
                assert_eq!(got, want, "{site}: {name}, {when}");
                assert!(!want.as_array().is_none_or(Vec::is_empty), "{site}: {name} has rows");
            }
        }
        assert!(
            compared.values().any(|m| m[1].as_i64().unwrap_or(0) > 0),
            "the days compared hold pageviews: {compared:?}"
        );
    };
    compare("before folding").await;
    let table = tally_core::aws::dynamo::Tables::named("t", "any").aggregates;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Tier 2 before folding is over: per lineage day the newest fold and the flush objects after it.
    conformance_on_both(&dynamo_answers.url, &aws_key, &embedded_answers.url, &embedded_key).await;
    let folded = |keys: &[String]| keys.iter().all(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with('f')));
    while unfolded_days(&bed.dynamodb, &table).await > 0 || !folded(&crate::bed::segment_keys(&aws_dir).await) {
        assert!(std::time::Instant::now() < deadline, "days still unfolded after 30 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Folded: one object per lineage and day (2 sub-partitions; a site may miss one on a day).
    let keys = crate::bed::segment_keys(&aws_dir).await;
    let lineage_days: BTreeSet<&str> = keys.iter().filter_map(|k| k.rsplit_once('/').map(|(l, _)| l)).collect();
    assert_eq!(lineage_days.len(), keys.len(), "one fold per lineage day: {keys:?}");
    assert!(keys.len() >= SITES.len() * DAYS.len(), "{keys:?}");
    assert!(consumer.terminate().success());
    // A new query server: no cached answers.
    let dynamo_answers = QueryServer::start(&bed.dynamo.url, &aws_dir, "us-east-1", 2);
    let compare_after = async || {
        for site in SITES {
            let range = [DAYS[0], "2026-11-04"];
            for (name, metrics, dimensions, limit) in DASHBOARD {
                let question = (metrics, dimensions, limit);
                let want = dashboard_answer(&embedded_answers.url, &embedded_key, site, range, question).await;
                let got = dashboard_answer(&dynamo_answers.url, &aws_key, site, range, question).await;
                assert_eq!(got, want, "{site}: {name}, folded");
            }
        }
    };
    compare_after().await;
    conformance_on_both(&dynamo_answers.url, &aws_key, &embedded_answers.url, &embedded_key).await;
    let _ = std::fs::remove_dir_all(aws_dir);
    let _ = std::fs::remove_dir_all(embedded_dir);
}
