//! The shared bad-input vectors against the Worker: the same statuses, error reasons, accepted
//! counts and drop reasons as `tally serve` gives (tests/e2e/bad_input.rs), and the drops the
//! vectors predict for the site arrive on the stream.

use crate::poll::poll;
use crate::stand_ins::Kinesalite;
use crate::stream;
use crate::vectors::{Expect, load, show};
use crate::worker::Worker;
use std::collections::BTreeMap;
use std::time::Duration;
use tally_model::event::LogEntry;

#[tokio::test]
async fn bad_input_vectors_get_the_answers_tally_serve_gives() {
    let (site, vectors) = load();
    let kinesalite = Kinesalite::start();
    let kinesis = stream::create(&kinesalite.url).await;
    // A high site limit: the vectors are sent in a burst from one client.
    let worker = Worker::start(&kinesalite.url, &[(&site, r#"{"rate_limit_per_minute": 60000}"#)]).await;
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    let mut want_drops: BTreeMap<String, usize> = BTreeMap::new();
    let mut want_events = 0;
    for v in &vectors {
        let mut request = client.post(format!("{}/api/event", worker.url)).body(v.body.clone());
        for (name, value) in &v.headers {
            request = request.header(name, value);
        }
        let what = format!("{} ({}): POST /api/event {:?} {}", v.name, v.about, v.headers, show(&v.body));
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let header = |name: &str| answer.headers().get(name).map(|h| h.to_str().unwrap().to_owned());
        let (accepted, dropped) = (header("x-tally-accepted"), header("x-tally-dropped"));
        let body = answer.text().await.unwrap();
        match &v.expect {
            Expect::Rejected { status: want, error } => {
                let got_error = serde_json::from_str::<serde_json::Value>(&body).ok().map(|b| b["error"].clone());
                if status != *want || got_error.as_ref().and_then(|e| e.as_str()) != Some(error.as_str()) {
                    failures.push(format!("{what}\n    → want {want} {error}, got {status} {body}"));
                }
            }
            Expect::Accepted { accepted: want_accepted, dropped: want_dropped, site_drops } => {
                let got_dropped: Vec<String> = dropped.iter().flat_map(|d| d.split(", ").map(str::to_owned)).collect();
                let want_accepted = want_accepted.to_string();
                if status != 202 || accepted.as_deref() != Some(want_accepted.as_str()) || &got_dropped != want_dropped
                {
                    failures.push(format!(
                        "{what}\n    → want 202, accepted {want_accepted}, dropped {want_dropped:?}; \
                         got {status} {body}, accepted {accepted:?}, dropped {got_dropped:?}"
                    ));
                }
                for reason in site_drops {
                    *want_drops.entry(reason.clone()).or_default() += 1;
                }
                want_events += want_accepted.parse::<usize>().unwrap();
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} vectors failed:\n{}", failures.len(), vectors.len(), failures.join("\n"));

    // The site's drops and the accepted events are on the stream, as the core would count them.
    let counted = async || {
        let entries = stream::read_all(&kinesis).await;
        let mut drops: BTreeMap<String, usize> = BTreeMap::new();
        for (_, entry) in &entries {
            if let LogEntry::Drop(drop) = entry
                && drop.site.as_deref() == Some(site.as_str())
            {
                *drops.entry(drop.reason.as_str().to_owned()).or_default() += 1;
            }
        }
        (drops, stream::event_ids(&entries).len())
    };
    let (drops, events) = poll(Duration::from_secs(30), counted, |(d, e)| *d == want_drops && *e == want_events).await;
    assert_eq!(drops, want_drops, "drops of {site} on the stream");
    assert_eq!(events, want_events, "events on the stream");
    drop(worker);
}
