//! Engagement events, as Plausible's tracker sends them when a page is hidden or left (`n:
//! "engagement"`, scroll depth `sd`, engaged milliseconds `e`): they end no bounce, add no
//! duration and count as no event, page view or visitor; `scroll_depth` and `time_on_page`
//! report what they measured, per visit, as Plausible defines them (checked by hand on four
//! visitors, one of them Plausible's own example: 100 s + 100 s in one visit and 30 s in another
//! make 115 s).

use crate::harness::{ServerProcess, TempDir, http_client, key_create, site_add, tally_ok};
use serde_json::{Value, json};

const SITE: &str = "engaged.example";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
/// 2026-11-10T09:00:00Z.
const T0: i64 = 1_794_301_200_000;

#[tokio::test]
async fn engagement_events_measure_pages_and_change_no_visit() {
    let dir = TempDir::new("engagement");
    site_add(dir.path(), SITE, None);
    let pageview = |visitor: &str, page: &str, s: i64| {
        json!({"n": "pageview", "u": format!("https://{SITE}{page}"), "d": SITE, "timestamp": T0 + s * 1000,
               "user_agent": UA, "visitor": visitor})
    };
    let engagement = |visitor: &str, page: &str, s: i64, sd: Value, e: Value| {
        let mut line = json!({"n": "engagement", "u": format!("https://{SITE}{page}"), "d": SITE,
                              "timestamp": T0 + s * 1000, "user_agent": UA, "visitor": visitor});
        if !sd.is_null() {
            line["sd"] = sd;
        }
        if !e.is_null() {
            line["e"] = e;
        }
        line
    };
    let lines = [
        // a: one page view, engaged twice on it (100 s each; deepest scroll 70 %): still a bounce.
        pageview("a", "/", 0),
        // b: / then /pricing; a scroll depth over 100 counts as 100; /pricing sends no depth.
        pageview("b", "/", 10),
        // c: /docs, its depth sent as a string, no engaged time.
        pageview("c", "/docs", 30),
        engagement("c", "/docs", 40, json!("55"), Value::Null),
        engagement("b", "/", 50, json!(150), json!(30_000)),
        pageview("b", "/pricing", 60),
        engagement("b", "/pricing", 90, Value::Null, json!(5_000)),
        engagement("a", "/", 100, json!(40), json!(100_000)),
        engagement("a", "/", 250, json!(70), json!(100_000)),
        // d: engaged without a visit (dropped); e: an engagement event that measured nothing.
        engagement("d", "/", 300, json!(10), json!(1_000)),
        engagement("e", "/", 310, Value::Null, json!(0)),
    ];
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, text.join("\n")).unwrap();
    tally_ok(&["import", file.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap(), "--no-progress"]);
    let key = key_create(dir.path(), SITE);
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();
    let ask = |body: Value| {
        let mut full = json!({"site_id": SITE, "date_range": ["2026-11-10", "2026-11-10"]});
        full.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let (client, key, base) = (client.clone(), key.clone(), server.base().to_owned());
        async move {
            let response =
                client.post(format!("{base}/api/v2/query")).bearer_auth(key).json(&full).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let rows = |answer: &Value| -> Vec<(Value, Value)> {
        answer["results"].as_array().unwrap().iter().map(|r| (r["dimensions"].clone(), r["metrics"].clone())).collect()
    };

    // The visits as if no engagement event had come: a and c bounced, b stayed 50 s.
    let (status, totals) = ask(json!({"metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate",
                                                   "visit_duration"]}))
    .await;
    assert_eq!(status, 200, "{totals}");
    assert_eq!(rows(&totals), vec![(json!([]), json!([3, 3, 4, 4, 67, 17]))]);
    // No `engagement` row among the event names.
    let (_, names) = ask(json!({"metrics": ["visitors", "events"], "dimensions": ["event:name"]})).await;
    assert_eq!(rows(&names), vec![(json!(["pageview"]), json!([3, 4]))]);

    // Per page: scroll depth averaged over the visits that sent one, engaged time per visit
    // that sent an engagement event (rounded to whole seconds); `null` where nothing was sent.
    let (status, by_page) = ask(json!({"metrics": ["visitors", "pageviews", "scroll_depth", "time_on_page"],
                                       "dimensions": ["event:page"]}))
    .await;
    assert_eq!(status, 200, "{by_page}");
    assert_eq!(
        rows(&by_page),
        vec![
            (json!(["/"]), json!([2, 2, 85, 115])),
            (json!(["/docs"]), json!([1, 1, 55, 0])),
            (json!(["/pricing"]), json!([1, 1, null, 5])),
        ]
    );
    // Filtered by a page instead of grouped by it.
    let (_, home) =
        ask(json!({"metrics": ["scroll_depth", "time_on_page"], "filters": [["is", "event:page", ["/"]]]})).await;
    assert_eq!(rows(&home), vec![(json!([]), json!([85, 115]))]);
    // By hour and page, and filtered by a visit dimension: the same visits.
    let (_, hourly) = ask(json!({"metrics": ["scroll_depth"], "dimensions": ["time:hour", "event:page"],
                                 "filters": [["is", "visit:browser", ["Firefox"]]]}))
    .await;
    assert_eq!(
        rows(&hourly),
        vec![
            (json!(["2026-11-10 09:00:00", "/"]), json!([85])),
            (json!(["2026-11-10 09:00:00", "/docs"]), json!([55])),
            (json!(["2026-11-10 09:00:00", "/pricing"]), json!([null])),
        ]
    );

    // Both need the page, as in Plausible.
    for metric in ["scroll_depth", "time_on_page"] {
        let (status, error) = ask(json!({"metrics": [metric], "dimensions": ["visit:source"]})).await;
        assert_eq!(status, 400, "{error}");
        assert!(error["error"].as_str().unwrap().contains("event:page"), "{error}");
    }
}
