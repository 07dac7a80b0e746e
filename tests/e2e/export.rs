//! `POST /api/v2/export`: a site's reports over a range as a zip of CSV files, each equal to the
//! Stats API's answer to the same question.

use crate::harness::{TestServer, Visitor, pageview};
use serde_json::{Value, json};
use std::io::Read;

const SITE: &str = "export.example";

/// Waits until the day's page views are `pageviews`.
async fn settle(server: &TestServer, pageviews: f64) {
    let body = json!({"site_id": SITE, "metrics": ["pageviews"], "date_range": "day"});
    for _ in 0..100 {
        if server.totals(&body).await.is_ok_and(|t| t == [pageviews]) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the events were not counted");
}

/// The files of a zip, by name.
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        files.insert(file.name().unwrap().to_string(), text);
    }
    files
}

#[tokio::test]
async fn a_zip_of_every_report_equal_to_the_api() {
    let server = TestServer::start("export", &[SITE]);
    for (n, page) in ["/", "/a,b", "/pricing", "/", "/docs"].iter().enumerate() {
        let visitor = Visitor::new(n as u32 % 3);
        assert_eq!(server.post_event(pageview(SITE, page).to_string(), &visitor.headers()).await.status, 202);
    }
    settle(&server, 5.0).await;

    let response = server
        .client()
        .post(server.url("/api/v2/export"))
        .bearer_auth(server.key(SITE))
        .json(&json!({"site_id": SITE, "date_range": "day"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let files = unzip(&response.bytes().await.unwrap());
    for name in ["visitors.csv", "sources.csv", "pages.csv", "entry_pages.csv", "exit_pages.csv", "countries.csv"] {
        assert!(files.contains_key(name), "{name} missing from {:?}", files.keys());
    }
    // pages.csv is the API's page breakdown, every row, as CSV (a comma in a path quoted).
    let pages = json!({"site_id": SITE, "metrics": ["visitors", "pageviews", "bounce_rate"], "date_range": "day",
                       "dimensions": ["event:page"]});
    let answer: Value = server.query(&pages).await.unwrap();
    let mut expected = String::from("page,visitors,pageviews,bounce_rate\n");
    for row in answer["results"].as_array().unwrap() {
        let page = row["dimensions"][0].as_str().unwrap();
        let page = if page.contains(',') { format!("\"{page}\"") } else { page.to_owned() };
        let m = &row["metrics"];
        expected += &format!("{page},{},{},{}\n", m[0], m[1], m[2]);
    }
    assert_eq!(files["pages.csv"], expected);
    let visitors_csv = &files["visitors.csv"];
    assert!(visitors_csv.starts_with("date,visitors,pageviews,visits,views_per_visit,bounce_rate,visit_duration\n"));
    assert!(visitors_csv.lines().nth(1).is_some_and(|l| l.split(',').nth(2) == Some("5")), "{visitors_csv}");

    // Bad input: a clear 400.
    let bad = server
        .client()
        .post(server.url("/api/v2/export"))
        .bearer_auth(server.key(SITE))
        .json(&json!({"site_id": SITE, "date_range": "9x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// With filters, every report is answered under them; what the Stats API refuses under them
/// (views per visit filtered by a page, exit pages filtered at all) is left out and listed.
#[tokio::test]
async fn a_filtered_zip_answers_every_report_under_the_filters() {
    let server = TestServer::start("export-filtered", &[SITE]);
    for (n, page) in ["/", "/pricing", "/", "/docs", "/pricing"].iter().enumerate() {
        let visitor = Visitor::new(n as u32 % 3);
        assert_eq!(server.post_event(pageview(SITE, page).to_string(), &visitor.headers()).await.status, 202);
    }
    settle(&server, 5.0).await;
    let filters = json!([["is", "event:page", ["/pricing"]]]);
    let response = server
        .client()
        .post(server.url("/api/v2/export"))
        .bearer_auth(server.key(SITE))
        .json(&json!({"site_id": SITE, "date_range": "day", "filters": filters}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let files = unzip(&response.bytes().await.unwrap());
    // Every report under the filter equals the API's answer under it.
    let pages = json!({"site_id": SITE, "metrics": ["visitors", "pageviews", "bounce_rate"], "date_range": "day",
                       "dimensions": ["event:page"], "filters": filters});
    let answer: Value = server.query(&pages).await.unwrap();
    let rows = answer["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{answer}");
    let m = &rows[0]["metrics"];
    assert_eq!(
        files["pages.csv"],
        format!("page,visitors,pageviews,bounce_rate\n/pricing,{},{},{}\n", m[0], m[1], m[2])
    );
    // Views per visit is refused under a page filter: visitors.csv has the other columns.
    assert!(
        files["visitors.csv"].starts_with("date,visitors,pageviews,visits,bounce_rate,visit_duration\n"),
        "{}",
        files["visitors.csv"]
    );
    assert!(!files.contains_key("exit_pages.csv"), "exit pages are answered unfiltered only");
    let left_out = &files["not_exported.csv"];
    assert!(left_out.starts_with("file,column,why\n"), "{left_out}");
    assert!(left_out.contains("visitors.csv,views_per_visit,"), "{left_out}");
    assert!(left_out.contains("exit_pages.csv,,"), "{left_out}");
    // A filter that is not one: a clear 400.
    let bad = server
        .client()
        .post(server.url("/api/v2/export"))
        .bearer_auth(server.key(SITE))
        .json(&json!({"site_id": SITE, "date_range": "day", "filters": [["is", "event:nope", ["x"]]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
