//! The happy path: N events posted to the Worker are exactly N events on the stream, packed
//! many to a record, keyed `site#sub` by visitor, each with its own id.

use crate::stand_ins::Kinesalite;
use crate::stream;
use crate::worker::Worker;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use tally_model::event::LogEntry;

const SITE: &str = "shop.example";
/// The Worker's test environment's SUB_PARTITIONS.
const SUB_PARTITIONS: u16 = 4;

/// Posts `requests` batches of 25 pageviews, request `r` as visitor `r % 10`, event pages
/// `/<round>/<r>/<i>`. Returns the pages posted.
pub async fn post_batches(url: &str, site: &str, round: &str, requests: usize) -> BTreeSet<String> {
    let client = reqwest::Client::new();
    let mut pages = BTreeSet::new();
    for r in 0..requests {
        let batch: Vec<_> = (0..25)
            .map(|i| {
                let page = format!("/{round}/{r}/{i}");
                pages.insert(page.clone());
                json!({ "n": "pageview", "u": format!("https://{site}{page}"), "d": site })
            })
            .collect();
        let answer = client
            .post(format!("{url}/api/event"))
            .header("content-type", "application/json")
            .header("user-agent", format!("Mozilla/5.0 (X11; Linux x86_64) Firefox/{}.0", 120 + r % 10))
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202, "request {r}: {:?}", answer.text().await);
        assert_eq!(answer.headers()["x-tally-accepted"], "25");
    }
    pages
}

pub fn path_of(url: &str) -> String {
    url.split_once("://").map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..])).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn posted_events_are_exactly_the_events_on_the_stream() {
    let kinesalite = Kinesalite::start();
    let kinesis = stream::create(&kinesalite.url).await;
    let worker = Worker::start(&kinesalite.url, &[(SITE, r#"{"rate_limit_per_minute": 60000}"#)]).await;
    let posted = post_batches(&worker.url, SITE, "p", 40).await;
    assert_eq!(posted.len(), 1_000);

    let entries = stream::wait_for_events(&kinesis, posted.len(), Duration::from_secs(60)).await;
    let ids = stream::event_ids(&entries);
    assert_eq!(ids.len(), 1_000, "distinct events on the stream; log:\n{}", worker.log());
    let mut arrived = BTreeSet::new();
    let mut keys = BTreeSet::new();
    let mut visitors = BTreeSet::new();
    let mut key_of_agent = std::collections::BTreeMap::new();
    for (key, entry) in &entries {
        let LogEntry::Event(event) = entry else { panic!("unexpected drop {entry:?}") };
        assert_eq!(event.site, SITE);
        // The sub-partition of the route (site, IP, user agent): one per visitor, all day and
        // across midnight.
        let sub: u16 = key.strip_prefix(&format!("{SITE}#")).and_then(|s| s.parse().ok()).expect("site#sub");
        assert!(sub < SUB_PARTITIONS, "{key}");
        assert_eq!(
            key_of_agent.entry(event.user_agent.clone()).or_insert_with(|| key.clone()),
            key,
            "one key per visitor"
        );
        arrived.insert(path_of(&event.url));
        assert_ne!(event.visitor.current, event.visitor.previous, "today's and yesterday's salts differ");
        visitors.insert(event.visitor.current);
        keys.insert(key.clone());
    }
    assert_eq!(arrived, posted, "every posted page arrived, and nothing else");
    // Ten user agents from one address: ten visitors, each with one id all day (one salt).
    assert_eq!(visitors.len(), 10);
    // Ten visitors over four sub-partitions: more than one key, and ids are unique per event.
    assert!(keys.len() > 1, "{keys:?}");
    let records = stream::record_count(&kinesis).await;
    assert!(records < 1_000 / 5, "{records} records for 1000 events: events are packed many to a record");
    println!("1000 events in {records} records; {} duplicate deliveries", entries.len() - ids.len());
}

/// What Plausible's script sends beyond a plain page view reaches the stream as `tally serve`
/// logs it: an event sent to two sites (a comma-separated `domain`) is one event per site, and a
/// page view in hash mode (`h: 1`) carries the flag (entry codec version 6) that keeps its
/// fragment in the page path.
#[tokio::test]
async fn several_sites_and_hash_mode_reach_the_stream() {
    const OTHER: &str = "blog.example";
    let kinesalite = Kinesalite::start();
    let kinesis = stream::create(&kinesalite.url).await;
    let settings = r#"{"rate_limit_per_minute": 60000}"#;
    let worker = Worker::start(&kinesalite.url, &[(SITE, settings), (OTHER, settings)]).await;
    let body = json!([
        {"n": "pageview", "u": format!("https://{SITE}/both"), "d": format!("{SITE}, {OTHER}")},
        {"n": "pageview", "u": format!("https://{SITE}/app#/settings"), "d": SITE, "h": 1},
    ]);
    let answer = reqwest::Client::new()
        .post(format!("{}/api/event", worker.url))
        .header("content-type", "text/plain")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.headers()["x-tally-accepted"], "3", "two copies and the hash-mode view");
    let entries = stream::wait_for_events(&kinesis, 3, Duration::from_secs(60)).await;
    let mut got: Vec<(String, String, bool)> = entries
        .iter()
        .filter_map(|(_, entry)| match entry {
            LogEntry::Event(e) => Some((e.site.clone(), path_of(&e.url), e.hash_mode)),
            _ => None,
        })
        .collect();
    got.sort();
    got.dedup();
    let want = [
        (OTHER.to_owned(), "/both".to_owned(), false),
        (SITE.to_owned(), "/app#/settings".to_owned(), true),
        (SITE.to_owned(), "/both".to_owned(), false),
    ];
    assert_eq!(got, want, "log:\n{}", worker.log());
}
