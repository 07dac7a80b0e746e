//! Conformance with Plausible's Stats API v2: the request examples of its reference, written down
//! as data in our own words and values (`vectors/stats_api_v2_examples.json`), run against
//! `tally serve` over a month of imported traffic. Every answer must have the documented shape
//! (a row per group with one value per dimension and metric, the includes' meta, the normalised
//! query), or be a clear 400 where the example's `tally` note says Tally refuses it; and every
//! answer, with a few error answers and the other routes', must validate against the OpenAPI
//! document the server serves (checked, with the document itself, by `openapi_check.py` in the
//! Python stand-ins' environment).

use crate::harness::{ServerProcess, TempDir, http_client, key_create, site_add, tally_ok};
use serde_json::{Value, json};
use std::path::PathBuf;

const SITE: &str = "conformance.test";
/// 2026-11-01T00:00:00+01:00 (Berlin).
const NOV_1_MS: i64 = 1_793_487_600_000;
const HOUR_MS: i64 = 3_600_000;

/// A month of traffic: pages, sources (with a newsletter campaign), countries, signups with a
/// plan and purchases with revenue and a payment method.
fn traffic() -> String {
    const PAGES: [&str; 6] = ["/", "/pricing", "/blog/launch", "/blog/rust", "/docs/start", "/checkout/done"];
    const REFERRERS: [&str; 4] = ["https://www.google.com/", "", "https://news.ycombinator.com/", ""];
    const COUNTRIES: [&str; 3] = ["DE", "US", "IN"];
    const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let mut out = String::new();
    let mut seed: u64 = 0x5eed_c0de;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    for person in 0..120u64 {
        let day = next(30) as i64;
        let mut at = NOV_1_MS + day * 24 * HOUR_MS + next(20 * HOUR_MS as u64) as i64;
        let source = next(4) as usize;
        let country = COUNTRIES[next(3) as usize];
        let mut line = |name: &str, page: &str, at: i64, extra: Value| {
            let mut event = json!({
                "name": name, "domain": SITE, "timestamp": at, "user_agent": UA,
                "visitor": format!("p{person}"), "country": country,
                "url": if source == 3 {
                    format!("https://{SITE}{page}?utm_source=newsletter&utm_medium=email&utm_campaign=winter")
                } else {
                    format!("https://{SITE}{page}")
                },
                "referrer": REFERRERS[source],
            });
            if let (Value::Object(event), Value::Object(extra)) = (&mut event, extra) {
                event.extend(extra);
            }
            out.push_str(&event.to_string());
            out.push('\n');
        };
        for _ in 0..1 + next(4) {
            line("pageview", PAGES[next(6) as usize], at, json!({}));
            at += 30_000 + next(300_000) as i64;
        }
        match next(5) {
            0 => line("Signup", "/pricing", at, json!({"props": {"plan": if next(2) == 0 { "pro" } else { "free" }}})),
            1 => line(
                "Purchase",
                "/checkout/done",
                at,
                json!({"props": {"method": if next(2) == 0 { "card" } else { "paypal" }},
                       "revenue": {"amount": format!("{}.99", 5 + next(50)), "currency": "EUR"}}),
            ),
            _ => {}
        }
    }
    out
}

/// The examples file.
fn examples() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/vectors/stats_api_v2_examples.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Value = serde_json::from_str(&text).unwrap();
    file["examples"].as_array().unwrap().clone()
}

/// The Python of the stand-ins' environment (`scripts/test` installs it).
fn python() -> PathBuf {
    let venv = std::env::var_os("TALLY_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tally-moto"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test once (it installs the Python checkers)",
        python.display()
    );
    python
}

