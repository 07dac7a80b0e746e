//! `tally ingest` end to end on the stand-ins: events packed into records on a kinesalite stream
//! with several shards, consumed by several `tally ingest` processes into dynoxide, counted
//! exactly once — also when consumers are killed and restarted.

use crate::bed::{
    Bed, Consumer, QueryServer, ask, data_dir, expected_metrics, free_address, ground_truth, settle,
    stored_totals_and_visitors, true_visitors,
};
use crate::proxy::Proxy;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};
use tally_core::aws::dynamo::Tables;
use tally_core::aws::kinesis::api;
use tally_model::event::{Drop as DropEntry, Event, EventId, LogEntry, VisitorIds};
use tally_model::record::pack;
use tally_model::reject::DropReason;

const UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// `n` events over `sites` sites, visitors and pages spread, in arrival order.
pub fn trace(n: usize, sites: usize, start_ms: i64) -> Vec<LogEntry> {
    (0..n)
        .map(|i| {
            let site = format!("site{}.example", i % sites);
            let visitor = (i as u64 * 7919) % 997;
            LogEntry::Event(Box::new(Event {
                id: EventId(i as u128 + 1),
                received_ms: start_ms + i as i64,
                url: format!("https://{site}/page/{}", i % 13),
                site,
                name: if i % 10 == 0 { "Signup".into() } else { "pageview".into() },
                referrer: None,
                props: vec![],
                revenue: None,
                interactive: true,
                user_agent: UA.into(),
                country: Some("DE".into()),
                visitor: VisitorIds { current: visitor, previous: visitor },
                region: None,
                city: None,
                engagement: None,
                hash_mode: false,
            }))
        })
        .collect()
}

/// Puts every entry on the stream, packed, retrying only the failed records.
pub async fn put_all(client: &aws_sdk_kinesis::Client, stream: &str, entries: &[LogEntry], subs: u16) -> usize {
    let records = pack(entries, |e| match e {
        LogEntry::Event(event) => tally_model::record::sub_partition(event.visitor.current, subs),
        LogEntry::Drop(_) | LogEntry::Drops(_) => 0,
    });
    for chunk in api::put_batches(&records) {
        let mut pending: Vec<_> = chunk.to_vec();
        while !pending.is_empty() {
            let failed = api::put_records(client, stream, &pending).await.unwrap();
            pending = failed.into_iter().map(|(index, _)| pending[index].clone()).collect();
        }
    }
    records.len()
}

