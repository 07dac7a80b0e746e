//! Bad input: every vector of `vectors/bad_input.json` gets the status, error reason or
//! `X-Tally-Dropped` list it predicts and never a 5xx; the drop counters of the registered site
//! then equal the vectors' prediction. Arbitrary bodies (proptest) never get a 5xx either.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, http_client_unpooled, post_event, query_body, settle};
use crate::vectors::{Expect, load, show};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[test]
fn the_vectors_file_is_well_formed() {
    let (site, vectors) = load();
    assert!(!site.is_empty());
    let mut names: Vec<&str> = vectors.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), vectors.len(), "vector names must be unique");
    for v in &vectors {
        if let Expect::Accepted { accepted: _, dropped, site_drops } = &v.expect {
            // Site drops are a sub-list of the dropped reasons.
            let mut left = dropped.clone();
            for reason in site_drops {
                let at = left.iter().position(|r| r == reason);
                assert!(at.is_some(), "vector {}: site drop {reason} is not among {dropped:?}", v.name);
                left.remove(at.unwrap_or_default());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_vectors() {
    let (site, vectors) = load();
    let server = TestServer::start("bad-input", &[&site]);
    // A new connection per vector: each vector is judged on its own answer (but see
    // `a_refused_body_leaves_the_connection_usable_or_says_close` for what reuse would do).
    let client = http_client_unpooled();
    let mut failures = Vec::new();
    let mut want_drops: BTreeMap<String, u64> = BTreeMap::new();
    let mut want_events = 0u64;
    for (i, v) in vectors.iter().enumerate() {
        let mut headers = v.headers.clone();
        headers.push(("X-Forwarded-For".to_owned(), Visitor::new(u32::try_from(i).unwrap()).ip));
        let request = format!("{} ({}): POST /api/event {:?} {}", v.name, v.about, v.headers, show(&v.body));
        let answer = match post_event(&client, server.base(), v.body.clone(), &headers).await {
            Ok(answer) => answer,
            Err(e) => {
                failures.push(format!("{request}\n    → no answer: {e:?}"));
                continue;
            }
        };
        if answer.status >= 500 {
            failures.push(format!("{request}\n    → server error {} {}", answer.status, answer.body));
            continue;
        }
        match &v.expect {
            Expect::Rejected { status, error } => {
                if answer.status != *status || answer.error().as_deref() != Some(error.as_str()) {
                    failures.push(format!(
                        "{request}\n    → want {status} {{\"error\":\"{error}\"}}, got {} {}",
                        answer.status, answer.body
                    ));
                }
            }
            Expect::Accepted { accepted, dropped, site_drops } => {
                let got = (answer.status, answer.body.as_str(), answer.accepted, &answer.dropped);
                if got != (202, "ok", Some(*accepted), dropped) {
                    failures.push(format!(
                        "{request}\n    → want 202 ok, X-Tally-Accepted {accepted}, X-Tally-Dropped {dropped:?}; \
                         got {} {:?}, X-Tally-Accepted {:?}, X-Tally-Dropped {:?}",
                        answer.status, answer.body, answer.accepted, answer.dropped_header
                    ));
                }
                for reason in site_drops {
                    *want_drops.entry(reason.clone()).or_default() += 1;
                }
                want_events += accepted;
            }
        }
    }

    // The drop counters of the site are what the vectors predict.
    let drops = settle(POLL_DEADLINE, || server.drops(&site), |d| d.as_ref().is_ok_and(|d| *d == want_drops)).await;
    if let Err(last) = drops {
        failures.push(format!(
            "GET /api/v2/drops?site_id={site}\n    → want drops {want_drops:?} within {POLL_DEADLINE:?}, last answer {last:?}"
        ));
    }
    // And the accepted events are counted, once.
    let body = query_body(&site, &["events"], json!({}));
    let events = settle(
        POLL_DEADLINE,
        || server.totals(&body),
        |t| {
            #[allow(clippy::cast_precision_loss)]
            let want = want_events as f64;
            t.as_ref().is_ok_and(|t| *t == [want])
        },
    )
    .await;
    if let Err(last) = events {
        failures.push(format!("events of today\n    → want {want_events}, last answer {last:?}"));
    }
    assert!(failures.is_empty(), "{} of {} checks failed:\n{}", failures.len(), vectors.len() + 2, failures.join("\n"));
}

/// Leaf JSON values, then nested ones.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
        Just(Value::from("https://vectors.example/page")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z$]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid event with some fields replaced by arbitrary values.
fn mangled_event() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "name",
        "n",
        "url",
        "u",
        "domain",
        "d",
        "referrer",
        "r",
        "props",
        "p",
        "revenue",
        "$",
        "interactive",
        "i",
    ]);
    prop::collection::vec((keys, json_value()), 0..4).prop_map(|changes| {
        let mut event = json!({"name": "pageview", "url": "https://vectors.example/fuzz", "domain": "vectors.example"});
        for (key, value) in changes {
            event[key] = value;
        }
        event
    })
}

