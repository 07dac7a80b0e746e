//! Goals: saved after the traffic, they count over all of it; `event:goal` as a dimension and a
//! filter, `conversion_rate` against every visitor, managed from the CLI and (admin keys) the
//! Sites API.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, pageview, query_body, settle, tally_ok};
use serde_json::json;

const SITE: &str = "goals.example";

#[tokio::test]
async fn goals_saved_later_count_all_history() {
    let server = TestServer::start("goals", &[SITE]);
    // Six visitors: three read /blog/a, one /blog/b/c, two /pricing; two of them sign up.
    let pages = ["/blog/a", "/blog/a", "/blog/a", "/blog/b/c", "/pricing", "/pricing"];
    for (n, page) in pages.iter().enumerate() {
        let visitor = Visitor::new(n as u32);
        assert_eq!(server.post_event(pageview(SITE, page).to_string(), &visitor.headers()).await.status, 202);
        if n < 2 {
            let signup = json!({"name": "Signup", "url": format!("https://{SITE}/pricing"), "domain": SITE});
            assert_eq!(server.post_event(signup.to_string(), &visitor.headers()).await.status, 202);
        }
    }
    let events = query_body(SITE, &["events"], json!({}));
    assert!(settle(POLL_DEADLINE, || server.totals(&events), |t| t.as_ref().is_ok_and(|t| t == &[8.0])).await.is_ok());

    let data = server.data_dir().to_str().unwrap().to_owned();
    tally_ok(&["goal", "add", "--site", SITE, "--event", "Signup", "--data-dir", &data]);
    tally_ok(&["goal", "add", "--site", SITE, "--page", "/blog/*", "--data-dir", &data]);
    let listed = tally_ok(&["goal", "list", "--site", SITE, "--data-dir", &data]);
    assert_eq!(listed, "Signup\tevent\tSignup\nVisit /blog/*\tpage\t/blog/*\n");

    let by_goal = query_body(SITE, &["visitors", "events", "conversion_rate"], json!({"dimensions": ["event:goal"]}));
    let answer = settle(
        POLL_DEADLINE,
        || server.query(&by_goal),
        |a| a.as_ref().is_ok_and(|a| a["results"].as_array().is_some_and(|r| r.len() == 2)),
    )
    .await;
    let answer = answer.unwrap_or_else(|last| last).unwrap();
    assert_eq!(
        answer["results"],
        json!([
            {"dimensions": ["Visit /blog/*"], "metrics": [3, 3, 50.0]},
            {"dimensions": ["Signup"], "metrics": [2, 2, 33.33]},
        ]),
        "/blog/b/c is two segments deep: not /blog/*"
    );
    // By goal and page: the sign-ups happened on /pricing, where four visitors had events.
    let by_page = query_body(
        SITE,
        &["visitors", "conversion_rate", "group_conversion_rate"],
        json!({"dimensions": ["event:goal", "event:page"], "filters": [["is", "event:goal", ["Signup"]]]}),
    );
    let answer = server.query(&by_page).await.unwrap();
    assert_eq!(
        answer["results"],
        json!([{"dimensions": ["Signup", "/pricing"], "metrics": [2, 33.33, 50.0]}]),
        "{answer}"
    );
    let signed_up = query_body(SITE, &["visitors"], json!({"filters": [["is", "event:goal", ["Signup"]]]}));
    assert_eq!(server.totals(&signed_up).await.unwrap(), vec![2.0]);
    let others = query_body(SITE, &["visitors"], json!({"filters": [["is_not", "event:goal", ["Signup"]]]}));
    assert_eq!(server.totals(&others).await.unwrap(), vec![6.0], "every visitor has events that are not sign-ups");
    let (status, text) = server.query_raw(server.key(SITE), &query_body(SITE, &["conversion_rate"], json!({}))).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("event:goal"), "{text}");

    // The Sites API, for admin keys: find-or-create, then list; a stats key gets 403.
    let admin = tally_ok(&["key", "create", "--site", SITE, "--scope", "admin", "--data-dir", &data]).trim().to_owned();
    // A running server sees a new key within a second (its registry reload).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let goals_url = server.url("/api/v1/sites/goals");
    let put = |key: String| {
        server
            .client()
            .put(goals_url.clone())
            .bearer_auth(key)
            .json(&json!({"site_id": SITE, "goal_type": "page", "page_path": "/pricing"}))
            .send()
    };
    let created = put(admin.clone()).await.unwrap();
    assert_eq!(created.status(), 200);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(created["display_name"], "Visit /pricing");
    assert_eq!(put(server.key(SITE).to_owned()).await.unwrap().status(), 403, "a stats key may not");
    let (status, listed) = server.get(&format!("/api/v1/sites/goals?site_id={SITE}"), Some(&admin)).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&listed).unwrap()["goals"].as_array().map(Vec::len), Some(3));

    tally_ok(&["goal", "remove", "--site", SITE, "Visit /blog/*", "--data-dir", &data]);
    let after = settle(
        POLL_DEADLINE,
        || server.query(&by_goal),
        // Signup and Visit /pricing remain (tied, by name).
        |a| {
            a.as_ref().is_ok_and(|a| {
                a["results"].as_array().is_some_and(|r| r.len() == 2 && r[1]["dimensions"][0] == "Visit /pricing")
            })
        },
    )
    .await;
    assert!(after.is_ok(), "{after:?}");

    // Removed through the Sites API by its id (its name, URL-encoded), for admin keys only.
    let remove = |key: String| {
        server
            .client()
            .delete(server.url(&format!("/api/v1/sites/goals/Visit%20%2Fpricing?site_id={SITE}")))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(remove(server.key(SITE).to_owned()).await.unwrap().status(), 403, "a stats key may not");
    let removed = remove(admin.clone()).await.unwrap();
    assert_eq!(removed.status(), 200);
    assert_eq!(removed.json::<serde_json::Value>().await.unwrap(), json!({"deleted": true}));
    assert_eq!(remove(admin.clone()).await.unwrap().status(), 400, "no goal of that name any more");
    let listed = tally_ok(&["goal", "list", "--site", SITE, "--data-dir", &data]);
    assert_eq!(listed, "Signup\tevent\tSignup\n");
}

