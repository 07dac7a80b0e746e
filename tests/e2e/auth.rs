//! Authorisation of the Stats API: 401 without a valid key, 404 with the same body whether or
//! not the other site exists for a key of another site, 200 for the site's own key; the health
//! check answers without a key.

use crate::harness::{TestServer, query_body};
use serde_json::{Value, json};

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
