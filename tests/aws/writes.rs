//! How many DynamoDB writes `tally ingest` makes per event, on a realistic trace (thousands of
//! sites of Zipf-distributed size, Zipf-distributed pages, steady arrival), for several flush
//! intervals: write requests, and write units as DynamoDB bills them (the stand-in's consumed
//! capacity, through the proxy). A measurement, not a check: run it with
//! `cargo test -p tally-core --test aws writes_per_event -- --ignored --nocapture`
//! (`TALLY_WRITES_INTERVALS_MS=1000,10000` picks the flush intervals; each is measured over a
//! load of three intervals, at least 20 s; `TALLY_WRITES_FOLD_S` the fold interval, default a
//! day as in production, so that days fold when their deltas are many or large). Every run
//! checks what was stored against the events sent: events and distinct visitors per site.

use crate::bed::{Bed, Consumer, data_dir, stored_totals_and_visitors};
use crate::ingest::put_all;
use crate::proxy::{Counts, Proxy};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tally_core::aws::dynamo::Tables;
use tally_model::event::{Event, EventId, LogEntry, VisitorIds};

const SITES: usize = 2_000;
const RATE_PER_SECOND: usize = 2_000;
/// Shortest load per flush interval.
const MIN_SECONDS: u64 = 20;

/// Samples 0..n with probability proportional to 1/(k+1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect::<Vec<_>>();
        Zipf { cdf: cdf.iter().map(|c| c / total).collect() }
    }

    fn sample(&self, uniform: f64) -> usize {
        self.cdf.partition_point(|c| *c < uniform).min(self.cdf.len() - 1)
    }
}

struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn event(id: u64, sites: &Zipf, pages: &Zipf, random: &mut Uniform, now_ms: i64) -> LogEntry {
    let site = format!("site{}.example", sites.sample(random.next()));
    let visitor = (random.next() * 50_000.0) as u64;
    LogEntry::Event(Box::new(Event {
        id: EventId(u128::from(id)),
        received_ms: now_ms,
        url: format!("https://{site}/p/{}", pages.sample(random.next())),
        site,
        name: "pageview".into(),
        referrer: Some(["https://www.google.com/", "https://t.co/x", ""][(random.next() * 3.0) as usize].into()),
        props: vec![],
        revenue: None,
        interactive: true,
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36".into(),
        country: Some(["US", "DE", "FR", "IN", "BR"][(random.next() * 5.0) as usize].into()),
        visitor: VisitorIds { current: visitor, previous: visitor },
        region: None,
        city: None,
        engagement: None,
        hash_mode: false,
    }))
}

/// What one load measured: events sent, the proxy's counts, distinct (site, visitor) pairs and
/// the consumer's peak resident memory.
struct Measured {
    events: usize,
    counts: Counts,
    visitors: usize,
    peak_kib: u64,
    /// The segment objects (tier 2, S3) kept at the end: how many, and their bytes.
    segments: (usize, i64),
    /// The consumer's `tally_ingest_segment_*` counters: per kind (`flush`, `fold`), objects
    /// and bytes put.
    puts: BTreeMap<String, (f64, f64)>,
}

/// Puts `seconds` of the trace on a 2-shard stream for a consumer flushing every
/// `flush_interval_ms` and folding by `fold_s`, waits for it to count every event, and checks
/// what it stored against the events sent: events per site and distinct visitors per site.
async fn measure(flush_interval_ms: u64, seconds: u64, fold_s: &str) -> Measured {
    let Bed { kinesalite, dynamo, kinesis, dynamodb } = Bed::start(2).await;
    let proxy = Proxy::start(&dynamo.url, 0, &[], "").await;
    let dir = data_dir(&format!("writes-{flush_interval_ms}"), SITES);
    // A flush ends at the interval, not at the record cap (this trace puts one or two events in a
    // record, so the default cap of 10,000 records would end a 60 s flush after about 13 s).
    let metrics = crate::bed::free_address();
    let args = ["--fold-interval-s", fold_s, "--snapshot-interval-s", "60", "--max-records-per-flush", "10000000"];
    let args = [&args[..], &["--metrics-listen", &metrics]].concat();
    let consumer = Consumer::with_args_at(&kinesalite.url, &proxy.url, "events", &dir, "a", flush_interval_ms, &args);
    let (sites, pages) = (Zipf::new(SITES, 1.1), Zipf::new(200, 1.2));
    let mut random = Uniform(0x9e37_79b9_7f4a_7c15);
    let mut truth: BTreeMap<String, (i64, BTreeSet<u64>)> = BTreeMap::new();
    let started = Instant::now();
    let mut sent = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        let tick = Instant::now();
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let batch: Vec<LogEntry> = (0..RATE_PER_SECOND / 10)
            .map(|i| event((sent + i) as u64 + 1, &sites, &pages, &mut random, now_ms))
            .collect();
        for entry in &batch {
            if let LogEntry::Event(e) = entry {
                let site = truth.entry(e.site.clone()).or_default();
                site.0 += 1;
                site.1.insert(e.visitor.current);
            }
        }
        sent += batch.len();
        put_all(&kinesis, "events", &batch, 1).await;
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed())).await;
    }
    let table = Tables::named("t", "any").aggregates;
    let deadline = Instant::now() + Duration::from_secs(seconds + 600);
    let stored = loop {
        let stored = stored_totals_and_visitors(&dynamodb, &table).await;
        if stored.values().map(|(c, _)| c.events).sum::<i64>() == sent as i64 || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let status = std::fs::read_to_string(format!("/proc/{}/status", consumer.child.id())).unwrap_or_default();
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let scraped = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap().text().await.unwrap();
    assert!(consumer.terminate().success());
    let objects = crate::bed::segment_objects(&dir).await;
    let segments = (objects.len(), objects.iter().map(|(_, size)| size).sum());
    let _ = std::fs::remove_dir_all(dir);
    for (site, (events, ids)) in &truth {
        let (counters, visitors) = stored.get(site).cloned().unwrap_or_default();
        assert_eq!((counters.events, visitors), (*events, ids.len() as i64), "{site}: events and visitors stored");
    }
    let visitors = truth.values().map(|(_, ids)| ids.len()).sum();
    Measured { events: sent, counts: proxy.counts(), visitors, peak_kib, segments, puts: segment_puts(&scraped) }
}