#[tokio::test]
async fn saved_segments_stand_for_their_filters() {
    const SEGMENTED: &str = "segments.example";
    let server = TestServer::start("segments", &[SEGMENTED]);
    for n in 0..5u32 {
        let visitor = Visitor::new(n).in_country(if n < 3 { "DE" } else { "FR" });
        assert_eq!(server.post_event(pageview(SEGMENTED, "/").to_string(), &visitor.headers()).await.status, 202);
    }
    let all = query_body(SEGMENTED, &["visitors"], json!({}));
    assert!(settle(POLL_DEADLINE, || server.totals(&all), |t| t.as_ref().is_ok_and(|t| t == &[5.0])).await.is_ok());
    let data = server.data_dir().to_str().unwrap().to_owned();
    let filters = r#"[["is","visit:country",["DE"]]]"#;
    let id = tally_ok(&[
        "segment",
        "add",
        "--site",
        SEGMENTED,
        "--name",
        "Germans",
        "--filters",
        filters,
        "--data-dir",
        &data,
    ]);
    assert_eq!(id.trim(), "1");
    let bad = crate::harness::run_cli(&[
        "segment",
        "add",
        "--site",
        SEGMENTED,
        "--name",
        "x",
        "--filters",
        "[[\"like\"]]",
        "--data-dir",
        &data,
    ]);
    assert!(!bad.status.success(), "filters are checked when saved");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let germans = query_body(SEGMENTED, &["visitors"], json!({"filters": [["is", "segment", [1]]]}));
    let answer = server.query(&germans).await.unwrap();
    assert_eq!(answer["results"][0]["metrics"], json!([3]), "{answer}");
    assert_eq!(answer["query"]["filters"], json!([["is", "segment", [1]]]), "echoed as asked");
    let others = query_body(SEGMENTED, &["visitors"], json!({"filters": [["is_not", "segment", [1]]]}));
    assert_eq!(server.totals(&others).await.unwrap(), vec![2.0]);
    let (status, text) = server
        .query_raw(
            server.key(SEGMENTED),
            &query_body(SEGMENTED, &["visitors"], json!({"filters": [["is", "segment", [9]]]})),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        tally_ok(&["segment", "list", "--site", SEGMENTED, "--data-dir", &data]),
        format!("1\tGermans\t{filters}\n")
    );

    // Through the API: any key of the site lists them; admin keys save and remove them.
    let (status, listed) =
        server.get(&format!("/api/v1/sites/segments?site_id={SEGMENTED}"), Some(server.key(SEGMENTED))).await;
    assert_eq!(status, 200, "{listed}");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["segments"], json!([{"id": 1, "name": "Germans", "filters": [["is", "visit:country", ["DE"]]]}]));
    let admin =
        tally_ok(&["key", "create", "--site", SEGMENTED, "--scope", "admin", "--data-dir", &data]).trim().to_owned();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let url = server.url("/api/v1/sites/segments");
    let put = |key: &str, body: serde_json::Value| server.client().put(url.clone()).bearer_auth(key).json(&body).send();
    let french = json!({"site_id": SEGMENTED, "name": "French", "filters": [["is", "visit:country", ["FR"]]]});
    assert_eq!(put(server.key(SEGMENTED), french.clone()).await.unwrap().status(), 403, "a stats key may not save");
    let saved: serde_json::Value = put(&admin, french).await.unwrap().json().await.unwrap();
    assert_eq!(saved["id"], 2, "{saved}");
    let bad = json!({"site_id": SEGMENTED, "name": "Bad", "filters": [["like", "event:page", ["/"]]]});
    assert_eq!(put(&admin, bad).await.unwrap().status(), 400, "filters are checked");
    let french_only = query_body(SEGMENTED, &["visitors"], json!({"filters": [["is", "segment", [2]]]}));
    assert_eq!(server.totals(&french_only).await.unwrap(), vec![2.0], "saved through the API, used at once");
    let removed =
        server.client().delete(format!("{url}?site_id={SEGMENTED}&id=2")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(removed.status(), 200);
    let (status, _) = server.query_raw(server.key(SEGMENTED), &french_only).await;
    assert_eq!(status, 400, "a removed segment is gone");
}