/// Checks the shape of a 200 answer to `request` as Plausible documents it; the failures, if any.
fn shape_errors(request: &Value, answer: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            errors.push(what);
        }
    };
    let metrics = request["metrics"].as_array().map_or(0, Vec::len);
    let dimensions = request["dimensions"].as_array().map_or(0, Vec::len);
    let include = &request["include"];
    let Some(rows) = answer["results"].as_array() else {
        return vec!["no results array".into()];
    };
    for row in rows {
        expect(row["metrics"].as_array().is_some_and(|m| m.len() == metrics), format!("row metrics: {row}"));
        expect(
            row["dimensions"].as_array().is_some_and(|d| d.len() == dimensions && d.iter().all(Value::is_string)),
            format!("row dimensions: {row}"),
        );
        for value in row["metrics"].as_array().into_iter().flatten() {
            expect(
                value.is_number() || value.is_null() || value.get("by_currency").is_some(),
                format!("metric value {value}"),
            );
        }
        expect(
            row.get("comparison").is_some() == include.get("comparisons").is_some(),
            format!("comparison present iff asked: {row}"),
        );
    }
    if dimensions == 0 {
        expect(rows.len() == 1, format!("an aggregate is one row, got {}", rows.len()));
    }
    if let Some(limit) = request["pagination"]["limit"].as_u64() {
        expect(rows.len() as u64 <= limit, format!("{} rows over the limit {limit}", rows.len()));
    }
    let meta = &answer["meta"];
    expect(meta["time_labels"].is_array() == (include["time_labels"] == true), format!("meta.time_labels: {meta}"));
    expect(meta["total_rows"].is_u64() == (include["total_rows"] == true), format!("meta.total_rows: {meta}"));
    let echo = &answer["query"];
    expect(echo["site_id"] == SITE, format!("query.site_id: {echo}"));
    expect(echo["metrics"] == request["metrics"], format!("query.metrics: {echo}"));
    expect(echo["dimensions"] == *request.get("dimensions").unwrap_or(&json!([])), format!("query.dimensions: {echo}"));
    expect(
        echo["date_range"].as_array().is_some_and(|r| r.len() == 2 && r.iter().all(Value::is_string)),
        format!("query.date_range: {echo}"),
    );
    errors
}

