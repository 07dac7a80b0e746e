//! Date ranges with Plausible's meaning, end to end: `all` starts at the first day with data,
//! `Nd` ends yesterday, date-times count whole local hours, and the answer echoes the range as
//! its first and last second in the site's offset.

use crate::harness::{ServerProcess, TempDir, chrome_ua, http_client, key_create, site_add, tally_ok};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const SITE: &str = "ranges.example";

#[tokio::test]
async fn all_nd_and_date_times_count_what_plausible_would() {
    let dir = TempDir::new("date-ranges");
    site_add(dir.path(), SITE, Some("Asia/Kolkata"));
    let key = key_create(dir.path(), SITE);
    let now = Timestamp::now();
    // 40 days ago (3 events), 3 days ago (2), and now (1).
    let mut lines = String::new();
    for (days_ago, n) in [(40i64, 3), (3, 2), (0, 1)] {
        for i in 0..n {
            let at = now - SignedDuration::from_hours(24 * days_ago) - SignedDuration::from_secs(i);
            lines += &json!({
                "name": "pageview", "url": format!("https://{SITE}/{days_ago}/{i}"), "domain": SITE,
                "timestamp": at.to_string(), "user_agent": chrome_ua(1), "visitor": format!("v{days_ago}-{i}"),
            })
            .to_string();
            lines.push('\n');
        }
    }
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, lines).unwrap();
    let out =
        tally_ok(&["import", file.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap(), "--no-progress"]);
    assert!(out.contains("imported 6 events"), "{out}");
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();
    let ask = |range: Value| {
        let request = client
            .post(format!("{}/api/v2/query", server.base()))
            .bearer_auth(&key)
            .json(&json!({"site_id": SITE, "metrics": ["pageviews"], "date_range": range}));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            (status, answer)
        }
    };
    let pageviews = |answer: &Value| answer["results"][0]["metrics"][0].as_f64();

    let (status, all) = ask(json!("all")).await;
    assert_eq!((status, pageviews(&all)), (200, Some(6.0)), "{all}");
    let echoed = all["query"]["date_range"][0].as_str().unwrap().to_owned();
    assert!(echoed.ends_with("T00:00:00+05:30"), "the first second of the first local day: {echoed}");
    let (_, week) = ask(json!("7d")).await;
    assert_eq!(pageviews(&week), Some(2.0), "7d is the 7 days before today: {week}");
    let (_, today) = ask(json!("day")).await;
    assert_eq!(pageviews(&today), Some(1.0));
    let (_, last_day) = ask(json!("24h")).await;
    assert_eq!(pageviews(&last_day), Some(1.0));

    // The hour that holds "now", as date-times on whole Kolkata hours (UTC hh:30).
    let local = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap().to_datetime(now);
    let hour_start = local.with().minute(0).second(0).subsec_nanosecond(0).build().unwrap();
    let from = format!("{}+05:30", hour_start.strftime("%Y-%m-%dT%H:%M:%S"));
    let to = format!("{}+05:30", (hour_start + SignedDuration::from_secs(3599)).strftime("%Y-%m-%dT%H:%M:%S"));
    let (status, hour) = ask(json!([from, to])).await;
    assert_eq!((status, pageviews(&hour)), (200, Some(1.0)), "{hour}");
    assert_eq!(hour["query"]["date_range"], json!([from, to]), "echoed as given");
    // Inside hours (10:00Z is 15:30 in Kolkata): the seconds between them, from the segments,
    // echoed to the second in the site's offset.
    let (status, inside) = ask(json!(["2026-01-01T10:00:00Z", "2026-01-01T12:00:00Z"])).await;
    assert_eq!(status, 200, "{inside}");
    assert_eq!(inside["meta"]["tier"], "segments", "{inside}");
    assert_eq!(inside["query"]["date_range"], json!(["2026-01-01T15:30:00+05:30", "2026-01-01T17:30:00+05:30"]));
    let from = format!("{}+05:30", (hour_start + SignedDuration::from_secs(60)).strftime("%Y-%m-%dT%H:%M:%S"));
    let (status, minutes) = ask(json!([from, to])).await;
    assert_eq!(status, 200, "{minutes}");
    let imported_minute = local.minute() >= 1;
    assert_eq!(
        pageviews(&minutes),
        Some(if imported_minute { 1.0 } else { 0.0 }),
        "from a minute past the hour: {minutes}"
    );
    // At start the server refills the realtime window from the log's tail: the event imported
    // with the time "now" is in it.
    let (status, realtime) = ask(json!("realtime")).await;
    assert_eq!((status, pageviews(&realtime)), (200, Some(1.0)), "{realtime}");
}
