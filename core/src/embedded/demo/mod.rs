//! `tally serve --demo`: a living demo in one command. On a fresh data directory it registers
//! three sites in three time zones with goals and a funnel, imports 30 days of realistic
//! traffic through the import path (the checks of `POST /api/event`, the event log, the
//! aggregator), creates a stats key for the dashboard, and, while the server runs, keeps sending
//! live visits through the ingest endpoint's own code ([`crate::http::ingest::accept`]), so the
//! realtime view moves. Started again on its own data directory, it keeps the data, makes a
//! new key and goes on with the live visits.

pub mod traffic;

use crate::embedded::import::Importer;
use crate::embedded::log::EventLog;
use crate::embedded::store::Store;
use crate::http::AppState;
use crate::http::ingest::{Incoming, accept};
use crate::registry::{Funnel, Goal, NewKey, Registry, add_goal, add_site, create_key_with, save_funnel};
use anyhow::Context;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use traffic::SITES;

/// Full days of history the demo imports before today (and today up to now).
pub const HISTORY_DAYS: i64 = 30;

/// What [`prepare`] made ready.
#[derive(Debug)]
pub struct Prepared {
    /// A new stats key for every demo site.
    pub key: String,
    /// Whether the data directory was fresh, so the history is still to import.
    pub fresh: bool,
}

/// Registers the demo's sites, goals and funnel on a fresh data directory (one without sites),
/// or finds them on a data directory the demo made before, and creates a stats key for them.
/// Refuses a data directory that holds other sites: the demo never mixes with real data.
///
/// # Errors
/// Such a data directory, or a failure to write the registry.
pub fn prepare(dir: &Path) -> anyhow::Result<Prepared> {
    let existing: BTreeSet<String> = Registry::open(dir)?.snapshot().sites().map(|site| site.domain.clone()).collect();
    let demo: BTreeSet<String> = SITES.iter().map(|site| site.domain.to_owned()).collect();
    let fresh = existing.is_empty();
    if !fresh && existing != demo {
        anyhow::bail!(
            "--demo fills a fresh data directory, and {} holds other sites ({}): start the demo with another \
             --data-dir, for example `tally serve --demo --data-dir ./tally-demo`",
            dir.display(),
            existing.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    if fresh {
        for site in &SITES {
            add_site(dir, site.domain, Some(site.timezone))?;
        }
        let shop = SITES[0].domain;
        let event = |name: &str, currency: Option<&str>| Goal::Event {
            event_name: name.to_owned(),
            currency: currency.map(str::to_owned),
        };
        for goal in [
            event("Add to Cart", None),
            event("Purchase", Some("EUR")),
            event("Signup", None),
            Goal::Page { page_path: "/products/*".to_owned() },
            Goal::Page { page_path: "/checkout".to_owned() },
            Goal::Scroll { page_path: "/products/*".to_owned(), scroll_threshold: 75 },
        ] {
            add_goal(dir, shop, goal)?;
        }
        let steps = ["Visit /products/*", "Add to Cart", "Visit /checkout", "Purchase"];
        let funnel =
            Funnel { name: "Checkout".to_owned(), steps: steps.map(str::to_owned).to_vec(), strict_order: false };
        save_funnel(dir, shop, funnel)?;
        for (site, goals) in [
            (SITES[1].domain, ["Newsletter Signup", "Outbound Link: Click"]),
            (SITES[2].domain, ["File Download", "Search"]),
        ] {
            for name in goals {
                add_goal(dir, site, event(name, None))?;
            }
        }
    }
    let key = create_key_with(dir, &NewKey::stats(demo.into_iter().collect()))?;
    Ok(Prepared { key, fresh })
}

/// Imports the demo's history up to now into the log (blocking: run it on a blocking thread);
/// the aggregator counts it as it counts any import. Returns the events accepted.
///
/// # Errors
/// A failure to write the event log.
pub fn import_history(importer: &Importer, runtime: &tokio::runtime::Handle) -> anyhow::Result<u64> {
    let lines = traffic::history(0x7a11_de30, HISTORY_DAYS, jiff::Timestamp::now());
    let summary =
        importer.read_all(&mut &lines[..], runtime, &mut |_, _| {}).context("importing the demo's history")?;
    tracing::info!(
        events = summary.accepted,
        bots = summary.dropped.get("bot").copied().unwrap_or(0),
        "demo history imported"
    );
    Ok(summary.accepted)
}

/// The running demo, once the server listens: waits until the aggregator has counted what the
/// log holds (the history), prints where the dashboard is and the key to sign in with (after
/// the `listening on` line), then sends live visits until `stopped`.
pub async fn run(
    prepared: Prepared,
    address: std::net::SocketAddr,
    app: AppState,
    (log, store): (EventLog, Arc<Store>),
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let head = *log.head().borrow();
    while store.progress()?.offset < head {
        tokio::select! {
            _ = stopped.changed() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "demo dashboard: http://{address}/")?;
        writeln!(out, "demo key: {}", prepared.key)?;
        out.flush()?;
    }
    live(app, stopped).await;
    Ok(())
}

/// Sends live visits to every demo site until `stopped`: a new visit every few seconds per site
/// (more for the busier ones), each event at its time, through the ingest endpoint's code with
/// a made-up client address per visitor (never stored, as no address is) and the visit's place
/// as a trusted proxy's geo headers would give it.
async fn live(app: AppState, mut stopped: watch::Receiver<bool>) {
    let mut rng = fastrand::Rng::new();
    let mut visits = JoinSet::new();
    loop {
        let pause = Duration::from_millis(rng.u64(1_000..3_000));
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        // The busiest site gets a visit at most pauses, the others in proportion.
        for site in &SITES {
            if rng.u32(0..SITES[0].visits_per_day) >= site.visits_per_day {
                continue;
            }
            let visit = traffic::visit(&mut rng, site);
            let ip = IpAddr::V4(Ipv4Addr::new(10, rng.u8(..), rng.u8(..), rng.u8(1..255)));
            visits.spawn(send_visit(app.clone(), visit, ip));
        }
        while visits.try_join_next().is_some() {}
    }
    visits.shutdown().await;
}

/// Sends one visit's events, each at its offset from now.
async fn send_visit(app: AppState, visit: traffic::Visit, ip: IpAddr) {
    let start = tokio::time::Instant::now();
    for step in visit.steps {
        tokio::time::sleep_until(start + Duration::from_millis(u64::try_from(step.at_ms).unwrap_or(0))).await;
        let body = step.event.to_string();
        let request = Incoming {
            body: body.as_bytes(),
            content_type: Some("text/plain"),
            user_agent: visit.user_agent,
            ip,
            country: Some(visit.place.0),
            region: Some(visit.place.1),
            city: Some(visit.place.2),
        };
        if let Err(error) = accept(&app, &request).await {
            tracing::warn!(%error, "a demo event was not taken");
        }
    }
}