#[tokio::test]
async fn plausible_examples_answer_in_the_documented_shapes_and_validate_against_openapi() {
    let dir = TempDir::new("conformance");
    site_add(dir.path(), SITE, Some("Europe/Berlin"));
    let data = dir.path().to_str().unwrap();
    for goal in [["--event", "Signup"], ["--event", "Purchase"], ["--page", "/blog/*"]] {
        tally_ok(&["goal", "add", "--site", SITE, goal[0], goal[1], "--data-dir", data]);
    }
    // Segment 1, which an example filters by.
    let segment = json!([["is", "visit:source", ["Hacker News"]]]).to_string();
    let id =
        tally_ok(&["segment", "add", "--site", SITE, "--name", "From HN", "--filters", &segment, "--data-dir", data]);
    assert_eq!(id.trim(), "1");
    let funnel = ["funnel", "add", "--site", SITE, "--name", "Blog to purchase", "--step", "Visit /blog/*"];
    tally_ok(&[&funnel[..], &["--step", "Signup", "--step", "Purchase", "--data-dir", data]].concat());
    let file = dir.path().join("traffic.ndjson");
    std::fs::write(&file, traffic()).unwrap();
    tally_ok(&["import", file.to_str().unwrap(), "--data-dir", data, "--no-progress"]);
    let key = key_create(dir.path(), SITE);
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();

    let document: Value =
        client.get(format!("{}/api/openapi.json", server.base())).send().await.unwrap().json().await.unwrap();
    let mut recorded = Vec::new();
    // What each request got, with its JSON body where the document must describe it.
    let mut record =
        |method: &str, path: &str, status: u16, content_type: &str, body: Value, request: Option<&Value>| {
            let mut one =
                json!({"method": method, "path": path, "status": status, "content_type": content_type, "body": body});
            if let Some(request) = request {
                one["request"] = request.clone();
            }
            recorded.push(one);
        };

    let mut failures = Vec::new();
    let mut answered = 0;
    let examples = examples();
    assert!(examples.len() >= 20, "the examples file holds {} examples", examples.len());
    for example in &examples {
        let name = example["name"].as_str().unwrap();
        let request = &example["request"];
        let response = client
            .post(format!("{}/api/v2/query", server.base()))
            .bearer_auth(&key)
            .json(request)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        record("post", "/api/v2/query", status, "application/json", body.clone(), Some(request));
        match (status, example.get("tally")) {
            (200, None) => {
                answered += 1;
                for error in shape_errors(request, &body) {
                    failures.push(format!("{name}: {error}"));
                }
            }
            // Where Tally refuses an example on purpose, the note says why, and the answer is a
            // clear 400 naming the part it cannot answer.
            (400, Some(note)) => {
                let refuses = note["refuses"].as_str().unwrap();
                if body["code"] != "invalid_request" || !body["error"].as_str().unwrap_or("").contains(refuses) {
                    failures.push(format!("{name}: expected a 400 naming `{refuses}`, got {body}"));
                }
            }
            (status, note) => failures.push(format!("{name}: status {status} (note {note:?}): {body}")),
        }
    }

    // Errors, and the other routes, validate too.
    let base = server.base();
    let bad = [
        (Some(key.as_str()), json!({"site_id": SITE, "metrics": ["vistors"], "date_range": "7d"}), 400),
        (Some("tally_0000"), json!({"site_id": SITE, "metrics": ["visitors"], "date_range": "7d"}), 401),
        (Some(key.as_str()), json!({"site_id": "other.test", "metrics": ["visitors"], "date_range": "7d"}), 404),
        (None, json!({"site_id": SITE, "metrics": ["visitors"], "date_range": "7d"}), 401),
    ];
    for (key, body, expected) in bad {
        let mut request = client.post(format!("{base}/api/v2/query")).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, expected, "{body}");
        record("post", "/api/v2/query", status, "application/json", response.json().await.unwrap(), None);
    }
    let drops = client.get(format!("{base}/api/v2/drops?site_id={SITE}")).bearer_auth(&key).send().await.unwrap();
    record("get", "/api/v2/drops", drops.status().as_u16(), "application/json", drops.json().await.unwrap(), None);
    let sites = client.get(format!("{base}/api/v1/sites")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(sites.status(), 200, "a stats key lists the sites it reads");
    record("get", "/api/v1/sites", 200, "application/json", sites.json().await.unwrap(), None);
    let event = client.post(format!("{base}/api/event")).body("{").send().await.unwrap();
    record("post", "/api/event", event.status().as_u16(), "application/json", event.json().await.unwrap(), None);
    let csv = client
        .post(format!("{base}/api/v2/query?format=csv"))
        .bearer_auth(&key)
        .json(&examples[0]["request"])
        .send()
        .await
        .unwrap();
    let content_type = csv.headers()["content-type"].to_str().unwrap().split(';').next().unwrap().to_owned();
    record("post", "/api/v2/query", csv.status().as_u16(), &content_type, Value::Null, None);

    let export = client
        .post(format!("{base}/api/v2/export"))
        .bearer_auth(&key)
        .json(&json!({"site_id": SITE, "date_range": ["2026-11-01", "2026-11-30"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    record("post", "/api/v2/export", 200, export.headers()["content-type"].to_str().unwrap(), Value::Null, None);
    // Funnels: saved and given as steps, listed, and a bad one.
    for (body, expected) in [
        (json!({"site_id": SITE, "date_range": ["2026-11-01", "2026-11-30"], "funnel": "Blog to purchase"}), 200),
        (
            json!({"site_id": SITE, "date_range": "all", "steps": ["Signup", "Purchase"], "filters": [["is", "visit:source", ["Hacker News"]]]}),
            200,
        ),
        (json!({"site_id": SITE, "date_range": "all", "steps": ["Signup", "Nope"]}), 400),
    ] {
        let response = client.post(format!("{base}/api/v2/funnel")).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{body}");
        record("post", "/api/v2/funnel", expected, "application/json", response.json().await.unwrap(), Some(&body));
    }
    // Prop names: a range, and a bad request.
    for (body, expected) in [
        (json!({"site_id": SITE, "date_range": "all", "filters": [["is", "event:name", ["Signup"]]]}), 200),
        (json!({"site_id": SITE, "date_range": "realtime"}), 400),
    ] {
        let response = client.post(format!("{base}/api/v2/props")).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{body}");
        record("post", "/api/v2/props", expected, "application/json", response.json().await.unwrap(), Some(&body));
    }
    let funnels =
        client.get(format!("{base}/api/v1/sites/funnels?site_id={SITE}")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(funnels.status(), 200);
    record("get", "/api/v1/sites/funnels", 200, "application/json", funnels.json().await.unwrap(), None);
    let doc_file = dir.path().join("openapi.json");
    let answers_file = dir.path().join("answers.json");
    std::fs::write(&doc_file, serde_json::to_vec(&document).unwrap()).unwrap();
    std::fs::write(&answers_file, serde_json::to_vec(&recorded).unwrap()).unwrap();
    let check = std::process::Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/openapi_check.py"))
        .args([&doc_file, &answers_file])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "OpenAPI check failed:\n{report}{}", String::from_utf8_lossy(&check.stderr));
    assert!(failures.is_empty(), "{} of {} examples failed:\n{}", failures.len(), examples.len(), failures.join("\n"));
    // Most examples are answered, not refused.
    assert!(answered * 4 >= examples.len() * 3, "only {answered} of {} examples answered", examples.len());
}
