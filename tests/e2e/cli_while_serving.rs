//! The CLI while `tally serve` runs on the same data directory: a site added and keys created
//! then take effect within about 2 s, without a restart; `tally import` goes through the server
//! (its import socket) and counts exactly.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, eventually, key_create, pageview, query_body, site_add};
use serde_json::json;
use std::time::{Duration, Instant};

const FIRST: &str = "first.example";
const LATE: &str = "late.example";
/// How soon a change made by the CLI must be in effect ("within ~2 s").
const TAKES_EFFECT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_and_keys_added_while_serving() {
    let mut server = TestServer::start("cli", &[FIRST]);
    let visitor = Visitor::new(7);

    // Before it is added, the site is unknown.
    let answer = server.post_event(pageview(LATE, "/").to_string(), &visitor.headers()).await;
    assert_eq!(
        (answer.status, answer.accepted, answer.dropped.clone()),
        (202, Some(0), vec!["unknown_site".to_owned()]),
        "event for a site not yet added: {answer:?}"
    );

    // Add it and make a key while the server runs.
    site_add(server.data_dir(), LATE, Some("Europe/Berlin"));
    let added = Instant::now();
    let key = key_create(server.data_dir(), LATE);
    let key_made = Instant::now();
    server.set_key(LATE, key);

    // Its events are accepted soon.
    let headers = visitor.headers();
    let probe = || server.post_event(pageview(LATE, "/welcome").to_string(), &headers);
    let answer =
        eventually("an event for the new site accepted", POLL_DEADLINE, probe, |a| a.accepted == Some(1)).await;
    let elapsed = added.elapsed();
    eprintln!("cli_while_serving: events for the new site accepted {elapsed:?} after `site add`");
    assert_eq!((answer.status, answer.dropped_header), (202, None));
    assert!(elapsed <= TAKES_EFFECT, "events for the new site were unknown_site for {elapsed:?} after `site add`");
    for page in ["/a", "/b", "/c", "/d"] {
        let answer = server.post_event(pageview(LATE, page).to_string(), &headers).await;
        assert_eq!((answer.status, answer.accepted), (202, Some(1)), "{answer:?}");
    }

    // Its key works soon, and sees the 5 accepted pageviews.
    let body = query_body(LATE, &["pageviews"], json!({}));
    eventually(
        "the new key accepted",
        POLL_DEADLINE,
        || server.query(&body),
        |r| r.as_ref().is_ok() || r.as_ref().is_err_and(|e| !e.starts_with("401")),
    )
    .await
    .unwrap();
    let elapsed = key_made.elapsed();
    eprintln!("cli_while_serving: the new key worked {elapsed:?} after `key create`");
    assert!(elapsed <= TAKES_EFFECT, "the new key was refused for {elapsed:?} after `key create`");
    eventually(
        "pageviews of the new site",
        POLL_DEADLINE,
        || server.totals(&body),
        |t| t.as_ref().is_ok_and(|t| *t == [5.0]),
    )
    .await
    .unwrap();

    // A second key for a site that was there from the start also works at once-ish.
    let second = key_create(server.data_dir(), FIRST);
    assert_ne!(second, server.key(FIRST), "key create made the same key twice");
    let body = query_body(FIRST, &["pageviews"], json!({}));
    let (status, text) = eventually(
        "the second key of the first site",
        POLL_DEADLINE,
        || server.query_raw(&second, &body),
        |(s, _)| *s != 401,
    )
    .await;
    assert_eq!(status, 200, "query {FIRST} with its second key: {text}");
    // The first key still works.
    let (status, text) = server.query_raw(server.key(FIRST), &body).await;
    assert_eq!(status, 200, "query {FIRST} with its first key after a second was made: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_while_serving_goes_through_the_server() {
    let mut server = TestServer::start("import-live", &[FIRST]);
    let visitor = Visitor::new(3);
    // Live traffic before and during the import.
    let answer = server.post_event(pageview(FIRST, "/live").to_string(), &visitor.headers()).await;
    assert_eq!(answer.accepted, Some(1));
    let today = jiff::Timestamp::now().as_millisecond();
    let mut lines = String::new();
    for i in 0..2_000 {
        let line = json!({"n": "pageview", "u": format!("https://{FIRST}/imported/{}", i % 7), "d": FIRST,
            "timestamp": today - 60_000 + i, "user_agent": crate::harness::chrome_ua(i as u32), "visitor": format!("v{}", i % 300)});
        lines += &format!("{line}\n");
    }
    lines += "not json\n";
    let file = server.data_dir().join("import.ndjson");
    std::fs::write(&file, lines).unwrap();
    let data = server.data_dir().to_str().unwrap().to_owned();
    let out = crate::harness::tally_ok(&["import", file.to_str().unwrap(), "--data-dir", &data, "--no-progress"]);
    assert!(out.contains("imported 2000 events from 2001 lines"), "{out}");
    assert!(out.contains("not_a_json_object: 1"), "{out}");
    let answer = server.post_event(pageview(FIRST, "/live").to_string(), &visitor.headers()).await;
    assert_eq!(answer.accepted, Some(1), "the server still takes live events");
    // The command returns once the server has aggregated the import: visible at once.
    let body = query_body(FIRST, &["pageviews"], json!({"filters": [["contains", "event:page", ["/imported/"]]]}));
    assert_eq!(server.totals(&body).await.unwrap(), [2000.0]);
    // Again: nothing counted twice.
    let again = crate::harness::tally_ok(&["import", file.to_str().unwrap(), "--data-dir", &data, "--no-progress"]);
    assert!(again.contains("already imported (skipped): 2000"), "{again}");
    assert_eq!(server.totals(&body).await.unwrap(), [2000.0]);
    // Only the owner may use the socket, and it goes away with the server.
    let socket = server.data_dir().join("import.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // A client that stalls mid-import holds neither the server's shutdown nor the files.
    let mut stalled = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    std::io::Write::write_all(&mut stalled, b"tally-import 1\n{\"n\": \"pagev").unwrap();
    let (status, _) = server.stop_with("TERM");
    assert!(status.success());
    assert!(!socket.exists(), "the import socket is removed on shutdown");
    // With the server stopped, the import runs in the command itself, as before.
    let offline = crate::harness::tally_ok(&["import", file.to_str().unwrap(), "--data-dir", &data, "--no-progress"]);
    assert!(offline.contains("already imported (skipped): 2000"), "{offline}");
}
