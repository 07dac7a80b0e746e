//! Authorisation of the Stats API: 401 without a valid key, 404 with the same body whether or
//! not the other site exists for a key of another site, 200 for the site's own key; the health
//! check answers without a key. Key scopes (a stats key gets 403 on the admin routes, an admin
//! key adds sites through them), expiry (401 from the expiry instant on) and `tally key list`'s
//! scope, expiry and last use.

use crate::harness::{
    ServerProcess, TALLY, TempDir, TestServer, Visitor, eventually, http_client, is_api_key, pageview, post_event,
    query_body, run_cli, site_add, tally_ok, totals,
};
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const A: &str = "a.example";
const B: &str = "b.example";
/// Never registered.
const C: &str = "c.example";

fn visitors_today(site: &str) -> Value {
    query_body(site, &["visitors", "pageviews"], json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_scoped_to_their_site() {
    let server = TestServer::start("auth", &[A, B]);
    let (key_a, key_b) = (server.key(A), server.key(B));
    assert_ne!(key_a, key_b);

    // Each site's own key works, and the answer has the v2 shape.
    for (site, key) in [(A, key_a), (B, key_b)] {
        let (status, body) = server.query_raw(key, &visitors_today(site)).await;
        assert_eq!(status, 200, "query {site} with its own key: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(
            answer["results"].is_array() && answer["meta"].is_object() && answer["query"].is_object(),
            "query {site} with its own key: want {{results: [...], meta: {{...}}, query: {{...}}}}, got {body}"
        );
    }

    // A's key on B (registered) and on C (not): 404, byte-identical bodies.
    let (status_b, body_b) = server.query_raw(key_a, &visitors_today(B)).await;
    let (status_c, body_c) = server.query_raw(key_a, &visitors_today(C)).await;
    assert_eq!(
        (status_b, status_c),
        (404, 404),
        "A's key on site B (registered): {status_b} {body_b}; on site C (unregistered): {status_c} {body_c}"
    );
    assert_eq!(body_b, body_c, "404 bodies for a registered and an unregistered site must not differ");
    let (status, body) = server.query_raw(key_b, &visitors_today(A)).await;
    assert_eq!(status, 404, "B's key on site A: {body}");

    // No key, or one that is not a key: 401, whichever site is asked for.
    let unknown_key = format!("Bearer tally_{}", "0123456789abcdef".repeat(4));
    let mut altered = key_a.to_owned();
    let last = if altered.ends_with('0') { "1" } else { "0" };
    altered.replace_range(altered.len() - 1.., last);
    let altered = format!("Bearer {altered}");
    let credentials: [(&str, Option<&str>); 5] = [
        ("no Authorization header", None),
        ("Bearer garbage", Some("Bearer garbage")),
        ("an empty bearer token", Some("Bearer ")),
        ("a well-formed unknown key", Some(&unknown_key)),
        ("A's key with its last digit changed", Some(&altered)),
    ];
    for (what, authorization) in credentials {
        let mut bodies = Vec::new();
        for site in [A, C] {
            let (status, body) =
                server.query_with_auth(authorization, visitors_today(site).to_string().as_bytes()).await;
            assert_eq!(status, 401, "query {site} with {what}: {body}");
            bodies.push(body);
        }
        assert_eq!(
            bodies[0], bodies[1],
            "401 bodies ({what}) for a registered and an unregistered site must not differ"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_endpoint_is_scoped_like_queries() {
    let server = TestServer::start("auth-drops", &[A, B]);
    let key_a = server.key(A);
    let drops = |site: &str| format!("/api/v2/drops?site_id={site}");

    let (status, body) = server.get(&drops(A), Some(key_a)).await;
    assert_eq!(status, 200, "drops of A with A's key: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(answer["site_id"] == A && answer["drops"].is_object(), "drops of A: {body}");

    let (status_b, body_b) = server.get(&drops(B), Some(key_a)).await;
    let (status_c, body_c) = server.get(&drops(C), Some(key_a)).await;
    assert_eq!((status_b, status_c), (404, 404), "drops with A's key of B: {body_b}; of C: {body_c}");
    assert_eq!(body_b, body_c, "404 bodies for a registered and an unregistered site must not differ");

    for (what, key) in [("no key", None), ("a garbage key", Some("garbage"))] {
        let (status, body) = server.get(&drops(A), key).await;
        assert_eq!(status, 401, "drops of A with {what}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_ok() {
    let server = TestServer::start("health", &[A]);
    let (status, body) = server.get("/api/health", None).await;
    assert_eq!(status, 200, "GET /api/health: {body}");
    let answer: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /api/health is not JSON ({e}): {body}"));
    assert_eq!(answer["status"], "ok", "GET /api/health: {body}");
}

/// `tally key list` shows ids, never keys; `tally key revoke` makes a key answer 401 within a
/// second while the server runs, and leaves other keys alone.
#[tokio::test]
async fn a_revoked_key_is_refused_within_a_second() {
    let mut server = TestServer::start("revoke", &[A]);
    let body = query_body(A, &["visitors"], json!({}));
    let key = server.key(A).to_owned();
    let (status, _) = server.query_raw(&key, &body).await;
    assert_eq!(status, 200);
    let dir = server.data_dir().to_str().unwrap().to_owned();
    let listed = crate::harness::tally_ok(&["key", "list", "--data-dir", &dir]);
    let id = tally_core::registry::key_id(&key);
    assert!(listed.contains(&id) && listed.contains(A), "{listed}");
    assert!(!listed.contains(&key), "the list shows a key itself: {listed}");
    let other = crate::harness::key_create(server.data_dir(), A);

    crate::harness::tally_ok(&["key", "revoke", &id, "--data-dir", &dir]);
    let revoked = std::time::Instant::now();
    loop {
        let (status, _) = server.query_raw(&key, &body).await;
        if status == 401 {
            break;
        }
        assert!(revoked.elapsed() < std::time::Duration::from_secs(1), "still {status} a second after revoking");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.set_key(A, other);
    assert!(server.query(&body).await.is_ok(), "another key of the site still reads it");
    let unknown = crate::harness::run_cli(&["key", "revoke", &id, "--data-dir", &dir]);
    assert!(!unknown.status.success() && unknown.stderr.contains("no key"), "{}", unknown.stderr);
}

/// What an admin route answers a stats key.
const READ_ONLY: &str = "this key is read-only (scope stats); admin routes need an admin key";

/// `tally key create --site SITE EXTRA… --data-dir DIR`; checks that stdout is the key alone.
fn key_create_with(data_dir: &Path, site: &str, extra: &[&str]) -> String {
    let dir = data_dir.to_str().unwrap();
    let mut args = vec!["key", "create", "--site", site];
    args.extend(extra);
    args.extend(["--data-dir", dir]);
    let out = tally_ok(&args);
    let key = out.strip_suffix('\n').unwrap_or(&out);
    assert!(is_api_key(key), "`tally {}` should print the key alone; stdout {out:?}", args.join(" "));
    key.to_owned()
}

/// One request with an optional bearer key and body; status and body.
async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, String) {
    let mut request = client.request(method.clone(), url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.header("Content-Type", "application/json").body(body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e:?}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The body as JSON, or a panic naming what answered it.
fn json_of(what: &str, body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"))
}

/// `tally key list`, split into its tab-separated columns, by key id.
fn key_list(data_dir: &Path) -> (String, std::collections::BTreeMap<String, Vec<String>>) {
    let listed = tally_ok(&["key", "list", "--data-dir", data_dir.to_str().unwrap()]);
    let rows = listed
        .lines()
        .map(|line| {
            let columns: Vec<String> = line.split('\t').map(str::to_owned).collect();
            assert_eq!(columns.len(), 6, "`tally key list` line without its 6 columns: {line:?}");
            (columns[0].clone(), columns)
        })
        .collect();
    (listed, rows)
}

/// Stats keys are read-only: they list their sites but get 403 adding one (and no site is added), 401 without a
/// valid key. An admin key lists its sites, registers one (normalised, with its time zone) that
/// joins its scope at once, so it can query it and events for it are counted, and gets the
/// checks of `tally site add` and the body limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_an_admin_key() {
    const NEW: &str = "new.example";
    let dir = TempDir::new("admin");
    site_add(dir.path(), A, None);
    let stats = crate::harness::key_create(dir.path(), A);
    let admin = key_create_with(dir.path(), A, &["--scope", "admin"]);
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();
    let sites = format!("{}/api/v1/sites", server.base());
    let new_site =
        |domain: &str, timezone: &str| json!({"domain": domain, "timezone": timezone}).to_string().into_bytes();
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);

    // A stats key lists the sites it reads (the dashboard's site switcher), but adds none: 403
    // with the reason, and nothing is added.
    let (status, body) = send(&client, get.clone(), &sites, Some(&stats), None).await;
    assert_eq!(
        (status, json_of("GET with a stats key", &body)),
        (200, json!({ "sites": [{ "domain": A, "timezone": "Etc/UTC" }] })),
        "{body}"
    );
    let (status, body) = send(&client, post.clone(), &sites, Some(&stats), Some(new_site(NEW, "Europe/Berlin"))).await;
    assert_eq!(
        (status, json_of("POST with a stats key", &body)),
        (403, json!({ "error": READ_ONLY, "code": "forbidden" })),
        "{body}"
    );
    let listed = tally_ok(&["site", "list", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!listed.contains(NEW), "a stats key added a site: {listed}");

    // No key, a garbage key, an admin key with one digit changed: 401 on both routes.
    let mut altered = admin.clone();
    let last = if altered.ends_with('0') { "1" } else { "0" };
    altered.replace_range(altered.len() - 1.., last);
    for (what, key) in [("no key", None), ("a garbage key", Some("garbage")), ("an altered admin key", Some(&*altered))]
    {
        let (status, body) = send(&client, get.clone(), &sites, key, None).await;
        assert_eq!(status, 401, "GET /api/v1/sites with {what}: {body}");
        let (status, body) = send(&client, post.clone(), &sites, key, Some(new_site(NEW, "Etc/UTC"))).await;
        assert_eq!(status, 401, "POST /api/v1/sites with {what}: {body}");
    }

    // An admin key lists its sites, adds one, and at once sees, queries and counts it.
    let (status, body) = send(&client, get.clone(), &sites, Some(&admin), None).await;
    assert_eq!(status, 200, "GET /api/v1/sites with an admin key: {body}");
    assert_eq!(json_of("GET", &body), json!({"sites": [{"domain": A, "timezone": "Etc/UTC"}]}));
    let (status, body) =
        send(&client, post.clone(), &sites, Some(&admin), Some(new_site("WWW.New.Example", "europe/berlin"))).await;
    assert_eq!(status, 200, "POST /api/v1/sites with an admin key: {body}");
    assert_eq!(json_of("POST", &body), json!({"domain": NEW, "timezone": "Europe/Berlin"}));
    let (status, body) = send(&client, get.clone(), &sites, Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_of("GET after POST", &body),
        json!({"sites": [{"domain": A, "timezone": "Etc/UTC"}, {"domain": NEW, "timezone": "Europe/Berlin"}]})
    );
    let query = |key: String, site: &'static str| {
        let (client, url) = (client.clone(), format!("{}/api/v2/query", server.base()));
        async move {
            let body = query_body(site, &["visitors", "pageviews"], json!({})).to_string().into_bytes();
            send(&client, reqwest::Method::POST, &url, Some(&key), Some(body)).await
        }
    };
    let (status, body) = query(admin.clone(), NEW).await;
    assert_eq!(status, 200, "the admin key queries the site it just added: {body}");
    let (status, body) = query(stats.clone(), NEW).await;
    assert_eq!(status, 404, "the new site is not in the stats key's scope: {body}");
    let (status, body) = query(admin.clone(), A).await;
    assert_eq!(status, 200, "an admin key reads its sites as a stats key does: {body}");
    let answer =
        post_event(&client, server.base(), pageview(NEW, "/").to_string().into_bytes(), &Visitor::new(1).headers())
            .await
            .expect("POST /api/event");
    assert_eq!((answer.status, answer.accepted), (202, Some(1)), "an event for the new site: {answer:?}");
    eventually(
        "the new site's pageview is counted",
        crate::harness::POLL_DEADLINE,
        || async { totals(&json_of("query", &query(admin.clone(), NEW).await.1)) },
        |metrics| metrics == &[1.0, 1.0],
    )
    .await;

    // The checks of `tally site add`, and the body limit.
    let refusals: [(&str, Vec<u8>, u16, &str); 5] = [
        ("an existing site", new_site("new.example", "Etc/UTC"), 400, "already exists"),
        ("an unknown time zone", new_site("other.example", "Mars/Olympus_Mons"), 400, "unknown time zone"),
        ("a URL for a domain", new_site("https://other.example/", "Etc/UTC"), 400, "not a valid domain"),
        ("a body that is not JSON", b"{\"domain\":".to_vec(), 400, "invalid site"),
        ("a body over 64 KiB", new_site(&"a".repeat(64 * 1024), "Etc/UTC"), 413, "at most 65536 bytes"),
    ];
    for (what, request, want, says) in refusals {
        let (status, body) = send(&client, post.clone(), &sites, Some(&admin), Some(request)).await;
        let error = json_of(what, &body)["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            status == want && error.contains(says),
            "POST {what}: want {want} saying {says:?}, got {status} {body}"
        );
    }
    let listed = tally_ok(&["site", "list", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(listed, format!("{A}\tEtc/UTC\n{NEW}\tEurope/Berlin\n"), "only the one site was added");
    let (_, keys) = key_list(dir.path());
    let admin_row = &keys[&tally_core::registry::key_id(&admin)];
    assert_eq!((admin_row[1].as_str(), admin_row[5].as_str()), ("admin", "a.example,new.example"), "{admin_row:?}");
    assert_eq!(keys[&tally_core::registry::key_id(&stats)][5], A);
}

/// A key past its expiry is refused with a 401 that says so, from the first request after it
/// (checked per request, not only when the registry is reloaded); a key that would already
/// have expired is never created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused() {
    let dir = TempDir::new("expiry");
    site_add(dir.path(), A, None);
    let past = run_cli(&[
        "key",
        "create",
        "--site",
        A,
        "--expires-at",
        "2020-01-01T00:00:00Z",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        !past.status.success() && past.stdout.is_empty() && past.stderr.contains("not in the future"),
        "a key expiring in the past: {past:?}"
    );
    let bad =
        run_cli(&["key", "create", "--site", A, "--expires-in", "30m", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!bad.status.success() && bad.stderr.contains("days or hours"), "--expires-in 30m: {bad:?}");

    let expires = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 5).unwrap();
    let key = key_create_with(dir.path(), A, &["--expires-at", &expires.to_string()]);
    let lasting = crate::harness::key_create(dir.path(), A);
    let (_, keys) = key_list(dir.path());
    assert_eq!(keys[&tally_core::registry::key_id(&key)][3], expires.to_string(), "{keys:?}");
    assert_eq!(keys[&tally_core::registry::key_id(&lasting)][3], "-", "{keys:?}");

    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();
    let url = format!("{}/api/v2/query", server.base());
    let body = || Some(query_body(A, &["visitors"], json!({})).to_string().into_bytes());
    let (status, answer) = send(&client, reqwest::Method::POST, &url, Some(&key), body()).await;
    assert!(jiff::Timestamp::now() < expires, "the server took too long to start to test the key before it expired");
    assert_eq!(status, 200, "the key before its expiry: {answer}");

    let wait = expires.duration_since(jiff::Timestamp::now()) + jiff::SignedDuration::from_millis(50);
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    let (status, answer) = send(&client, reqwest::Method::POST, &url, Some(&key), body()).await;
    assert_eq!(status, 401, "the first query after the expiry: {answer}");
    let error = json_of("expired", &answer)["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("expired") && error.contains(&expires.to_string()), "{answer}");
    let drops = format!("{}/api/v2/drops?site_id={A}", server.base());
    let (status, answer) = send(&client, reqwest::Method::GET, &drops, Some(&key), None).await;
    assert_eq!(status, 401, "drops with the expired key: {answer}");
    let (status, answer) = send(&client, reqwest::Method::POST, &url, Some(&lasting), body()).await;
    assert_eq!(status, 200, "a key without expiry still reads: {answer}");
}

/// `tally serve` with extra environment variables (the harness's server takes none), killed
/// when dropped.
struct ServeWithEnv {
    child: Child,
    base: String,
}

impl ServeWithEnv {
    fn spawn(data_dir: &Path, env: &[(&str, &str)]) -> ServeWithEnv {
        let mut child = Command::new(TALLY)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().copied())
            .env("TALLY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {TALLY}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep reading so that the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let mut server = ServeWithEnv { child, base: String::new() };
        let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
            panic!("`tally serve` did not print its address; first line {line:?}");
        };
        server.base = addr.to_owned();
        server
    }
}

impl Drop for ServeWithEnv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tally key list` shows each key's scope, expiry and last use (`-` for none), never a key;
/// a running server records a key's use, written within the persist interval (shortened here
/// with `TALLY_KEY_USE_PERSIST_MS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_list_shows_scope_expiry_and_last_use() {
    let dir = TempDir::new("lastused");
    site_add(dir.path(), A, None);
    let stats = crate::harness::key_create(dir.path(), A);
    let admin = key_create_with(dir.path(), A, &["--scope", "admin", "--expires-in", "30d"]);
    let (stats_id, admin_id) = (tally_core::registry::key_id(&stats), tally_core::registry::key_id(&admin));

    let (listed, keys) = key_list(dir.path());
    assert!(!listed.contains(&stats) && !listed.contains(&admin), "the list shows a key itself: {listed}");
    let (stats_row, admin_row) = (&keys[&stats_id], &keys[&admin_id]);
    assert_eq!([&stats_row[1], &stats_row[3], &stats_row[4], &stats_row[5]], ["stats", "-", "-", A], "{listed}");
    assert_eq!([&admin_row[1], &admin_row[4], &admin_row[5]], ["admin", "-", A], "{listed}");
    let created: jiff::Timestamp = admin_row[2].parse().unwrap_or_else(|e| panic!("created {e}: {listed}"));
    let expires: jiff::Timestamp = admin_row[3].parse().unwrap_or_else(|e| panic!("expires {e}: {listed}"));
    let lasts = expires.duration_since(created).as_secs();
    assert!((30 * 86_400 - 2..=30 * 86_400).contains(&lasts), "--expires-in 30d: {listed}");

    let server = ServeWithEnv::spawn(dir.path(), &[("TALLY_KEY_USE_PERSIST_MS", "300")]);
    let used_from = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap();
    let body = query_body(A, &["visitors"], json!({})).to_string().into_bytes();
    let url = format!("{}/api/v2/query", server.base);
    let (status, answer) = send(&http_client(), reqwest::Method::POST, &url, Some(&admin), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let used_until = jiff::Timestamp::now();

    let rows = eventually(
        "`tally key list` shows the admin key's use",
        Duration::from_secs(5),
        || async { key_list(dir.path()).1 },
        |rows| rows[&admin_id][4] != "-",
    )
    .await;
    let last_used: jiff::Timestamp = rows[&admin_id][4].parse().unwrap_or_else(|e| panic!("last_used {e}: {rows:?}"));
    assert!(
        used_from <= last_used && last_used <= used_until,
        "last used {last_used}, used in [{used_from}, {used_until}]"
    );
    assert_eq!(rows[&stats_id][4], "-", "the unused key has no last use: {rows:?}");
    assert_eq!(rows[&admin_id][1..4], keys[&admin_id][1..4], "scope, created and expires are kept: {rows:?}");
}
