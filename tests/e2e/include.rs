//! `include` and pagination as Plausible's clients use them: `total_rows` counts every row
//! before the page, `time_labels` lists every period of the range, and what Tally cannot include
//! yet is a 400 rather than silently ignored.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, pageview, query_body, settle};
use serde_json::{Value, json};

const SITE: &str = "include.example";

#[tokio::test]
async fn total_rows_time_labels_and_refusals() {
    let server = TestServer::start("include", &[SITE]);
    for i in 0..5u32 {
        for _ in 0..=i {
            let answer =
                server.post_event(pageview(SITE, &format!("/p{i}")).to_string(), &Visitor::new(i).headers()).await;
            assert_eq!(answer.status, 202);
        }
    }
    let total = query_body(SITE, &["pageviews"], json!({}));
    let counted = settle(POLL_DEADLINE, || server.totals(&total), |t| t.as_ref().is_ok_and(|t| t == &[15.0])).await;
    assert!(counted.is_ok(), "{counted:?}");

    let paged = query_body(
        SITE,
        &["pageviews"],
        json!({"dimensions": ["event:page"], "pagination": {"limit": 2, "offset": 1}, "include": {"total_rows": true}}),
    );
    let answer = server.query(&paged).await.unwrap();
    let pages: Vec<&str> =
        answer["results"].as_array().unwrap().iter().map(|r| r["dimensions"][0].as_str().unwrap()).collect();
    assert_eq!(pages, ["/p3", "/p2"], "by pageviews descending, second and third: {answer}");
    assert_eq!(answer["meta"]["total_rows"], 5, "{answer}");

    // The same page as CSV, by Accept header or ?format=csv.
    let csv = server
        .client()
        .post(server.url("/api/v2/query?format=csv"))
        .bearer_auth(server.key(SITE))
        .json(&paged)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(csv.text().await.unwrap(), "event:page,pageviews\n/p3,4\n/p2,3\n");
    let by_accept = server
        .client()
        .post(server.url("/api/v2/query"))
        .header("Accept", "text/csv")
        .bearer_auth(server.key(SITE))
        .json(&paged)
        .send()
        .await
        .unwrap();
    assert!(by_accept.text().await.unwrap().starts_with("event:page,pageviews\n"));

    let ask = |range: Value, dimension: &str| {
        query_body(
            SITE,
            &["visitors"],
            json!({"date_range": range, "dimensions": [dimension], "include": {"time_labels": true}}),
        )
    };
    let hours = server.query(&ask(json!("day"), "time:hour")).await.unwrap();
    assert_eq!(hours["meta"]["time_labels"].as_array().map(Vec::len), Some(24), "{hours}");
    let weeks = server.query(&ask(json!(["2026-01-01", "2026-01-31"]), "time:week")).await.unwrap();
    assert_eq!(
        weeks["meta"]["time_labels"],
        json!(["2026-01-01", "2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"])
    );
    let months = server.query(&ask(json!(["2025-12-15", "2026-02-10"]), "time:month")).await.unwrap();
    assert_eq!(months["meta"]["time_labels"], json!(["2025-12-01", "2026-01-01", "2026-02-01"]));

    // Comparisons: today against yesterday (nothing), by page; a year before, by day.
    let compared = server
        .query(&query_body(
            SITE,
            &["visitors", "pageviews", "bounce_rate"],
            json!({"dimensions": ["event:page"], "include": {"comparisons": {"mode": "previous_period"}}}),
        ))
        .await
        .unwrap();
    let first = &compared["results"][0];
    assert_eq!(first["dimensions"], json!(["/p0"]), "ties on visitors go by page: {compared}");
    assert_eq!(first["comparison"], json!({"dimensions": ["/p0"], "metrics": [0, 0, 0], "change": [100, 100, null]}));
    let by_day = server
        .query(&query_body(
            SITE,
            &["pageviews"],
            json!({"dimensions": ["time:day"], "include": {"comparisons": {"mode": "year_over_year"}}}),
        ))
        .await
        .unwrap();
    let today: String = by_day["results"][0]["dimensions"][0].as_str().unwrap().to_owned();
    let year_before: jiff::civil::Date = today.parse::<jiff::civil::Date>().unwrap() - jiff::Span::new().years(1);
    assert_eq!(by_day["results"][0]["comparison"]["dimensions"], json!([year_before.to_string()]), "{by_day}");
    assert_eq!(by_day["results"][0]["comparison"]["metrics"], json!([0]));

    for (name, include, says) in [
        ("comparison mode", json!({"comparisons": {"mode": "sideways"}}), "unknown comparison mode"),
        ("unknown", json!({"everything": true}), "unknown include"),
        ("labels without time", json!({"time_labels": true}), "needs a time dimension"),
    ] {
        let (status, text) =
            server.query_raw(server.key(SITE), &query_body(SITE, &["visitors"], json!({"include": include}))).await;
        assert_eq!(status, 400, "{name}: {text}");
        assert!(text.contains(says), "{name}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["code"], "invalid_request", "a stable code beside the message: {text}");
    }
}