/// The distinct visitor ids of a site's events.
pub fn distinct_visitors(entries: &[LogEntry], site: &str) -> usize {
    let ids: std::collections::HashSet<u64> = entries
        .iter()
        .filter_map(|e| match e {
            LogEntry::Event(event) if event.site == site => Some(event.visitor.current),
            _ => None,
        })
        .collect();
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_count_a_four_shard_stream_exactly() {
    let Bed { kinesalite, dynamo, kinesis, dynamodb } = Bed::start(4).await;
    let dir = data_dir("two", 40);
    let mut entries = trace(100_000, 40, 1_764_000_000_000);
    // Drops travel on the stream too: ten bot drops for site7.
    for i in 0..10 {
        let (id, site) = (Some(EventId(1_000_000 + i)), Some("site7.example".to_owned()));
        entries.push(LogEntry::Drop(DropEntry { id, site, reason: DropReason::Bot, received_ms: 1_764_000_100_000 }));
    }
    let expected = ground_truth(&entries);
    assert_eq!(expected.values().map(|c| c.events).sum::<i64>(), 100_000);
    let records = put_all(&kinesis, "events", &entries, 2).await;
    // Producer retries duplicate records: put a slice again; event ids make them count once.
    put_all(&kinesis, "events", &entries[..1_000], 2).await;
    // Drops too carry ids: put again, they count once (the drop counts are checked below).
    put_all(&kinesis, "events", &entries[entries.len() - 10..], 2).await;
    let a = Consumer::start(&kinesalite.url, &dynamo.url, "events", &dir, "a");
    let b = Consumer::start(&kinesalite.url, &dynamo.url, "events", &dir, "b");
    settle(&dynamodb, &expected, Duration::from_secs(60)).await;
    eprintln!("{} events in {records} records counted exactly by two consumers", entries.len());
    // The Stats API over DynamoDB answers the same totals, merged over the sub-partitions.
    let key = tally_core::registry::create_key(&dir, &["site7.example".to_owned()]).unwrap();
    let query = QueryServer::start(&dynamo.url, &dir, "us-east-1", 2);
    let day = jiff::Timestamp::from_millisecond(1_764_000_000_000).unwrap().to_string()[..10].to_owned();
    assert_eq!(query.totals(&key, "site7.example", &day).await, expected_metrics(&expected["site7.example"]));
    // Unique visitors are exact, merged over lineages: the sub-partitions split visitors.
    let truth = distinct_visitors(&entries, "site7.example") as f64;
    let body = serde_json::json!({"site_id": "site7.example", "metrics": ["visitors"], "date_range": [day, day]});
    let answer: serde_json::Value = ask(&query.url, &key, &body).await.json().await.unwrap();
    let counted = answer["results"][0]["metrics"][0].as_f64().unwrap();
    eprintln!("site7.example: {truth} distinct visitors, counted {counted}");
    assert_eq!(counted, truth);
    assert_eq!(query.drops(&key, "site7.example").await, serde_json::json!({"bot": 10}));
    // The segments (S3 objects of both consumers, every shard and sub-partition) count the same:
    // a filter every event passes, and two dimensions summed up, against the exact totals.
    let site7 = &expected["site7.example"];
    let segments = |extra: serde_json::Value| {
        let mut body = serde_json::json!({"site_id": "site7.example", "date_range": [day, day]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let url = query.url.clone();
        let key = key.clone();
        async move {
            let response = ask(&url, &key, &body).await;
            assert_eq!(response.status(), 200, "{body}");
            let answer: serde_json::Value = response.json().await.unwrap();
            assert_eq!(answer["meta"]["tier"], "segments", "{body}");
            answer["results"].as_array().unwrap().clone()
        }
    };
    // A flush writes its rollup deltas and its segment objects side by side, so the objects of
    // the last flushes may land a moment after the totals above settled: wait for them too.
    let everything = serde_json::json!([["contains", "event:page", ["/"]]]);
    let want = serde_json::json!([truth as i64, site7.events]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let filtered = loop {
        let filtered = segments(serde_json::json!({"metrics": ["visitors", "events"], "filters": everything})).await;
        if filtered[0]["metrics"] == want || std::time::Instant::now() > deadline {
            break filtered;
        }
        // Past the reader's listing cache (5 s), so the day is listed again.
        tokio::time::sleep(tally_core::aws::segments::read::LISTING_TTL).await;
    };
    assert_eq!(filtered[0]["metrics"], want);
    let grid =
        segments(serde_json::json!({"metrics": ["visits"], "dimensions": ["visit:country", "visit:device"]})).await;
    let visits: i64 = grid.iter().map(|r| r["metrics"][0].as_i64().unwrap()).sum();
    assert_eq!(visits, site7.visits, "visits by country and device add up to the visits");
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    let _ = std::fs::remove_dir_all(dir);
}

/// A small deterministic random sequence (xorshift), seeded and printed so a failure can be
/// replayed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn signal(consumer: &Consumer, name: &str) {
    Command::new("kill").args([name, &consumer.child.id().to_string()]).status().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_pauses_and_a_split_change_no_total() {
    let Bed { kinesalite, dynamo, kinesis, dynamodb } = Bed::start(4).await;
    let dir = data_dir("chaos", 30);
    let entries = trace(60_000, 30, 1_764_000_000_000);
    let expected = ground_truth(&entries);
    let seed = (u64::from(std::process::id()) * 2_654_435_761) | 1;
    eprintln!("chaos seed {seed}");
    let mut random = Random(seed);
    let producer = {
        let (kinesis, entries) = (kinesis.clone(), entries.clone());
        tokio::spawn(async move {
            for wave in entries.chunks(3_000) {
                put_all(&kinesis, "events", wave, 2).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    let start = |worker: &str| Consumer::start(&kinesalite.url, &dynamo.url, "events", &dir, worker);
    let mut a = start("a");
    let b = start("b");
    // Ten kills of a at random points, each followed by a restart under the same worker id.
    for kill in 0..10 {
        tokio::time::sleep(Duration::from_millis(200 + random.below(700))).await;
        drop(a);
        a = start("a");
        if kill == 4 {
            // Split a shard while events flow: its children are read after it ends.
            let shards = api::list_shards(&kinesis, "events").await.unwrap();
            let open = shards.iter().find(|s| s.ending_sequence_number.is_none()).unwrap();
            let (low, high): (u128, u128) =
                (open.starting_hash_key.parse().unwrap(), open.ending_hash_key.parse().unwrap());
            api::split_shard(&kinesis, "events", &open.shard_id, &(low + (high - low) / 2).to_string()).await.unwrap();
        }
    }
    // Pause b past its lease expiry (3 s): a takes its shards; b, resumed, must write nothing.
    signal(&b, "-STOP");
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal(&b, "-CONT");
    producer.await.unwrap();
    settle(&dynamodb, &expected, Duration::from_secs(90)).await;
    let shards = api::list_shards(&kinesis, "events").await.unwrap();
    assert_eq!(shards.len(), 6, "the split happened");
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    // Exact after the graceful stops too: nothing was applied twice while leases were handed back.
    settle(&dynamodb, &expected, Duration::from_secs(5)).await;
    // Distinct visitors too: the sightings survived the kills (snapshots and replays), the
    // split (the children inherited them) and the folds.
    let table = Tables::named("t", "any").aggregates;
    let visitors: BTreeMap<String, i64> = stored_totals_and_visitors(&dynamodb, &table)
        .await
        .into_iter()
        .map(|(site, (_, visitors))| (site, visitors))
        .collect();
    assert_eq!(visitors, true_visitors(&entries));
    // The segment objects too: each flush's rows once, through the kills (flushes re-applied by
    // the next holder), the split and the pause, folded or not.
    let sites: Vec<String> = expected.keys().cloned().collect();
    let key = tally_core::registry::create_key(&dir, &sites).unwrap();
    let query = QueryServer::start(&dynamo.url, &dir, "us-east-1", 2);
    let times = entries.iter().filter_map(|e| if let LogEntry::Event(e) = e { Some(e.received_ms) } else { None });
    let (first, last) = (times.clone().min().unwrap(), times.max().unwrap());
    let day = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string()[..10].to_owned();
    let truth = true_visitors(&entries);
    for (site, counters) in &expected {
        let body = serde_json::json!({
            "site_id": site, "metrics": ["visitors", "events", "pageviews"], "date_range": [day(first), day(last)],
            "filters": [["contains", "event:page", ["/"]]],
        });
        let answer: serde_json::Value = ask(&query.url, &key, &body).await.json().await.unwrap();
        assert_eq!(answer["meta"]["tier"], "segments", "{answer}");
        let want = serde_json::json!([truth[site], counters.events, counters.pageviews]);
        assert_eq!(answer["results"][0]["metrics"], want, "{site}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regions_share_the_aggregate_table_without_sharing_an_item() {
    let Bed { kinesalite, dynamo, kinesis, dynamodb } = Bed::start(0).await;
    let dir = data_dir("regions", 10);
    // Each region has its own stream; the same sites get events in both (ids must not clash).
    let east = trace(20_000, 10, 1_764_000_000_000);
    let mut west = trace(20_000, 10, 1_764_000_500_000);
    for entry in &mut west {
        if let LogEntry::Event(event) = entry {
            event.id = EventId(event.id.0 + 1_000_000);
        }
    }
    let mut expected = ground_truth(&east);
    for (site, counters) in ground_truth(&west) {
        expected.entry(site).or_default().add(&counters);
    }
    for (stream, entries) in [("events-east", &east), ("events-west", &west)] {
        api::create_stream(&kinesis, stream, 2).await.unwrap();
        put_all(&kinesis, stream, entries, 2).await;
    }
    let consumers = [
        Consumer::in_region(&kinesalite.url, &dynamo.url, "events-east", &dir, "east-1", "us-east-1"),
        Consumer::in_region(&kinesalite.url, &dynamo.url, "events-west", &dir, "west-1", "eu-west-1"),
    ];
    settle(&dynamodb, &expected, Duration::from_secs(60)).await;
    // Every item belongs to one region's lineage: its key names the region, and only that
    // region's consumers write it.
    let page = dynamodb.scan().table_name("t-aggregates").send().await.unwrap();
    let regions = |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
        let pk = item["pk"].as_s().unwrap();
        ["us-east-1", "eu-west-1"].into_iter().filter(|r| pk.contains(&format!("|{r}|"))).count()
    };
    assert!(page.items().iter().all(|item| regions(item) == 1), "every item names exactly one region");
    for region in ["us-east-1", "eu-west-1"] {
        assert!(page.items().iter().any(|i| i["pk"].as_s().unwrap().contains(region)), "{region} wrote items");
    }
    for consumer in consumers {
        assert!(consumer.terminate().success());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_loses_nothing() {
    let Bed { kinesalite, dynamo, kinesis, dynamodb } = Bed::start(2).await;
    let dynamo_throttle = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException";
    // One in four writes and reads of DynamoDB, one in five GetRecords of Kinesis are throttled.
    let throttled = ["UpdateItem", "TransactWriteItems", "GetItem", "PutItem"];
    let dynamo_proxy = Proxy::start(&dynamo.url, 4, &throttled, dynamo_throttle).await;
    let kinesis_proxy =
        Proxy::start(&kinesalite.url, 5, &["GetRecords"], "ProvisionedThroughputExceededException").await;
    let dir = data_dir("throttle", 20);
    let entries = trace(30_000, 20, 1_764_000_000_000);
    let expected = ground_truth(&entries);
    put_all(&kinesis, "events", &entries, 2).await;
    let metrics_address = free_address();
    let extra = ["--metrics-listen", metrics_address.as_str()];
    let consumer = Consumer::with_args(&kinesis_proxy.url, &dynamo_proxy.url, "events", &dir, "a", &extra);
    settle(&dynamodb, &expected, Duration::from_secs(90)).await;
    let get = |path: &str| reqwest::get(format!("http://{metrics_address}{path}"));
    assert_eq!(get("/ready").await.unwrap().status(), 200);
    // The totals can be complete a moment before the flush that made them is committed and timed.
    let names = ["tally_ingest_records_total", "tally_ingest_flush_seconds", "tally_ingest_lease_changes_total"];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = get("/metrics").await.unwrap().text().await.unwrap();
        if names.iter().all(|name| metrics.contains(name)) {
            break;
        }
        assert!(Instant::now() < deadline, "metrics missing from /metrics:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (dynamo_counts, kinesis_counts) = (dynamo_proxy.counts(), kinesis_proxy.counts());
    eprintln!("throttled: dynamodb {:?}, kinesis {:?}", dynamo_counts.throttled, kinesis_counts.throttled);
    assert!(dynamo_counts.throttled.values().sum::<u64>() > 10, "the proxy throttled DynamoDB");
    assert!(kinesis_counts.throttled.get("GetRecords").copied().unwrap_or(0) > 0, "the proxy throttled GetRecords");
    assert!(consumer.terminate().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_put_after_a_crash_count_once() {
    let Bed { kinesalite, dynamo, kinesis, dynamodb } = Bed::start(1).await;
    let dir = data_dir("dups", 5);
    let entries = trace(5_000, 5, 1_764_000_000_000);
    let expected = ground_truth(&entries);
    put_all(&kinesis, "events", &entries, 1).await;
    let consumer = Consumer::start(&kinesalite.url, &dynamo.url, "events", &dir, "a");
    settle(&dynamodb, &expected, Duration::from_secs(30)).await;
    drop(consumer); // SIGKILL: its window of seen ids is gone with it
    // A producer retry puts the last 2,000 events again after the crash.
    put_all(&kinesis, "events", &entries[3_000..], 1).await;
    let metrics_address = free_address();
    let extra = ["--metrics-listen", metrics_address.as_str()];
    let consumer = Consumer::with_args(&kinesalite.url, &dynamo.url, "events", &dir, "a", &extra);
    // The restarted worker rebuilds its window from the replay and drops them all: wait until it
    // has read them (its duplicate counter), then the totals must be unchanged.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("http://{metrics_address}/metrics")).await.map(|r| r.text());
        let text = match metrics {
            Ok(body) => body.await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let duplicates = text
            .lines()
            .find_map(|l| l.strip_prefix("tally_ingest_duplicate_events_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if duplicates >= 2_000.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted consumer did not read the duplicates: {duplicates}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settle(&dynamodb, &expected, Duration::from_secs(5)).await;
    assert!(consumer.terminate().success());
    let _ = std::fs::remove_dir_all(dir);
}

/// A parent shard whose last holder died after its final commit and before its final snapshot:
/// simulated by marking the parent finished and deleting its snapshots. Its children must still
/// continue the parent's visits (by replaying the parent), so second page views end bounces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_continue_visits_of_a_parent_without_final_snapshot() {
    let Bed { kinesalite, dynamo, kinesis, dynamodb } = Bed::start(1).await;
    let dir = data_dir("inherit", 1);
    let visit = |i: usize, second: bool| {
        let mut entry = trace(1, 1, 1_764_000_000_000 + i as i64 + if second { 60_000 } else { 0 }).remove(0);
        if let LogEntry::Event(event) = &mut entry {
            event.id = EventId((i as u128) * 2 + u128::from(second) + 1);
            event.name = "pageview".into();
            event.visitor = VisitorIds { current: i as u64, previous: i as u64 };
        }
        entry
    };
    let first: Vec<LogEntry> = (0..200).map(|i| visit(i, false)).collect();
    let second: Vec<LogEntry> = (0..200).map(|i| visit(i, true)).collect();
    put_all(&kinesis, "events", &first, 1).await;
    let consumer = Consumer::start(&kinesalite.url, &dynamo.url, "events", &dir, "a");
    settle(&dynamodb, &ground_truth(&first), Duration::from_secs(30)).await;
    assert!(consumer.terminate().success());
    // Split the (only) shard: the parent holds just the first page views.
    let parent = api::list_shards(&kinesis, "events").await.unwrap().remove(0);
    let (low, high): (u128, u128) =
        (parent.starting_hash_key.parse().unwrap(), parent.ending_hash_key.parse().unwrap());
    api::split_shard(&kinesis, "events", &parent.shard_id, &(low + (high - low) / 2).to_string()).await.unwrap();
    // The parent is finished, but its snapshots are gone.
    let tables = Tables::named("t", "us-east-1");
    dynamodb
        .update_item()
        .table_name(&tables.leases)
        .key("shard_id", aws_sdk_dynamodb::types::AttributeValue::S(parent.shard_id.clone()))
        .update_expression("SET checkpoint = :end")
        .expression_attribute_values(":end", aws_sdk_dynamodb::types::AttributeValue::S("SHARD_END".into()))
        .send()
        .await
        .unwrap();
    let items = dynamodb.scan().table_name(&tables.flushes).send().await.unwrap();
    for item in items.items().iter().filter(|i| i["sk"].as_s().unwrap().starts_with("snap|")) {
        dynamodb
            .delete_item()
            .table_name(&tables.flushes)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
    put_all(&kinesis, "events", &second, 1).await;
    let consumer = Consumer::start(&kinesalite.url, &dynamo.url, "events", &dir, "a");
    let all: Vec<LogEntry> = first.into_iter().chain(second).collect();
    let expected = ground_truth(&all);
    assert_eq!(expected["site0.example"].bounces, 0, "every visit has two page views");
    settle(&dynamodb, &expected, Duration::from_secs(30)).await;
    assert!(consumer.terminate().success());
    let _ = std::fs::remove_dir_all(dir);
}
