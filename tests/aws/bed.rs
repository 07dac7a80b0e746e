//! The test bed of the core's AWS parts: the stand-ins with clients, `tally ingest` and `tally
//! query` child processes, and the totals the events must produce. Shared by `tests/aws` and
//! `tests/edge` (the whole pipeline behind the Worker).

use crate::stand_ins::{Dynoxide, Kinesalite, settings};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tally_core::aws::dynamo::{Tables, items, read};
use tally_core::aws::kinesis::api;
use tally_core::pipeline::flush::{Flush, SessionLookup};
use tally_model::breakdown::{Grain, Slot};
use tally_model::event::LogEntry;
use tally_model::rollup::Counters;
use tally_model::session::Session;

struct NoStoredVisits;

impl SessionLookup for NoStoredVisits {
    fn session(&self, _: &str, _: u64) -> anyhow::Result<Option<Session>> {
        Ok(None)
    }
}

/// The totals per site that the events must produce, computed by the same model in one pass.
pub fn ground_truth(entries: &[LogEntry]) -> BTreeMap<String, Counters> {
    let mut flush = Flush::default();
    for entry in entries {
        flush.add(entry, 0, &|_| None, &NoStoredVisits).unwrap();
    }
    let mut totals: BTreeMap<String, Counters> = BTreeMap::new();
    for ((site, _), breakdown) in &flush.breakdowns {
        for (row, tallies) in breakdown.rows() {
            if row.slot == Slot::Total && row.grain == Grain::Day {
                totals.entry(site.clone()).or_default().add(&tallies.counters);
            }
        }
    }
    totals
}

