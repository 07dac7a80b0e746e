//! The oracle on the DynamoDB store: the traffic of the embedded oracle (`tests/e2e/oracle.rs`;
//! five time zones, DST, visits across midnights, custom events with props and revenue) goes
//! through `tally import --kinesis-stream` (two sub-partitions per site; visits across a UTC
//! midnight stay in one, by their route) to `tally ingest`, which is SIGKILLed part-way and
//! started again; goals are saved after the traffic; then 500 random
//! queries to `tally query` — rollups from DynamoDB, segments from S3 — are compared with the
//! same brute force over the raw events.

use crate::bed::{Bed, Consumer, QueryServer, ask, data_dir};
use std::time::{Duration, Instant};

include!("../oracle/model.rs");

/// The number of events of `site` in its whole range that the tier answering `filters` counts.
async fn counted(url: &str, key: &str, site: &str, filters: Value) -> i64 {
    let first = Timestamp::from_millisecond(START_MS - DAY_MS).unwrap();
    let last = Timestamp::from_millisecond(START_MS + (DAYS + 1) * DAY_MS).unwrap();
    let range =
        [TimeZone::UTC.to_datetime(first).date().to_string(), TimeZone::UTC.to_datetime(last).date().to_string()];
    let body = json!({"site_id": site, "metrics": ["events"], "date_range": range, "filters": filters});
    let answer: Value = ask(url, key, &body).await.json().await.unwrap();
    answer["results"][0]["metrics"][0].as_i64().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_answers_equal_brute_force_across_zones() {
    let bed = Bed::start(2).await;
    let dir = data_dir("oracle", 0);
    let mut rng = Rng(0x7a11_7e57);
    let mut sites = Vec::new();
    let mut lines = String::new();
    for (site, zone_name) in ZONES {
        tally_core::registry::add_site(&dir, site, Some(zone_name)).unwrap();
        let zone = TimeZone::get(zone_name).unwrap();
        let events = traffic(&mut rng, &zone);
        lines.push_str(&ndjson(site, &events));
        let key = tally_core::registry::create_key(&dir, &[site.to_owned()]).unwrap();
        sites.push((site, zone, events, key));
    }
    let file = dir.join("traffic.ndjson");
    std::fs::write(&file, lines).unwrap();
    crate::bed::import_to_stream(&bed.kinesalite.url, &file, &dir, 2);

    // Small flushes, killed (SIGKILL) after a second: the next consumer recovers the logged flush
    // and rebuilds the visits from a snapshot and a replay.
    let small = ["--max-records-per-flush", "40"];
    let first = Consumer::with_args(&bed.kinesalite.url, &bed.dynamo.url, "events", &dir, "w1", &small);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    drop(first);
    let _consumer = Consumer::with_args(&bed.kinesalite.url, &bed.dynamo.url, "events", &dir, "w2", &small);

    // Goals saved after the traffic count over all of it.
    for (site, ..) in &sites {
        for (_, flag, value) in GOALS {
            let goal = match flag {
                "--event" => tally_core::registry::Goal::Event { event_name: value.to_owned(), currency: None },
                "--scroll" => tally_core::registry::Goal::Scroll { page_path: value.to_owned(), scroll_threshold: 50 },
                _ => tally_core::registry::Goal::Page { page_path: value.to_owned() },
            };
            tally_core::registry::add_goal(&dir, site, goal).unwrap();
        }
    }
    let server = QueryServer::start(&bed.dynamo.url, &dir, "us-east-1", 2);
    // Wait until both tiers hold every event (each read is at most 5 s stale: the query cache).
    let deadline = Instant::now() + Duration::from_secs(120);
    for (site, _, events, key) in &sites {
        // Engagement events count as no event.
        let want = events.iter().filter(|e| e.engagement.is_none()).count() as i64;
        loop {
            let rollups = counted(&server.url, key, site, json!([])).await;
            let segments = counted(&server.url, key, site, json!([["contains", "event:page", ["/"]]])).await;
            if rollups == want && segments == want {
                break;
            }
            assert!(Instant::now() < deadline, "{site}: {rollups} and {segments} events counted of {want} after 120 s");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    run_queries(&server.url, &sites, &mut rng).await;
    let _ = std::fs::remove_dir_all(dir);
}
