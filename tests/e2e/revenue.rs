//! Revenue through the public ingest endpoint: summed exactly per currency (never converted),
//! the same from the rollups and the segments, with bad amounts dropped with a reason.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, eventually, query_body};
use serde_json::{Value, json};

const SITE: &str = "shop.test";

fn purchase(path: &str, amount: Value, currency: &str) -> Value {
    json!({"n": "Purchase", "u": format!("https://{SITE}{path}"), "d": SITE,
        "$": {"amount": amount, "currency": currency}})
}

/// Each row's (first dimension, total_revenue, average_revenue), sorted.
fn revenue_rows(answer: &Value) -> Vec<(String, Value, Value)> {
    let mut out: Vec<(String, Value, Value)> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let label = r["dimensions"].get(0).and_then(Value::as_str).unwrap_or("").to_owned();
            (label, r["metrics"][0].clone(), r["metrics"][1].clone())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn revenue_is_exact_per_currency_in_both_tiers() {
    let server = TestServer::start("revenue", &[SITE]);
    let (a, b) = (Visitor::new(1), Visitor::new(2));
    // Visitor a: 19.99 three times on /cart as a float sum would send it, and 10 EUR on
    // /checkout; visitor b: 5 USD on /checkout and a page view without revenue.
    let sends = [
        (&a, json!([purchase("/cart", json!(59.97000000000001), "EUR"), purchase("/checkout", json!("10"), "eur")])),
        (
            &b,
            json!([purchase("/checkout", json!("5.00"), "USD"), {"n": "pageview", "u": format!("https://{SITE}/"), "d": SITE}]),
        ),
    ];
    for (visitor, body) in sends {
        let answer = server.post_event(body.to_string(), &visitor.headers()).await;
        assert_eq!(answer.status, 202);
    }
    // Bad amounts are dropped with a reason, not counted as zero.
    for amount in [json!("1e3"), json!("1000000000000"), json!("twelve")] {
        let answer = server.post_event(purchase("/cart", amount, "EUR").to_string(), &a.headers()).await;
        assert_eq!(answer.dropped, vec!["invalid_revenue".to_owned()]);
    }
    let metrics = ["total_revenue", "average_revenue"];
    let total = query_body(SITE, &metrics, json!({}));
    let answer = eventually(
        "revenue visible",
        POLL_DEADLINE,
        || server.query(&total),
        |a| a.as_ref().is_ok_and(|a| a["results"][0]["metrics"][0]["by_currency"]["USD"] == json!(5.0)),
    )
    .await
    .unwrap();
    assert_eq!(answer["meta"]["tier"], "rollups");
    let both = json!({"value": null, "currency": null, "by_currency": {"EUR": 69.97, "USD": 5.0}});
    assert_eq!(answer["results"][0]["metrics"][0], both, "two currencies are never added together");
    // Averages are per event that carried revenue: (59.97 + 10) / 2 and 5 / 1.
    let average = json!({"value": null, "currency": null, "by_currency": {"EUR": 34.985, "USD": 5.0}});
    assert_eq!(answer["results"][0]["metrics"][1], average);

    // By page from the rollups, and the same numbers from the segments (a filter that keeps
    // every event sends the query there).
    let by_page = query_body(SITE, &metrics, json!({"dimensions": ["event:page"]}));
    let rollups = server.query(&by_page).await.unwrap();
    assert_eq!(rollups["meta"]["tier"], "rollups");
    let mut filtered = by_page.clone();
    filtered["filters"] = json!([["is_not", "visit:country", ["ZZ"]]]);
    let segments = server.query(&filtered).await.unwrap();
    assert_eq!(segments["meta"]["tier"], "segments");
    let eur = |v: f64| json!({"value": v, "currency": "EUR", "by_currency": {"EUR": v}});
    let want = vec![
        ("/".to_owned(), Value::Null, Value::Null),
        ("/cart".to_owned(), eur(59.97), eur(59.97)),
        (
            "/checkout".to_owned(),
            json!({"value": null, "currency": null, "by_currency": {"EUR": 10.0, "USD": 5.0}}),
            json!({"value": null, "currency": null, "by_currency": {"EUR": 10.0, "USD": 5.0}}),
        ),
    ];
    assert_eq!(revenue_rows(&rollups), want);
    assert_eq!(revenue_rows(&segments), want);

    // Revenue belongs to events: by exit page (visit rows only) it is a 400 that says why.
    let exit = query_body(SITE, &["total_revenue"], json!({"dimensions": ["visit:exit_page"]}));
    let (status, text) = server.query_raw(server.key(SITE), &exit).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("total_revenue"), "{text}");
}

#[tokio::test]
async fn revenue_goals_report_their_currency_and_other_goals_none() {
    let server = TestServer::start("revenue-goals", &[SITE]);
    let sends = json!([
        purchase("/checkout", json!("10.50"), "EUR"),
        purchase("/checkout", json!("4"), "EUR"),
        purchase("/checkout", json!("7"), "USD"),
        {"n": "Signup", "u": format!("https://{SITE}/"), "d": SITE},
    ]);
    assert_eq!(server.post_event(sends.to_string(), &Visitor::new(1).headers()).await.status, 202);
    let data = server.data_dir().to_str().unwrap().to_owned();
    let add = |args: &[&str]| {
        let mut all = vec!["goal", "add", "--site", SITE, "--data-dir", &data];
        all.extend_from_slice(args);
        crate::harness::tally_ok(&all)
    };
    add(&["--event", "Purchase", "--currency", "EUR"]);
    add(&["--event", "Signup"]);
    let listed = crate::harness::tally_ok(&["goal", "list", "--site", SITE, "--data-dir", &data]);
    assert_eq!(listed, "Purchase\tevent\tPurchase\tEUR\nSignup\tevent\tSignup\n");
    let bad = crate::harness::run_cli(&[
        "goal",
        "add",
        "--site",
        SITE,
        "--event",
        "X",
        "--currency",
        "euro",
        "--data-dir",
        &data,
    ]);
    assert!(!bad.status.success() && bad.stderr.contains("ISO 4217"), "{bad:?}");

    let by_goal =
        query_body(SITE, &["total_revenue", "average_revenue", "events"], json!({"dimensions": ["event:goal"]}));
    let answer = eventually(
        "both goals answered",
        POLL_DEADLINE,
        || server.query(&by_goal),
        |a| a.as_ref().is_ok_and(|a| a["results"].as_array().is_some_and(|r| r.len() == 2)),
    )
    .await
    .unwrap();
    // Purchase: its EUR revenue only (the USD purchase is left out: Tally converts none).
    assert_eq!(
        revenue_rows(&answer),
        vec![
            (
                "Purchase".to_owned(),
                json!({"value": 14.5, "currency": "EUR", "by_currency": {"EUR": 14.5}}),
                json!({"value": 7.25, "currency": "EUR", "by_currency": {"EUR": 7.25}})
            ),
            ("Signup".to_owned(), Value::Null, Value::Null),
        ]
    );
}
