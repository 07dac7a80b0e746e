//! Site settings at the edge: allowed hostnames, a settings change seen within its time to live,
//! unknown sites, the per-site rate limit (429 once over it), CORS for browsers, and the
//! tracking script it serves.

use crate::poll::poll;
use crate::stand_ins::Kinesalite;
use crate::stream;
use crate::worker::Worker;
use serde_json::json;
use std::time::Duration;
use tally_model::event::LogEntry;
use tally_model::reject::DropReason;

const UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

async fn post(client: &reqwest::Client, url: &str, event: serde_json::Value) -> reqwest::Response {
    client
        .post(format!("{url}/api/event"))
        .header("content-type", "application/json")
        .header("user-agent", UA)
        .json(&event)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn site_settings_rate_limits_and_cors() {
    let kinesalite = Kinesalite::start();
    let kinesis = stream::create(&kinesalite.url).await;
    let sites = [
        ("shop.example", r#"{"allowed_hostnames": ["shop.example", "*.blog.shop.example"]}"#),
        // The test environment's site unit: 50 requests per 10 s.
        ("limited.example", "{}"),
    ];
    let worker = Worker::start(&kinesalite.url, &sites).await;
    let client = reqwest::Client::new();
    let event = |domain: &str, url: &str| json!({ "name": "pageview", "domain": domain, "url": url });

    // Allowed hostnames.
    for (url, dropped) in [
        ("https://shop.example/", None),
        ("https://www.shop.example/", None),
        ("https://x.blog.shop.example/", None),
        ("https://evil.example/", Some("hostname_not_allowed")),
        ("https://cdn.shop.example/", Some("hostname_not_allowed")),
    ] {
        let answer = post(&client, &worker.url, event("shop.example", url)).await;
        assert_eq!(answer.status(), 202);
        let got = answer.headers().get("x-tally-dropped").map(|h| h.to_str().unwrap().to_owned());
        assert_eq!(got.as_deref(), dropped, "{url}");
    }
    // A settings change reaches the Worker within SITE_SETTINGS_TTL_SECONDS (1 s here).
    worker.put_sites(&[("shop.example", r#"{"allowed_hostnames": ["shop.example", "cdn.shop.example"]}"#)]);
    let changed_after = std::time::Instant::now();
    let probe = async || post(&client, &worker.url, event("shop.example", "https://cdn.shop.example/")).await;
    let answer = poll(Duration::from_secs(15), probe, |a| a.headers().get("x-tally-dropped").is_none()).await;
    assert!(answer.headers().get("x-tally-dropped").is_none(), "the new settings were not seen within 15 s");
    println!("new site settings seen {:?} after the write returned", changed_after.elapsed());

    // A domain without settings is not a site.
    let answer = post(&client, &worker.url, event("nobody.example", "https://nobody.example/")).await;
    assert_eq!(answer.headers()["x-tally-dropped"], "unknown_site");

    // CORS: the preflight and the answer itself.
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{}/api/event", worker.url))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(preflight.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");

    // The tracking script: the very bytes `tally serve` serves, loadable from any page.
    let script = client.get(format!("{}/js/tally.js", worker.url)).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-type"], tally_model::tracker::CONTENT_TYPE);
    assert_eq!(script.headers()["access-control-allow-origin"], "*");
    assert_eq!(script.text().await.unwrap(), tally_model::tracker::SCRIPT);

    // The site limit: a burst of 120 requests gets 429s once the site's unit is spent.
    let (mut accepted, mut limited) = (0, 0);
    for i in 0..120 {
        let answer =
            post(&client, &worker.url, event("limited.example", &format!("https://limited.example/{i}"))).await;
        match answer.status().as_u16() {
            202 => accepted += 1,
            429 => {
                assert_eq!(answer.json::<serde_json::Value>().await.unwrap(), json!({ "error": "rate_limited" }));
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(limited > 0 && accepted >= 50, "accepted {accepted}, limited {limited}");
    // A burst can straddle two 10 s windows, so at most two units get through.
    assert!(accepted <= 100, "accepted {accepted}");

    // What was accepted is on the stream: the 3 allowed pages and the one allowed after the
    // change, the drops, the limited site's events.
    let entries = stream::wait_for_events(&kinesis, 4 + accepted, Duration::from_secs(30)).await;
    assert_eq!(stream::event_ids(&entries).len(), 4 + accepted);
    let not_allowed = entries
        .iter()
        .filter(|(_, e)| matches!(e, LogEntry::Drop(d) if d.reason == DropReason::HostnameNotAllowed))
        .count();
    assert!(not_allowed >= 2, "{not_allowed}");
    drop(worker);
}