/// Both stand-ins, clients for them, and (unless `shards` is 0) a stream `events`.
pub struct Bed {
    pub kinesalite: Kinesalite,
    pub dynamo: Dynoxide,
    pub kinesis: aws_sdk_kinesis::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Bed {
    pub async fn start(shards: i32) -> Bed {
        let (kinesalite, dynamo) = (Kinesalite::start(), Dynoxide::start());
        let aws = settings(Some(&kinesalite.url), Some(&dynamo.url));
        let kinesis = tally_core::aws::clients::kinesis(&aws).await;
        let dynamodb = tally_core::aws::clients::dynamodb(&aws).await;
        if shards > 0 {
            api::create_stream(&kinesis, "events", shards).await.unwrap();
        }
        Bed { kinesalite, dynamo, kinesis, dynamodb }
    }
}

/// A site's writer lineages: (region, sub-partition).
type Lineages = BTreeSet<(String, u16)>;

/// The totals and distinct visitors per site as `tally query` reads them: the day rows of the
/// totals, from the fold items and the deltas after them, over every lineage and day that a
/// scan finds (tests only).
pub async fn stored_totals_and_visitors(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> BTreeMap<String, (Counters, i64)> {
    // site → lineages (region, sub) and the range of days with rollup items.
    let mut found: BTreeMap<String, (Lineages, i64, i64)> = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).set_exclusive_start_key(start.take()).send().await.unwrap();
        for item in page.items() {
            let pk = item["pk"].as_s().unwrap();
            let parts: Vec<&str> = pk.split('|').collect();
            let ["r", site, _generation, region, sub, kind, rest] = parts[..] else { continue };
            let day = match kind {
                "d" => rest.parse().unwrap(),
                _ => items::fold_day_of(item["sk"].as_s().unwrap()).unwrap(),
            };
            let entry = found.entry(site.to_owned()).or_insert((BTreeSet::new(), day, day));
            entry.0.insert((region.to_owned(), sub.parse().unwrap()));
            (entry.1, entry.2) = (entry.1.min(day), entry.2.max(day));
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    let mut totals = BTreeMap::new();
    for (site, (lineages, first, last)) in found {
        let lineages: Vec<(String, u16)> = lineages.into_iter().collect();
        let rows = read::load_slot(client, table, &site, &lineages, Slot::Total.code(), (first, last)).await.unwrap();
        let mut sum = (Counters::default(), 0);
        for ((_, grain, at, _), tallies) in &rows.0 {
            if *grain == Grain::Day.code() {
                sum.0.add(&tallies.counters);
                sum.1 += tallies.visitors_until(*at, last);
            }
        }
        totals.insert(site, sum);
    }
    totals
}

/// The totals per site as `tally query` reads them (see [`stored_totals_and_visitors`]).
pub async fn stored_totals(client: &aws_sdk_dynamodb::Client, table: &str) -> BTreeMap<String, Counters> {
    stored_totals_and_visitors(client, table).await.into_iter().map(|(site, (counters, _))| (site, counters)).collect()
}

/// The distinct visitor ids per site in `entries`, brute force.
pub fn true_visitors(entries: &[LogEntry]) -> BTreeMap<String, i64> {
    let mut ids: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for entry in entries {
        if let LogEntry::Event(event) = entry {
            ids.entry(event.site.clone()).or_default().insert(event.visitor.current);
        }
    }
    ids.into_iter().map(|(site, ids)| (site, ids.len() as i64)).collect()
}

/// A `tally serve` child process over an embedded data directory, killed on drop.
pub struct Serve {
    child: std::process::Child,
    /// Its base URL.
    pub url: String,
}

impl Serve {
    /// Starts `tally serve` on a free port over `dir`.
    pub fn start(dir: &std::path::Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("TALLY_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected {line:?}")).to_owned();
        Serve { child, url }
    }

    /// The same query as [`QueryServer::totals`].
    pub async fn totals(&self, key: &str, site: &str, day: &str) -> serde_json::Value {
        totals_at(&self.url, key, site, day).await
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tally ingest` child process, killed on drop.
pub struct Consumer {
    pub child: Child,
}

impl Consumer {
    pub fn start(kinesis: &str, dynamo: &str, stream: &str, data_dir: &Path, worker: &str) -> Consumer {
        Consumer::in_region(kinesis, dynamo, stream, data_dir, worker, "us-east-1")
    }

    pub fn in_region(kinesis: &str, dynamo: &str, stream: &str, dir: &Path, worker: &str, region: &str) -> Consumer {
        Consumer::spawn(kinesis, dynamo, stream, dir, worker, region, 200, &[])
    }

    pub fn with_args_at(
        kinesis: &str,
        dynamo: &str,
        stream: &str,
        dir: &Path,
        worker: &str,
        ms: u64,
        extra: &[&str],
    ) -> Consumer {
        Consumer::spawn(kinesis, dynamo, stream, dir, worker, "us-east-1", ms, extra)
    }

    pub fn with_args(kinesis: &str, dynamo: &str, stream: &str, dir: &Path, worker: &str, extra: &[&str]) -> Consumer {
        Consumer::spawn(kinesis, dynamo, stream, dir, worker, "us-east-1", 200, extra)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        kinesis: &str,
        dynamo: &str,
        stream: &str,
        data_dir: &Path,
        worker: &str,
        region: &str,
        ms: u64,
        extra: &[&str],
    ) -> Consumer {
        let interval = ms.to_string();
        // Folds every second unless the caller picks its own interval, so tests exercise them.
        let fold: &[&str] = if extra.contains(&"--fold-interval-s") { &[] } else { &["--fold-interval-s", "1"] };
        // Snapshots and segments into buckets of the data directory's own, on the shared moto server.
        let bucket = bucket_of(data_dir, "");
        let segments = bucket_of(data_dir, "seg-");
        let (child, line) = start_tally(
            Command::new(env!("CARGO_BIN_EXE_tally"))
                .args(["ingest", "--stream", stream, "--region", region, "--app", "t", "--stand-in-credentials"])
                .args(["--create-tables", "--kinesis-endpoint", kinesis, "--dynamodb-endpoint", dynamo])
                .args(["--worker-id", worker, "--flush-interval-ms", &interval, "--lease-duration-ms", "3000"])
                .arg("--data-dir")
                .arg(data_dir)
                .args(fold)
                .args(["--s3-endpoint", crate::stand_ins::moto_s3(), "--snapshot-bucket", &bucket])
                .args(["--segment-bucket", &segments])
                .args(if extra.contains(&"--snapshot-interval-s") { &[][..] } else { &["--snapshot-interval-s", "2"] })
                .args(extra)
                .env("TALLY_LOG", std::env::var("TALLY_E2E_LOG").unwrap_or_else(|_| "warn".into())),
        );
        assert!(line.starts_with("consuming"), "unexpected first line {line:?}");
        Consumer { child }
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "tally ingest did not stop within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The S3 bucket named after a data directory, with `prefix`: snapshots (`""`) or segments (`"seg-"`).
pub fn bucket_of(data_dir: &Path, prefix: &str) -> String {
    let name = data_dir.file_name().unwrap_or_default().to_string_lossy().to_lowercase();
    let name = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' });
    prefix.chars().chain(name).take(63).collect()
}

/// The keys of every segment object that `tally ingest` wrote for the data directory `data_dir`.
pub async fn segment_keys(data_dir: &Path) -> Vec<String> {
    segment_objects(data_dir).await.into_iter().map(|(key, _)| key).collect()
}

/// Every segment object that `tally ingest` wrote for the data directory `data_dir`, with its size.
pub async fn segment_objects(data_dir: &Path) -> Vec<(String, i64)> {
    let client = tally_core::aws::clients::s3(&crate::stand_ins::settings(None, None)).await;
    let mut pages = client.list_objects_v2().bucket(bucket_of(data_dir, "seg-")).into_paginator().send();
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        objects.extend(page.contents().iter().filter_map(|o| Some((o.key()?.to_owned(), o.size().unwrap_or(0)))));
    }
    objects
}

/// Starts a `tally` child process (stand-ins: no instance metadata) and reads its first line.
fn start_tally(command: &mut Command) -> (Child, String) {
    let mut child = command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line)
}

/// A `tally query` child process over the aggregate table, killed on drop.
pub struct QueryServer {
    child: Child,
    pub url: String,
}

impl QueryServer {
    pub fn start(dynamo: &str, data_dir: &Path, regions: &str, subs: u16) -> QueryServer {
        QueryServer::start_with(dynamo, data_dir, regions, subs, &[])
    }

    /// [`QueryServer::start`] with more flags.
    pub fn start_with(dynamo: &str, data_dir: &Path, regions: &str, subs: u16, extra: &[&str]) -> QueryServer {
        let bucket = bucket_of(data_dir, "seg-");
        let segments = ["--s3-endpoint", crate::stand_ins::moto_s3(), "--segment-bucket", &bucket];
        QueryServer::start_reading(dynamo, data_dir, regions, subs, &[&segments[..], extra].concat())
    }

    /// A `tally query` that reads no segment objects (no `--segment-bucket`), as an operator
    /// may start it: the rollups' questions only.
    pub fn start_without_segments(dynamo: &str, data_dir: &Path) -> QueryServer {
        QueryServer::start_reading(dynamo, data_dir, "us-east-1", 1, &[])
    }

    fn start_reading(dynamo: &str, data_dir: &Path, regions: &str, subs: u16, extra: &[&str]) -> QueryServer {
        let (child, line) = start_tally(
            Command::new(env!("CARGO_BIN_EXE_tally"))
                .args(["query", "--listen", "127.0.0.1:0", "--region", "us-east-1", "--regions", regions, "--app", "t"])
                .args(["--sub-partitions", &subs.to_string(), "--dynamodb-endpoint", dynamo, "--stand-in-credentials"])
                .args(extra)
                .arg("--data-dir")
                .arg(data_dir)
                .env("TALLY_LOG", "warn"),
        );
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected {line:?}")).to_owned();
        QueryServer { child, url }
    }

    /// The totals of one site on one day, through the Stats API.
    pub async fn totals(&self, key: &str, site: &str, day: &str) -> serde_json::Value {
        totals_at(&self.url, key, site, day).await
    }

    /// A site's drop counts by reason (`GET /api/v2/drops`).
    pub async fn drops(&self, key: &str, site: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v2/drops?site_id={site}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<serde_json::Value>().await.unwrap()["drops"].clone()
    }
}

impl Drop for QueryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST /api/v2/query` with `body` to the Stats API at `url`.
pub async fn ask(url: &str, key: &str, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new().post(format!("{url}/api/v2/query")).bearer_auth(key).json(body).send().await.unwrap()
}

/// A dashboard question: its name, metrics, dimensions and page size.
pub type Question = (&'static str, &'static [&'static str], &'static [&'static str], Option<u32>);

/// A dashboard's unfiltered questions: the query benchmark's (`benches/query/bench.py`), which
/// a 30-day load of the dashboard asks, then what else the rollups answer (by hour of the exit
/// pages, props, revenue). Name, metrics, dimensions, limit.
pub const DASHBOARD: [Question; 15] = [
    ("totals", &["visitors", "pageviews"], &[], None),
    ("by day", &["visitors", "pageviews"], &["time:day"], None),
    ("by hour", &["visitors", "pageviews"], &["time:hour"], None),
    ("top pages", &["visitors", "pageviews"], &["event:page"], Some(10)),
    ("top entry pages", &["visitors", "pageviews"], &["visit:entry_page"], Some(10)),
    ("top sources", &["visitors", "pageviews"], &["visit:source"], Some(10)),
    ("top countries", &["visitors", "pageviews"], &["visit:country"], Some(10)),
    ("top devices", &["visitors", "pageviews"], &["visit:device"], Some(10)),
    ("top browsers", &["visitors", "pageviews"], &["visit:browser"], Some(10)),
    ("top OS", &["visitors", "pageviews"], &["visit:os"], Some(10)),
    ("top exit pages", &["visitors", "visits"], &["visit:exit_page"], Some(10)),
    // Not in a dashboard load: the rest of what the rollups hold.
    ("exit pages by hour", &["visitors", "visits", "bounce_rate"], &["visit:exit_page", "time:hour"], None),
    ("visit metrics by day", &["visits", "bounce_rate", "visit_duration", "views_per_visit"], &["time:day"], None),
    ("a prop", &["visitors", "events"], &["event:props:plan"], None),
    ("revenue by page", &["total_revenue", "average_revenue", "events"], &["event:page"], None),
];

/// How many of [`DASHBOARD`]'s questions a dashboard load asks (the first ones).
pub const DASHBOARD_LOAD: usize = 11;

/// The answer rows of one of [`DASHBOARD`]'s questions about `site` over `range` from the Stats
/// API at `url`.
pub async fn dashboard_answer(
    url: &str,
    key: &str,
    site: &str,
    range: [&str; 2],
    (metrics, dimensions, limit): (&[&str], &[&str], Option<u32>),
) -> serde_json::Value {
    let mut body =
        serde_json::json!({ "site_id": site, "metrics": metrics, "dimensions": dimensions, "date_range": range });
    if let Some(limit) = limit {
        body["pagination"] = serde_json::json!({ "limit": limit });
    }
    let response = ask(url, key, &body).await;
    let status = response.status();
    let answer = response.json::<serde_json::Value>().await.unwrap_or_default();
    assert_eq!(status, 200, "{url}: {body} answered {answer}");
    answer["results"].clone()
}

/// The totals of one site on one day from the Stats API at `url` (`tally query` or `tally serve`).
pub async fn totals_at(url: &str, key: &str, site: &str, day: &str) -> serde_json::Value {
    let body = serde_json::json!({
        "site_id": site,
        "metrics": ["events", "pageviews", "visits", "bounce_rate", "views_per_visit"],
        "date_range": [day, day],
    });
    let response = ask(url, key, &body).await;
    assert_eq!(response.status(), 200);
    response.json::<serde_json::Value>().await.unwrap()["results"][0]["metrics"].clone()
}

/// The metrics `QueryServer::totals` asks for, computed from counters.
pub fn expected_metrics(c: &Counters) -> serde_json::Value {
    let per_visit = |n: i64| if c.visits > 0 { n as f64 / c.visits as f64 } else { 0.0 };
    serde_json::json!([
        c.events,
        c.pageviews,
        c.visits,
        (per_visit(c.bounces) * 100.0).round() as i64,
        (per_visit(c.visit_pageviews) * 100.0).round() / 100.0
    ])
}

/// A loopback address with a port that was free a moment ago.
pub fn free_address() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().to_string()
}

pub fn data_dir(name: &str, sites: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tally-aws-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for i in 0..sites {
        tally_core::registry::add_site(&dir, &format!("site{i}.example"), None).unwrap();
    }
    dir
}

/// Waits until the stored totals equal `expected`, or fails after `limit` with the difference.
pub async fn settle(client: &aws_sdk_dynamodb::Client, expected: &BTreeMap<String, Counters>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let stored = stored_totals(client, &Tables::named("t", "any").aggregates).await;
        if &stored == expected {
            return;
        }
        if Instant::now() > deadline {
            let wrong: Vec<_> = expected.iter().filter(|(s, c)| stored.get(*s) != Some(c)).take(3).collect();
            panic!("totals differ after {limit:?}: expected (first differing) {wrong:?}, stored {:?}", {
                wrong.iter().map(|(s, _)| stored.get(*s)).collect::<Vec<_>>()
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How many delta partitions hold deltas that no fold marker covers yet (a scan: tests only).
pub async fn unfolded_days(client: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    let mut folded: BTreeMap<String, i64> = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).set_exclusive_start_key(start.take()).send().await.unwrap();
        for item in page.items() {
            let (pk, sk) = (item["pk"].as_s().unwrap(), item["sk"].as_s().unwrap());
            if !pk.contains("|d|") {
                continue;
            }
            if sk == "~fold" {
                folded.insert(pk.clone(), item["upto"].as_n().unwrap().parse().unwrap());
            } else {
                let time: i64 = sk[..12].parse().unwrap();
                let at = newest.entry(pk.clone()).or_insert(time);
                *at = (*at).max(time);
            }
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    newest.iter().filter(|(pk, time)| folded.get(*pk).is_none_or(|upto| upto < *time)).count()
}

/// Runs `tally import --kinesis-stream events` of `file` with `subs` sub-partitions per site, for
/// the sites of `dir`, and returns its output (it must succeed).
pub fn import_to_stream(kinesalite: &str, file: &Path, dir: &Path, subs: u16) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["import", "--no-progress", "--kinesis-stream", "events", "--region", "us-east-1"])
        .args(["--kinesis-endpoint", kinesalite, "--stand-in-credentials", "--sub-partitions", &subs.to_string()])
        .arg(file)
        .arg("--data-dir")
        .arg(dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}
