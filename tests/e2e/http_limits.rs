//! Clients that hold connections as an attacker would: half a header, half a body, nothing at
//! all. Each is closed within its timeout; with the connection cap reached the server still
//! answers health once the idle connections time out; and SIGTERM during all of this exits
//! within the drain deadline with every acknowledged event counted.

use crate::harness::{POLL_DEADLINE, ServerProcess, TempDir, Visitor, key_create, pageview, site_add};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SITE: &str = "limits-http.example";
const LIMITS: [&str; 8] =
    ["--http-header-timeout-s", "1", "--http-body-timeout-s", "1", "--max-connections", "4", "--drain-timeout-s", "2"];

fn connect(base: &str) -> TcpStream {
    let stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
fn until_closed(mut stream: TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

#[test]
fn slow_and_silent_connections_are_closed_and_shutdown_is_bounded() {
    let dir = TempDir::new("http-limits");
    site_add(dir.path(), SITE, None);
    let key = key_create(dir.path(), SITE);
    let mut server = ServerProcess::spawn(dir.path(), &LIMITS);
    let base = server.base().to_owned();

    // Half a header, nothing at all: closed after the 1 s header timeout.
    let mut half_header = connect(&base);
    half_header.write_all(b"POST /api/event HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (_, took) = until_closed(half_header);
    assert!(took < Duration::from_secs(5), "half a header held {took:?}");
    let (_, took) = until_closed(connect(&base));
    assert!(took < Duration::from_secs(5), "a silent connection held {took:?}");

    // Half a body: a 408 after the 1 s body timeout, and the connection closes.
    let mut half_body = connect(&base);
    half_body
        .write_all(b"POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"n\":")
        .unwrap();
    let (answer, took) = until_closed(half_body);
    assert!(answer.starts_with("HTTP/1.1 408"), "half a body: {answer:?}");
    assert!(took < Duration::from_secs(5), "half a body held {took:?}");

    // The cap (4) taken by silent connections: health still answers once they time out.
    let idle: Vec<TcpStream> = (0..4).map(|_| connect(&base)).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let health = runtime.block_on(async {
        reqwest::Client::new().get(format!("{base}/api/health")).timeout(POLL_DEADLINE).send().await
    });
    assert_eq!(health.map(|r| r.status().as_u16()).ok(), Some(200), "health at the connection cap");
    assert!(started.elapsed() < Duration::from_secs(5), "health waited {:?}", started.elapsed());
    drop(idle);

    // An event acknowledged, then SIGTERM with a slow client holding a connection: the server
    // exits within the drain deadline (2 s) plus the aggregator's drain, and counted the event.
    let answer = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/api/event"))
            .headers(
                (&Visitor::new(1).headers().into_iter().collect::<std::collections::HashMap<_, _>>())
                    .try_into()
                    .unwrap(),
            )
            .body(pageview(SITE, "/").to_string())
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(answer.as_u16(), 202);
    let mut slow = connect(&base);
    slow.write_all(b"POST /api/v2/query HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{").unwrap();
    let started = Instant::now();
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "shutdown took {:?}", started.elapsed());
    drop(slow);

    let server = ServerProcess::spawn(dir.path(), &[]);
    let events = runtime.block_on(async {
        let body = serde_json::json!({"site_id": SITE, "metrics": ["events"], "date_range": "day"});
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/api/v2/query", server.base()))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["results"][0]["metrics"][0].as_f64()
    });
    assert_eq!(events, Some(1.0), "the acknowledged event is counted");
}