/// How many events the server makes of `event`: one per site a comma-separated domain names
/// (1 to 10 non-empty parts; past that, or none, one drop).
fn copies(event: &Value) -> usize {
    let domain = ["domain", "d"].iter().find_map(|k| event.get(*k).filter(|v| !v.is_null()));
    match domain.and_then(Value::as_str) {
        Some(d) if d.contains(',') => {
            let parts = d.split(',').filter(|p| !p.trim().is_empty()).count();
            if (1..=10).contains(&parts) { parts } else { 1 }
        }
        _ => 1,
    }
}

/// A body and how many events it holds (when it is an event or a batch of 1–25), counting each
/// site of a comma-separated domain.
fn body() -> impl Strategy<Value = (Vec<u8>, Option<usize>)> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| (b, None)),
        "[\\[\\]{}\":,a-z0-9 \\\\]{0,120}".prop_map(|s| (s.into_bytes(), None)),
        json_value().prop_map(|v| (v.to_string().into_bytes(), None)),
        mangled_event().prop_map(|e| (e.to_string().into_bytes(), Some(copies(&e)))),
        prop::collection::vec(mangled_event(), 1..6).prop_map(|es| {
            let n = es.iter().map(copies).sum();
            (Value::Array(es).to_string().into_bytes(), Some(n))
        }),
    ]
}

#[test]
fn arbitrary_bodies_never_get_a_server_error() {
    const SITE: &str = "vectors.example";
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = TestServer::start("fuzz", &[SITE]);
    let content_types = prop::sample::select(vec!["application/json", "text/plain", "application/octet-stream"]);
    let config = Config { cases: 300, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&(body(), content_types, 0u32..1000), |((body, events), content_type, visitor)| {
        let mut headers = Visitor::new(visitor).headers();
        headers[0].1 = content_type.to_owned();
        let answer = runtime.block_on(server.post_event(body.clone(), &headers));
        let shown = show(&body);
        prop_assert!(
            matches!(answer.status, 202 | 400 | 413 | 415),
            "POST /api/event ({content_type}) {shown} → {} {}",
            answer.status,
            answer.body
        );
        if answer.status == 202 {
            // Every event of the body is either accepted or dropped with a reason.
            let accepted = usize::try_from(answer.accepted.unwrap_or(0)).unwrap();
            let seen = accepted + answer.dropped.len();
            prop_assert!(
                answer.accepted.is_some() && events.is_none_or(|n| n == seen),
                "POST /api/event {shown} → 202 with X-Tally-Accepted {:?} and X-Tally-Dropped {:?} for {events:?} events",
                answer.accepted,
                answer.dropped_header
            );
        } else {
            prop_assert!(answer.error().is_some(), "POST /api/event {shown} → {} without a JSON error: {}", answer.status, answer.body);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nserver stderr:\n{}", server.stderr());
    }
}

/// One HTTP/1.1 request to `/api/event`, by hand.
fn raw_request(content_type: &str, body: &[u8]) -> Vec<u8> {
    let visitor = Visitor::new(4242);
    let head = format!(
        "POST /api/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nUser-Agent: {}\r\n\
         X-Forwarded-For: {}\r\nContent-Length: {}\r\n\r\n",
        visitor.user_agent,
        visitor.ip,
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// Reads one response: its status and lower-cased headers (the body is read and dropped).
fn read_response(reader: &mut impl std::io::BufRead) -> std::io::Result<(u16, BTreeMap<String, String>)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((status, headers))
}

/// After refusing a body, the server must either say `Connection: close` or keep serving the
/// connection: a keep-alive client (every browser, reqwest) otherwise reuses a connection the
/// server has closed and loses its next request.
#[test]
fn a_refused_body_leaves_the_connection_usable_or_says_close() {
    use std::io::{BufReader, Write};
    const SITE: &str = "keepalive.example";
    let server = TestServer::start("keepalive", &[SITE]);
    let address = server.base().strip_prefix("http://").unwrap().to_owned();
    let event = crate::harness::pageview(SITE, "/after").to_string().into_bytes();
    let mut oversized = event.clone();
    oversized.resize(65_537, b' ');
    let cases: [(&str, &str, Vec<u8>, u16); 4] = [
        ("a body one byte too large", "application/json", oversized, 413),
        ("a form body", "application/x-www-form-urlencoded", event.clone(), 415),
        ("malformed JSON", "application/json", b"{\"name\":".to_vec(), 400),
        ("a good event", "application/json", event.clone(), 202),
    ];
    let mut failures = Vec::new();
    for (what, content_type, body, status) in cases {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        stream.write_all(&raw_request(content_type, &body)).unwrap();
        let (got, headers) = read_response(&mut reader).unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        assert_eq!(got, status, "{what}: status");
        if headers.get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
            continue;
        }
        // No `Connection: close`: the connection must take another request.
        let next = stream.write_all(&raw_request("application/json", &event)).and_then(|()| read_response(&mut reader));
        match next {
            Ok((202, _)) => {}
            other => failures.push(format!(
                "after {what} (answered {got} without `Connection: close`, headers {headers:?}), a good event \
                 on the same connection → want 202, got {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