/// The `tally_ingest_segment_objects_total` and `…_bytes_total` counters of a `/metrics` page,
/// per kind.
fn segment_puts(page: &str) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in page.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let value: f64 = value.parse().unwrap_or(0.0);
        let kind = |prefix: &str| name.strip_prefix(prefix).and_then(|l| l.split('"').nth(1)).map(str::to_owned);
        if let Some(kind) = kind("tally_ingest_segment_objects_total{") {
            out.entry(kind).or_default().0 += value;
        } else if let Some(kind) = kind("tally_ingest_segment_bytes_total{") {
            out.entry(kind).or_default().1 += value;
        }
    }
    out
}

/// A few seconds of the benchmark with a fold every second, so it cannot rot: every event and
/// every visitor stored, and writes counted by purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_benchmark_smoke() {
    let measured = measure(500, 3, "1").await;
    assert!(measured.events >= RATE_PER_SECOND, "{} events", measured.events);
    for purpose in ["delta write", "flush log write", "fold write", "fold marker write"] {
        assert!(measured.counts.by_purpose.get(purpose).is_some_and(|(units, _)| *units > 0.0), "no {purpose}");
    }
    assert!(measured.segments.0 > 0 && measured.segments.1 > 0, "segment objects written: {:?}", measured.segments);
    for kind in ["flush", "fold"] {
        assert!(measured.puts.get(kind).is_some_and(|(n, bytes)| *n > 0.0 && *bytes > 0.0), "{:?}", measured.puts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes minutes; run it by name"]
async fn writes_per_event() {
    let intervals: Vec<u64> = std::env::var("TALLY_WRITES_INTERVALS_MS")
        .unwrap_or_else(|_| "1000,10000,60000".into())
        .split(',')
        .map(|ms| ms.trim().parse().expect("flush intervals in ms, comma-separated"))
        .collect();
    eprintln!("{SITES} sites (Zipf 1.1), 200 pages (Zipf 1.2), {RATE_PER_SECOND} events/s, 2 shards");
    eprintln!(
        "flush interval | events | write requests | requests per event | write units | units per event | without folds | by purpose (units per event; requests)"
    );
    let fold = std::env::var("TALLY_WRITES_FOLD_S").unwrap_or_else(|_| "86400".into());
    for interval in intervals {
        let seconds = MIN_SECONDS.max(3 * interval / 1_000);
        let Measured { events, counts, visitors, peak_kib, segments, puts } = measure(interval, seconds, &fold).await;
        let (requests, units) = (counts.write_requests(), counts.write_units());
        let per_event = |units: f64| units / events as f64;
        let writes: Vec<String> = counts
            .by_purpose
            .iter()
            .filter(|(purpose, _)| purpose.ends_with(" write"))
            .map(|(purpose, (units, n))| {
                format!("{} {:.4}; {n}", purpose.trim_end_matches(" write"), per_event(*units))
            })
            .collect();
        let fold_units: f64 =
            ["fold write", "fold marker write"].iter().map(|p| counts.by_purpose.get(*p).map_or(0.0, |u| u.0)).sum();
        eprintln!(
            "{interval:>8} ms | {events} | {requests} | {:.3} | {units:.0} | {:.4} | {:.4} | {} (+{:?} refused by their condition)",
            requests as f64 / events as f64,
            per_event(units),
            per_event(units - fold_units),
            writes.join(", "),
            counts.failed_conditions,
        );
        let folds = counts.by_purpose.get("fold marker write").map_or(0, |u| u.1);
        let reads: Vec<String> = counts
            .by_purpose
            .iter()
            .filter(|(purpose, _)| purpose.ends_with(" read"))
            .map(|(purpose, (units, n))| format!("{} {units:.0}; {n}", purpose.trim_end_matches(" read")))
            .collect();
        eprintln!(
            "{interval:>8} ms | folds of a lineage's day: {folds}, {:.1} write units each | read units (units; requests): {}",
            fold_units / folds.max(1) as f64,
            reads.join(", ")
        );
        let (flush, fold) =
            (puts.get("flush").copied().unwrap_or_default(), puts.get("fold").copied().unwrap_or_default());
        eprintln!(
            "{interval:>8} ms | S3 segment PUTs: {} of flushes ({:.4} per event, {:.1} bytes per event), {} of folds ({:.1} bytes per event); {} objects kept at the end, {:.1} bytes per event",
            flush.0,
            flush.0 / events as f64,
            flush.1 / events as f64,
            fold.0,
            fold.1 / events as f64,
            segments.0,
            segments.1 as f64 / events as f64
        );
        eprintln!(
            "{interval:>8} ms | consumer peak resident memory {} MiB for {visitors} distinct site visitors: {:.0} MiB per million",
            peak_kib / 1024,
            peak_kib as f64 / 1024.0 / (visitors as f64 / 1e6)
        );
    }
}
