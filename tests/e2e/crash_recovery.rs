//! Crash recovery: under sustained concurrent ingest (segments persisting to Parquet at almost
//! every flush) the server is killed with SIGKILL, twice; after each restart every event that got
//! a 202 is counted exactly once by both tiers, and nothing is counted more often than it was sent. A graceful stop (SIGTERM, SIGINT) exits 0 and loses nothing.

use crate::harness::{
    POLL_DEADLINE, TestServer, Visitor, eventually, join_all, pageview, post_event, query_body, rows, totals,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SITE: &str = "crash.example";
/// Concurrent senders: even ones send single-event bodies, odd ones batches of 1–5.
const TASKS: u64 = 4;
/// How long the senders run before the kill.
const KILL_AFTER: Duration = Duration::from_millis(1500);
/// Rows per page of results of the breakdown by page.
const PAGE_SIZE: usize = 1000;

/// Every request of the test, by its page path (`/r/<request number>`): all events of a request
/// share the path, and no two requests do.
#[derive(Debug, Default, Clone)]
struct Ledger {
    /// Path → how many events its request carried (recorded before sending).
    sent: BTreeMap<String, u64>,
    /// Paths whose request was answered 202 with all events accepted.
    acked: BTreeSet<String>,
    /// Answers that were neither such a 202 nor a transport error.
    unexpected: Vec<String>,
    /// Requests that got no answer (the server died under them or before them).
    failed: u64,
}

impl Ledger {
    fn acked_events(&self) -> u64 {
        self.acked.iter().map(|p| self.sent[p]).sum()
    }
}

/// The body of request `n` from sender `task`.
fn request_body(task: u64, n: u64) -> (String, u64, Value) {
    let path = format!("/r/{n}");
    // Every third request uses Plausible's short keys.
    let event = if n.is_multiple_of(3) {
        json!({"n": "pageview", "u": format!("https://{SITE}{path}"), "d": SITE})
    } else {
        pageview(SITE, &path)
    };
    if task.is_multiple_of(2) {
        (path, 1, event)
    } else {
        let count = 1 + n % 5;
        (path, count, Value::Array(vec![event; usize::try_from(count).unwrap()]))
    }
}

/// Runs the senders, SIGKILLs the server after [`KILL_AFTER`], and waits for the senders to stop.
async fn ingest_then_kill(server: &mut TestServer, next: &Arc<AtomicU64>, ledger: &Arc<Mutex<Ledger>>) {
    let base = server.base().to_owned();
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let (client, base, next, ledger) =
            (server.client().clone(), base.clone(), Arc::clone(next), Arc::clone(ledger));
        handles.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let (path, count, body) = request_body(task, n);
                ledger.lock().unwrap().sent.insert(path.clone(), count);
                let visitor = Visitor::new(u32::try_from(n % 50).unwrap());
                let answer = post_event(&client, &base, body.to_string().into_bytes(), &visitor.headers()).await;
                let mut book = ledger.lock().unwrap();
                match answer {
                    Ok(a) if a.status == 202 && a.accepted == Some(count) && a.dropped.is_empty() => {
                        book.acked.insert(path);
                    }
                    Ok(a) => book.unexpected.push(format!("request {n} ({count} events): {a:?}")),
                    Err(_) => {
                        book.failed += 1;
                        break;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(KILL_AFTER).await;
    server.kill();
    join_all(handles).await;
}

/// Pageviews per page of today, as the server answers now: every page of results, by page
/// path ascending, [`PAGE_SIZE`] rows at a time.
/// Page views by page, from `tier`: the rollups (unfiltered) or the segments (a filter every
/// event passes).
async fn page_counts(server: &TestServer, tier: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut counts = BTreeMap::new();
    for page in 0.. {
        let mut extra = json!({
            "dimensions": ["event:page"],
            "order_by": [["event:page", "asc"]],
            "pagination": {"limit": PAGE_SIZE, "offset": page * PAGE_SIZE},
        });
        if tier == "segments" {
            extra["filters"] = json!([["is_not", "visit:country", ["ZZ"]]]);
        }
        let answer = server.query(&query_body(SITE, &["pageviews"], extra)).await?;
        if answer["meta"]["tier"] != tier {
            return Err(format!("answered by {} instead of {tier}", answer["meta"]["tier"]));
        }
        let rows = rows(&answer);
        let full = rows.len() == PAGE_SIZE;
        for (dims, metrics) in rows {
            let path = dims.join("|");
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let count = metrics[0] as u64;
            if counts.insert(path.clone(), count).is_some() {
                return Err(format!("{path} appears on two pages of results (offset {})", page * PAGE_SIZE));
            }
        }
        if !full {
            break;
        }
    }
    Ok(counts)
}

/// Acknowledged paths not (yet) counted as often as they were sent: how many, and a few of them.
fn short_of(ledger: &Ledger, counts: &BTreeMap<String, u64>) -> (usize, Vec<String>) {
    let short: Vec<String> = ledger
        .acked
        .iter()
        .filter(|p| counts.get(*p).copied().unwrap_or(0) < ledger.sent[*p])
        .map(|p| format!("{p}: counted {:?}, sent {}", counts.get(p), ledger.sent[p]))
        .collect();
    (short.len(), short.into_iter().take(5).collect())
}

/// What is wrong with `counts`: acknowledged paths not counted exactly as often as sent, paths
/// counted more often than sent or never sent.
fn problems(ledger: &Ledger, counts: &BTreeMap<String, u64>) -> Vec<String> {
    let mut problems = Vec::new();
    for path in &ledger.acked {
        let (counted, sent) = (counts.get(path).copied().unwrap_or(0), ledger.sent[path]);
        if counted != sent {
            problems.push(format!("acknowledged {path}: counted {counted}, sent {sent}"));
        }
    }
    for (path, &counted) in counts {
        match ledger.sent.get(path) {
            None => problems.push(format!("{path}: counted {counted} but never sent")),
            Some(&sent) if counted > sent => problems.push(format!("{path}: counted {counted}, sent only {sent}")),
            Some(_) => {}
        }
    }
    problems
}

/// Waits until every acknowledged event is counted, then checks the exact counts, twice (the
/// second time after the aggregation interval, so late double counting shows too).
async fn check_counts(server: &TestServer, ledger: &Ledger, after: &str) {
    for tier in ["rollups", "segments"] {
        check_tier(server, ledger, &format!("{after}, {tier}"), tier).await;
    }
}

async fn check_tier(server: &TestServer, ledger: &Ledger, after: &str, tier: &str) {
    let probe = move || async move { page_counts(server, tier).await.map(|counts| short_of(ledger, &counts)) };
    eventually(&format!("{after}: every acknowledged event counted"), POLL_DEADLINE, probe, |s| {
        s.as_ref().is_ok_and(|(short, _)| *short == 0)
    })
    .await
    .unwrap();
    for when in ["at once", "2.5 s later"] {
        if when != "at once" {
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
        let counts = page_counts(server, tier).await.unwrap();
        let mut problems = problems(ledger, &counts);
        let unacked_counted = counts.keys().filter(|p| !ledger.acked.contains(*p)).count();
        eprintln!(
            "crash_recovery, {after}, {when}: {} requests ({} events) acknowledged, {} without an answer, \
             {unacked_counted} unacknowledged requests counted, {} problems",
            ledger.acked.len(),
            ledger.acked_events(),
            ledger.failed,
            problems.len()
        );
        problems.truncate(20);
        assert!(problems.is_empty(), "{after}, {when}:\n{}", problems.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_sigkill() {
    // Segments persist to Parquet at almost every flush, so the kills land during persists too.
    let persist_often = ["--segment-persist-rows", "20"];
    let mut server = TestServer::start_with("crash", &[SITE], &persist_often);
    let next = Arc::new(AtomicU64::new(0));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for round in 1..=2 {
        ingest_then_kill(&mut server, &next, &ledger).await;
        server.start_again(&persist_often);
        let ledger = ledger.lock().unwrap().clone();
        assert!(ledger.unexpected.is_empty(), "round {round}: unexpected answers:\n{}", ledger.unexpected.join("\n"));
        assert!(!ledger.acked.is_empty(), "round {round}: no request acknowledged in {KILL_AFTER:?}");
        let (status, body) = server.get("/api/health", None).await;
        assert_eq!(status, 200, "health after restart {round}: {body}");
        check_counts(&server, &ledger, &format!("restart after SIGKILL {round}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_loses_nothing() {
    const SITE: &str = "graceful.example";
    // A long aggregation interval, so that the server holds unflushed work when it is stopped.
    let slow = ["--flush-interval-ms", "60000"];
    let mut server = TestServer::start_with("graceful", &[SITE], &slow);
    let mut sent = 0.0;
    for (round, signal) in ["TERM", "INT"].into_iter().enumerate() {
        for i in 0..20 {
            let visitor = Visitor::new(u32::try_from(round * 100 + i).unwrap());
            let path = format!("/{signal}/{i}");
            let answer = server.post_event(pageview(SITE, &path).to_string(), &visitor.headers()).await;
            assert_eq!((answer.status, answer.accepted), (202, Some(1)), "{answer:?}");
            sent += 1.0;
        }
        let (status, stderr) = server.stop_with(signal);
        assert!(status.success(), "after SIG{signal} `tally serve` exited with {status}; stderr:\n{stderr}");
        server.start_again(&[]);
        let body = query_body(SITE, &["pageviews"], json!({}));
        let what = format!("pageviews after SIG{signal} and a restart");
        let probe = || server.totals(&body);
        eventually(&what, POLL_DEADLINE, probe, |t| t.as_ref().is_ok_and(|t| *t == [sent])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let answer = server.query(&body).await.unwrap();
        assert_eq!(totals(&answer), [sent], "{what}, 2.5 s later; answer {answer}");
        if round == 0 {
            // Next round: stop again while holding unflushed work.
            server.kill();
            server.start_again(&slow);
        }
    }
}
