//! Behind a trusted proxy, the client IP is the address the proxy appended to
//! `X-Forwarded-For`, not what the client wrote there itself: forging the header does not make a
//! visitor into many.

use crate::harness::{POLL_DEADLINE, TestServer, chrome_ua, pageview, query_body, settle};
use serde_json::json;

const SITE: &str = "proxied.example";

#[tokio::test]
async fn a_forged_forwarded_for_does_not_change_the_visitor() {
    // The harness starts `tally serve --trust-proxy`: one trusted hop.
    let server = TestServer::start("trusted-proxies", &[SITE]);
    for forged in ["6.6.6.1", "6.6.6.2", "6.6.6.3, 7.7.7.7"] {
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("User-Agent".to_owned(), chrome_ua(1)),
            // What the client wrote, then what the proxy appended: the address it saw.
            ("X-Forwarded-For".to_owned(), format!("{forged}, 203.0.113.7")),
        ];
        let answer = server.post_event(pageview(SITE, "/").to_string(), &headers).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    let body = query_body(SITE, &["visitors", "pageviews"], json!({}));
    let totals =
        settle(POLL_DEADLINE, || server.totals(&body), |t| t.as_ref().is_ok_and(|t| t.get(1) == Some(&3.0))).await;
    assert_eq!(totals.map(Result::ok), Ok(Some(vec![1.0, 3.0])), "three pageviews of one visitor");
}