/// Scroll goals: engagement events (as Plausible's tracker sends them) on a matching page with
/// at least the threshold's depth convert; saved from the CLI or the Sites API; a negated one,
/// a threshold over 100 and an event goal named `engagement` are refused.
#[tokio::test]
async fn scroll_goals_count_the_engagement_events_that_reach_their_depth() {
    use crate::harness::{ServerProcess, TempDir, http_client, key_create, site_add};
    const SCROLL_SITE: &str = "scroll.example";
    let dir = TempDir::new("scroll-goals");
    let data = dir.path().to_str().unwrap().to_owned();
    site_add(dir.path(), SCROLL_SITE, None);
    // 2026-11-10T10:00:00Z, then a minute apart.
    let at = |minute: i64| 1_794_304_800_000 + minute * 60_000;
    let events = [
        // a read /blog/x to 80 %.
        ("a", "pageview", "/blog/x", None, at(0)),
        ("a", "engagement", "/blog/x", Some(80), at(1)),
        // b read /blog/y to 30 %, then to 60 %: one conversion, the second.
        ("b", "pageview", "/blog/y", None, at(0)),
        ("b", "engagement", "/blog/y", Some(30), at(1)),
        ("b", "engagement", "/blog/y", Some(60), at(2)),
        // c read /about to 90 %: not a blog page.
        ("c", "pageview", "/about", None, at(0)),
        ("c", "engagement", "/about", Some(90), at(1)),
    ];
    let lines: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(n, (visitor, name, page, depth, ms))| {
            let mut line = json!({
                "n": name, "u": format!("https://{SCROLL_SITE}{page}"), "d": SCROLL_SITE, "timestamp": ms,
                "id": format!("s-{n}"), "visitor": visitor,
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            });
            if let Some(depth) = depth {
                line["sd"] = json!(depth);
                line["e"] = json!(5_000);
            }
            line.to_string()
        })
        .collect();
    let file = dir.path().join("traffic.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    tally_ok(&["import", file.to_str().unwrap(), "--data-dir", &data, "--no-progress"]);
    tally_ok(&["goal", "add", "--site", SCROLL_SITE, "--page", "/blog/*", "--scroll", "50", "--data-dir", &data]);
    let listed = tally_ok(&["goal", "list", "--site", SCROLL_SITE, "--data-dir", &data]);
    assert_eq!(listed, "Scroll 50% on /blog/*\tscroll\t/blog/*\t50\n");
    let over = crate::harness::run_cli(&[
        "goal",
        "add",
        "--site",
        SCROLL_SITE,
        "--page",
        "/",
        "--scroll",
        "101",
        "--data-dir",
        &data,
    ]);
    assert!(!over.status.success() && over.stderr.contains("0 to 100"), "{over:?}");
    let reserved =
        crate::harness::run_cli(&["goal", "add", "--site", SCROLL_SITE, "--event", "engagement", "--data-dir", &data]);
    assert!(!reserved.status.success() && reserved.stderr.contains("engagement"), "{reserved:?}");

    let key = key_create(dir.path(), SCROLL_SITE);
    let admin =
        tally_ok(&["key", "create", "--site", SCROLL_SITE, "--scope", "admin", "--data-dir", &data]).trim().to_owned();
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();
    let query = |body: serde_json::Value| {
        client.post(format!("{}/api/v2/query", server.base())).bearer_auth(&key).json(&body).send()
    };
    let range = json!(["2026-11-10", "2026-11-10"]);
    let by_goal = json!({"site_id": SCROLL_SITE, "metrics": ["visitors", "events", "conversion_rate"],
        "date_range": range, "dimensions": ["event:goal"]});
    let answer: serde_json::Value = query(by_goal).await.unwrap().json().await.unwrap();
    assert_eq!(
        answer["results"],
        json!([{"dimensions": ["Scroll 50% on /blog/*"], "metrics": [2, 2, 66.67]}]),
        "a and b converted, b once (its 30 % did not); c's page is no blog page: {answer}"
    );
    let filtered = json!({"site_id": SCROLL_SITE, "metrics": ["visitors", "visits", "pageviews"], "date_range": range,
        "filters": [["is", "event:goal", ["Scroll 50% on /blog/*"]]]});
    let answer: serde_json::Value = query(filtered).await.unwrap().json().await.unwrap();
    assert_eq!(answer["results"][0]["metrics"], json!([2, 2, 0]), "{answer}");
    let negated = json!({"site_id": SCROLL_SITE, "metrics": ["visitors"], "date_range": range,
        "filters": [["is_not", "event:goal", ["Scroll 50% on /blog/*"]]]});
    let response = query(negated).await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("cannot be negated"));

    // The Sites API saves and lists them.
    let goals_url = format!("{}/api/v1/sites/goals", server.base());
    let saved = client
        .put(&goals_url)
        .bearer_auth(&admin)
        .json(&json!({"site_id": SCROLL_SITE, "goal_type": "scroll", "page_path": "/about", "scroll_threshold": 75}))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    let saved: serde_json::Value = saved.json().await.unwrap();
    assert_eq!(saved["id"], "Scroll 75% on /about");
    assert_eq!(saved["scroll_threshold"], 75);
    let no_threshold = client
        .put(&goals_url)
        .bearer_auth(&admin)
        .json(&json!({"site_id": SCROLL_SITE, "goal_type": "scroll", "page_path": "/about"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_threshold.status(), 400);
    let answer: serde_json::Value = query(json!({"site_id": SCROLL_SITE, "metrics": ["visitors"], "date_range": range,
        "filters": [["is", "event:goal", ["Scroll 75% on /about"]]]}))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["results"][0]["metrics"], json!([1]), "c's 90 % on /about: {answer}");
}
