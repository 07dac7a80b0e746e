//! Funnels: events imported with their times, goals and a funnel saved after them; the answer of
//! `POST /api/v2/funnel` checked by hand (order, ties within a second, visitor ids that change at
//! UTC midnight, filters); funnels saved, listed and removed through the CLI and the Sites API
//! (admin keys), and every bad request a 400 that says why.

use crate::harness::{ServerProcess, TempDir, http_client, key_create, site_add, tally_ok};
use serde_json::{Value, json};

const SITE: &str = "funnel.example";
/// 2026-11-10T00:00:00Z.
const DAY_MS: i64 = 1_794_268_800_000;
const MINUTE_MS: i64 = 60_000;

/// An import line: `name` on `page` at `at_ms` by `visitor` from `country`.
fn line(n: usize, visitor: &str, country: &str, name: &str, page: &str, at_ms: i64) -> String {
    json!({
        "n": name, "u": format!("https://{SITE}{page}"), "d": SITE, "timestamp": at_ms, "id": format!("f-{n}"),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "visitor": visitor, "country": country,
    })
    .to_string()
}

#[tokio::test]
async fn funnels_count_goals_in_order_per_visitor() {
    let dir = TempDir::new("funnels");
    let data = dir.path().to_str().unwrap().to_owned();
    site_add(dir.path(), SITE, Some("Etc/UTC"));
    let at = |hour: i64, minute: i64| DAY_MS + hour * 60 * MINUTE_MS + minute * MINUTE_MS;
    let events = [
        // a: a product, then a sign-up, then a purchase: all three steps.
        ("a", "DE", "pageview", "/product/1", at(10, 0)),
        ("a", "DE", "Signup", "/signup", at(10, 5)),
        ("a", "DE", "Purchase", "/checkout", at(10, 10)),
        // b: signed up before seeing a product: the first step only.
        ("b", "DE", "Signup", "/signup", at(9, 0)),
        ("b", "DE", "pageview", "/product/2", at(9, 1)),
        // c: a product and a sign-up in one second: in step order, two steps.
        ("c", "IN", "Signup", "/signup", at(12, 0) + 200),
        ("c", "IN", "pageview", "/product/1", at(12, 0) + 700),
        // d: no step at all.
        ("d", "IN", "pageview", "/about", at(13, 0)),
        // e: a product before UTC midnight, a sign-up after: two visitor ids, as in Plausible.
        ("e", "IN", "pageview", "/product/3", at(23, 50)),
        ("e", "IN", "Signup", "/signup", at(24, 5)),
    ];
    let lines: Vec<String> =
        events.iter().enumerate().map(|(n, (v, c, name, page, ms))| line(n, v, c, name, page, *ms)).collect();
    let file = dir.path().join("traffic.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    tally_ok(&["import", file.to_str().unwrap(), "--data-dir", &data, "--no-progress"]);
    // Goals and the funnel saved after the traffic count over all of it.
    for goal in [["--page", "/product/*"], ["--event", "Signup"], ["--event", "Purchase"]] {
        tally_ok(&["goal", "add", "--site", SITE, goal[0], goal[1], "--data-dir", &data]);
    }
    let steps = ["--step", "Visit /product/*", "--step", "Signup", "--step", "Purchase"];
    tally_ok(&[&["funnel", "add", "--site", SITE, "--name", "Checkout"][..], &steps, &["--data-dir", &data]].concat());
    let listed = tally_ok(&["funnel", "list", "--site", SITE, "--data-dir", &data]);
    assert_eq!(listed, "Checkout\tany\tVisit /product/*\tSignup\tPurchase\n");
    let refused = crate::harness::run_cli(&[
        "funnel",
        "add",
        "--site",
        SITE,
        "--name",
        "X",
        "--step",
        "Signup",
        "--data-dir",
        &data,
    ]);
    assert!(!refused.status.success() && refused.stderr.contains("2 to 8 steps"), "{refused:?}");

    let key = key_create(dir.path(), SITE);
    let admin = tally_ok(&["key", "create", "--site", SITE, "--scope", "admin", "--data-dir", &data]).trim().to_owned();
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();
    let base = server.base().to_owned();
    let funnel = |body: Value, key: String| {
        let request = client.post(format!("{base}/api/v2/funnel")).bearer_auth(key).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let range = json!(["2026-11-10", "2026-11-11"]);
    let (status, answer) =
        funnel(json!({"site_id": SITE, "date_range": range, "funnel": "Checkout"}), key.clone()).await;
    assert_eq!(status, 200, "{answer}");
    // Ids: a, b, c, d, e before midnight, e after: six visitors. a, b, c and e (before) reached a
    // product page; a and c then a sign-up; a then a purchase.
    assert_eq!(
        answer["steps"],
        json!([
            {"label": "Visit /product/*", "visitors": 4, "conversion_rate": "100", "conversion_rate_step": "0",
             "dropoff": 0, "dropoff_percentage": "0"},
            {"label": "Signup", "visitors": 2, "conversion_rate": "50", "conversion_rate_step": "50",
             "dropoff": 2, "dropoff_percentage": "50"},
            {"label": "Purchase", "visitors": 1, "conversion_rate": "25", "conversion_rate_step": "50",
             "dropoff": 1, "dropoff_percentage": "50"},
        ]),
        "{answer}"
    );
    assert_eq!(answer["name"], "Checkout");
    assert_eq!((answer["all_visitors"].as_u64(), answer["entering_visitors"].as_u64()), (Some(6), Some(4)));
    assert_eq!(answer["never_entering_visitors"], 2);
    assert_eq!(answer["entering_visitors_percentage"], "66.67");
    assert_eq!(answer["never_entering_visitors_percentage"], "33.33");
    assert_eq!(answer["meta"]["date_range"], range);
    assert_eq!(answer["meta"]["window_seconds"], 86_400);

    // Filtered: only German visitors' events count (a and b).
    let body = json!({"site_id": SITE, "date_range": range, "funnel": "Checkout", "filters": [["is", "visit:country", ["DE"]]]});
    let (status, answer) = funnel(body, key.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let visitors: Vec<u64> =
        answer["steps"].as_array().unwrap().iter().map(|s| s["visitors"].as_u64().unwrap()).collect();
    assert_eq!((answer["all_visitors"].as_u64(), visitors), (Some(2), vec![2, 1, 1]));
    // Steps given in the request, in another order: sign-up, then a product.
    let body = json!({"site_id": SITE, "date_range": "all", "steps": ["Signup", "Visit /product/*"]});
    let (status, answer) = funnel(body, key.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["name"], Value::Null);
    let visitors: Vec<u64> =
        answer["steps"].as_array().unwrap().iter().map(|s| s["visitors"].as_u64().unwrap()).collect();
    assert_eq!(visitors, [4, 2], "a, b, c and e (after midnight) signed up; b saw a product after it, c in its second");

    // In strict order, no other event may come between two steps: a's sign-up comes between its
    // product page and its purchase.
    for (strict, want) in [(false, [4, 1]), (true, [4, 0])] {
        let body = json!({"site_id": SITE, "date_range": range, "steps": ["Visit /product/*", "Purchase"], "strict_order": strict});
        let (status, answer) = funnel(body, key.clone()).await;
        assert_eq!(status, 200, "{answer}");
        let visitors: Vec<u64> =
            answer["steps"].as_array().unwrap().iter().map(|s| s["visitors"].as_u64().unwrap()).collect();
        assert_eq!((answer["strict_order"].as_bool(), visitors), (Some(strict), want.to_vec()), "{answer}");
    }

    // Bad requests: a 400 that says what to fix.
    for (body, says) in [
        (json!({"site_id": SITE, "date_range": "7d", "steps": ["Signup"]}), "2 to 8 steps"),
        (json!({"site_id": SITE, "date_range": "7d", "steps": ["Signup", "Nope"]}), "`Nope` is not a goal"),
        (json!({"site_id": SITE, "date_range": "7d", "steps": ["Signup", "Signup"]}), "twice"),
        (json!({"site_id": SITE, "date_range": "7d", "funnel": "Nope"}), "no funnel named `Nope`"),
        (json!({"site_id": SITE, "date_range": "7d"}), "either"),
        (json!({"site_id": SITE, "date_range": "realtime", "funnel": "Checkout"}), "realtime"),
        (
            json!({"site_id": SITE, "date_range": "7d", "funnel": "Checkout", "filters": [["is", "visit:nope", ["x"]]]}),
            "visit:nope",
        ),
        (json!({"site_id": SITE, "date_range": "7d", "funnel": "Checkout", "extra": 1}), "unknown field"),
    ] {
        let (status, answer) = funnel(body.clone(), key.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    let (status, _) =
        funnel(json!({"site_id": "other.example", "date_range": "7d", "funnel": "Checkout"}), key.clone()).await;
    assert_eq!(status, 404, "no site of the key's");

    // The Sites API: any key lists; admin keys save (or replace) and remove.
    let url = format!("{base}/api/v1/sites/funnels");
    let listed: Value =
        client.get(format!("{url}?site_id={SITE}")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!({"funnels": [{"name": "Checkout", "steps": ["Visit /product/*", "Signup", "Purchase"]}]}));
    let short =
        json!({"site_id": SITE, "name": "Short", "steps": ["Visit /product/*", "Signup"], "strict_order": true});
    let put = |key: String, body: Value| client.put(url.clone()).bearer_auth(key).json(&body).send();
    assert_eq!(put(key.clone(), short.clone()).await.unwrap().status(), 403, "a stats key saves nothing");
    let saved = put(admin.clone(), short).await.unwrap();
    assert_eq!(saved.status(), 200);
    let bad = put(admin.clone(), json!({"site_id": SITE, "name": "Bad", "steps": ["Signup", "Signup"]})).await.unwrap();
    assert_eq!(bad.status(), 400);
    // The server sees the change at once: the new funnel answers.
    let (status, answer) = funnel(json!({"site_id": SITE, "date_range": range, "funnel": "Short"}), key.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["steps"][1]["visitors"].as_u64(), answer["strict_order"].as_bool()), (Some(2), Some(true)));
    let removed = client.delete(format!("{url}?site_id={SITE}&name=Short")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(removed.status(), 200);
    let (status, _) = funnel(json!({"site_id": SITE, "date_range": range, "funnel": "Short"}), key.clone()).await;
    assert_eq!(status, 400, "removed");
}
