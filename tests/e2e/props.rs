//! Custom props (`event:props:<name>`): answered from the rollups up to the per-day cap on prop
//! rows, and past it from the segments, exactly and without an "(other)" row; and the list of
//! prop names (`POST /api/v2/props`).

use crate::harness::{ServerProcess, TempDir, http_client, key_create, site_add, tally_ok};
use serde_json::{Value, json};

const DAY: &str = "2026-11-02";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
/// 2026-11-02T08:00Z.
const START_MS: i64 = 1_793_606_400_000 + 8 * 3_600_000;

async fn ask(server: &ServerProcess, key: &str, body: Value) -> Value {
    let response = http_client()
        .post(format!("{}/api/v2/query", server.base()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    answer
}

fn rows(answer: &Value) -> Vec<(String, Vec<i64>)> {
    let mut out: Vec<(String, Vec<i64>)> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let metrics = r["metrics"].as_array().unwrap().iter().map(|m| m.as_i64().unwrap()).collect();
            (r["dimensions"][0].as_str().unwrap().to_owned(), metrics)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn props_past_the_rollup_cap_are_answered_exactly_by_the_segments() {
    let dir = TempDir::new("props");
    site_add(dir.path(), "props.test", None);
    let key = key_create(dir.path(), "props.test");
    // Day one: a few plans (well under the cap). The next day: 1,200 distinct order ids (past
    // the cap of 1,000 prop rows per day), each bought by two visitors.
    let mut lines = String::new();
    let plans = ["free", "pro", "pro", "team"];
    for (i, plan) in plans.iter().enumerate() {
        let line = json!({"n": "Signup", "u": "https://props.test/", "d": "props.test", "timestamp": START_MS + i as i64 * 1000,
            "user_agent": UA, "visitor": format!("v{i}"), "p": {"plan": plan}});
        lines += &format!("{line}\n");
    }
    let next_day = START_MS + 24 * 3_600_000;
    for order in 0..1_200 {
        for buyer in 0..2 {
            let line = json!({"n": "Purchase", "u": "https://props.test/checkout", "d": "props.test",
                "timestamp": next_day + order * 10 + buyer, "user_agent": UA, "visitor": format!("b{order}-{buyer}"),
                "p": {"order": format!("o{order}")}});
            lines += &format!("{line}\n");
        }
    }
    let file = dir.path().join("props.ndjson");
    std::fs::write(&file, lines).unwrap();
    tally_ok(&["import", file.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap(), "--no-progress"]);
    let server = ServerProcess::spawn(dir.path(), &[]);
    let body = |prop: &str, days: [&str; 2]| {
        json!({"site_id": "props.test", "metrics": ["visitors", "events"], "date_range": days,
            "dimensions": [format!("event:props:{prop}")]})
    };

    let plans_answer = ask(&server, &key, body("plan", [DAY, DAY])).await;
    assert_eq!(plans_answer["meta"]["tier"], "rollups");
    let want = vec![("free".to_owned(), vec![1, 1]), ("pro".to_owned(), vec![2, 2]), ("team".to_owned(), vec![1, 1])];
    assert_eq!(rows(&plans_answer), want);

    let orders = ask(&server, &key, body("order", [DAY, "2026-11-03"])).await;
    assert_eq!(orders["meta"]["tier"], "segments", "past the cap, the segments answer");
    let got = rows(&orders);
    assert_eq!(got.len(), 1_200, "every value, no (other) row");
    assert!(got.iter().all(|(value, m)| value.starts_with('o') && m == &vec![2, 2]), "{:?}", &got[..3]);

    // A prop filter sees "(none)" on events without the prop.
    let filtered = json!({"site_id": "props.test", "metrics": ["events"], "date_range": [DAY, "2026-11-03"],
        "filters": [["is", "event:props:plan", ["(none)"]]]});
    let answer = ask(&server, &key, filtered).await;
    assert_eq!(answer["results"][0]["metrics"][0], 2_400);
    // Props are on events: session metrics by prop are a clear 400, as in Plausible.
    let visits = json!({"site_id": "props.test", "metrics": ["bounce_rate"], "date_range": [DAY, DAY],
        "dimensions": ["event:props:plan"]});
    let response = http_client()
        .post(format!("{}/api/v2/query", server.base()))
        .bearer_auth(&key)
        .json(&visits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("cannot be queried along with event dimensions"));
}

/// `POST /api/v2/props` lists the prop names of a range with the events that carry each, most
/// first, among the events that pass the filters; bad requests are 400s, other sites 404s.
#[tokio::test]
async fn prop_names_are_listed_with_their_events() {
    let dir = TempDir::new("prop-names");
    site_add(dir.path(), "names.test", None);
    let key = key_create(dir.path(), "names.test");
    let event = |i: i64, name: &str, props: Value| {
        let line = json!({"n": name, "u": "https://names.test/", "d": "names.test", "timestamp": START_MS + i * 1000,
            "user_agent": UA, "visitor": format!("v{i}"), "p": props});
        format!("{line}\n")
    };
    let mut lines = String::new();
    for i in 0..4 {
        lines += &event(i, "Signup", json!({"plan": "pro"}));
    }
    for i in 4..6 {
        lines += &event(i, "Purchase", json!({"plan": "team", "coupon": "WINTER"}));
    }
    lines += &event(6, "Download", json!({"file": "a.pdf"}));
    for i in 7..10 {
        lines += &event(i, "pageview", json!({}));
    }
    // The next day's prop is outside a one-day range.
    lines += &event(24 * 3_600, "Signup", json!({"referral": "friend"}));
    let file = dir.path().join("names.ndjson");
    std::fs::write(&file, lines).unwrap();
    tally_ok(&["import", file.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap(), "--no-progress"]);
    let server = ServerProcess::spawn(dir.path(), &[]);
    let post = async |body: Value, key: &str| {
        let response = http_client()
            .post(format!("{}/api/v2/props", server.base()))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json::<Value>().await.unwrap())
    };

    let (status, answer) = post(json!({"site_id": "names.test", "date_range": [DAY, DAY]}), &key).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["props"],
        json!([{"name": "plan", "events": 6}, {"name": "coupon", "events": 2}, {"name": "file", "events": 1}])
    );
    assert_eq!(answer["truncated"], false);
    assert_eq!(answer["meta"]["date_range"], json!([DAY, DAY]));
    let (_, two_days) = post(json!({"site_id": "names.test", "date_range": [DAY, "2026-11-03"]}), &key).await;
    assert_eq!(two_days["props"].as_array().unwrap().len(), 4, "{two_days}");

    let signups =
        json!({"site_id": "names.test", "date_range": [DAY, DAY], "filters": [["is", "event:name", ["Signup"]]]});
    assert_eq!(post(signups, &key).await.1["props"], json!([{"name": "plan", "events": 4}]));

    for bad in [
        json!({"site_id": "names.test", "date_range": "realtime"}),
        json!({"site_id": "names.test", "date_range": [DAY, DAY], "metrics": ["visitors"]}),
        json!({"site_id": "names.test", "date_range": "yesterday-ish"}),
    ] {
        let (status, answer) = post(bad.clone(), &key).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (status, _) = post(json!({"site_id": "other.test", "date_range": [DAY, DAY]}), &key).await;
    assert_eq!(status, 404);
    let (status, _) = post(json!({"site_id": "names.test", "date_range": [DAY, DAY]}), "tally_nope").await;
    assert_eq!(status, 401);
}
