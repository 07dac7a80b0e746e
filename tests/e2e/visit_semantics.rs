//! Visits as Plausible counts them, on three visits small enough to check by hand: grouped by an
//! event's page, `visits` counts the visits that hold the page (bounce rate stays that of the
//! visits that entered there); filtered by an event's name, visit metrics describe the visits
//! that hold such an event; `has_done` and `has_not_done` select visits by their events.

use crate::harness::{ServerProcess, TempDir, http_client, key_create, site_add, tally_ok};
use serde_json::{Value, json};

const SITE: &str = "visits.example";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
/// 2026-11-10T09:00:00Z.
const T0: i64 = 1_794_301_200_000;

#[tokio::test]
async fn visits_hold_their_pages_and_events() {
    let dir = TempDir::new("visit-semantics");
    site_add(dir.path(), SITE, None);
    // a: / → /pricing → Signup; b: /pricing (a bounce); c: / → /docs.
    let events = [
        ("a", "pageview", "/", 0),
        ("a", "pageview", "/pricing", 60),
        ("a", "Signup", "/pricing", 120),
        ("b", "pageview", "/pricing", 10),
        ("c", "pageview", "/", 20),
        ("c", "pageview", "/docs", 50),
    ];
    let mut lines: Vec<String> = events
        .iter()
        .map(|(visitor, name, page, s)| {
            json!({"name": name, "url": format!("https://{SITE}{page}"), "domain": SITE, "timestamp": T0 + s * 1000,
                   "user_agent": UA, "visitor": visitor})
            .to_string()
        })
        .collect();
    // The next day, d: one visit of one sign-up with a prop, from France.
    lines.push(
        json!({"name": "Signup", "url": format!("https://{SITE}/pricing"), "domain": SITE, "timestamp": T0 + 86_400_000,
               "user_agent": UA, "visitor": "d", "country": "FR", "props": {"plan": "pro"}})
        .to_string(),
    );
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    tally_ok(&["import", file.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap(), "--no-progress"]);
    let key = key_create(dir.path(), SITE);
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();
    let ask = |metrics: Value, extra: Value| {
        let mut body = json!({"site_id": SITE, "metrics": metrics, "date_range": ["2026-11-10", "2026-11-10"]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (client, key, base) = (client.clone(), key.clone(), server.base().to_owned());
        async move {
            let response =
                client.post(format!("{base}/api/v2/query")).bearer_auth(key).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200, "{body}");
            let answer: Value = response.json().await.unwrap();
            let rows: Vec<(Value, Value)> = answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["dimensions"].clone(), r["metrics"].clone()))
                .collect();
            rows
        }
    };

    // By page: visits that hold it; bounce rate of the visits that entered there.
    let by_page = ask(json!(["visits", "bounce_rate"]), json!({"dimensions": ["event:page"]})).await;
    assert_eq!(
        by_page,
        vec![(json!(["/"]), json!([2, 0])), (json!(["/pricing"]), json!([2, 100])), (json!(["/docs"]), json!([1, 0])),]
    );
    // Filtered by an event's name: the visits that hold one (a's, of two page views).
    let signup = json!({"filters": [["is", "event:name", ["Signup"]]]});
    let signed = ask(json!(["visitors", "visits", "bounce_rate", "views_per_visit"]), signup).await;
    assert_eq!(signed, vec![(json!([]), json!([1, 1, 0, 2.0]))]);
    // Behavioural filters.
    let docs = json!({"filters": [["has_done", ["is", "event:page", ["/docs"]]]]});
    assert_eq!(ask(json!(["visitors", "pageviews"]), docs).await, vec![(json!([]), json!([1, 2]))]);
    let never = json!({"filters": [["has_not_done", ["is", "event:name", ["Signup"]]]]});
    assert_eq!(ask(json!(["visitors", "visits", "pageviews"]), never).await, vec![(json!([]), json!([2, 2, 3]))]);
    // Filtered by a prop, visits are those with an event that has it: d's visit for `pro`, none
    // for `(none)` (its visit row, which has no props, makes no row of its own). Only `visits`
    // asked: counted from the events alone, without looking the visits up first.
    let next_day = |filter: Value| {
        json!({"date_range": ["2026-11-11", "2026-11-11"], "dimensions": ["visit:country"],
                                          "filters": [filter]})
    };
    let pro = next_day(json!(["is", "event:props:plan", ["pro"]]));
    assert_eq!(ask(json!(["visits"]), pro).await, vec![(json!(["FR"]), json!([1]))]);
    let none = next_day(json!(["is", "event:props:plan", ["(none)"]]));
    assert_eq!(ask(json!(["visits"]), none).await, vec![]);
    // `has_done` looks for events only.
    let response = client
        .post(format!("{}/api/v2/query", server.base()))
        .bearer_auth(&key)
        .json(&json!({"site_id": SITE, "metrics": ["visitors"], "date_range": "day",
                      "filters": [["has_done", ["is", "visit:country", ["DE"]]]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("looks for events"), "{error}");
}
