//! The files a browser loads from `tally serve` itself: the tracking script (the committed build
//! `tracker/tally.js`, byte for byte), the dashboard's page and files, gzipped when the client
//! accepts it, and nothing else under those paths.

use crate::harness::{ServerProcess, TempDir, http_client};
use std::io::Read;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_and_the_dashboard_are_served_from_the_binary() {
    let dir = TempDir::new("assets");
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = http_client();
    let get = |path: &str, gzip: bool| {
        let mut request = client.get(format!("{}{path}", server.base()));
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        request.send()
    };

    let built = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tracker/tally.js")).unwrap();
    let script = get("/js/tally.js", false).await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-type"], "application/javascript; charset=utf-8");
    assert_eq!(script.headers()["cache-control"], "public, max-age=3600");
    assert_eq!(script.text().await.unwrap(), built, "the served script is the committed build");

    // Gzipped for a client that accepts it, and the same bytes once unpacked.
    let zipped = get("/js/tally.js", true).await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&zipped.bytes().await.unwrap()[..]).read_to_string(&mut unpacked).unwrap();
    assert_eq!(unpacked, built);

    let page = get("/", false).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let page = page.text().await.unwrap();
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/dashboard/index.html")).unwrap();
    assert_eq!(page, on_disk);

    // Each file has an ETag: asked again with it, a 304 without the body.
    let first = get("/dashboard/app.js", false).await.unwrap();
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again =
        client.get(format!("{}/dashboard/app.js", server.base())).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], tag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    let other = client
        .get(format!("{}/dashboard/app.js", server.base()))
        .header("if-none-match", "\"old\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    // Every file the page names under /dashboard/ is served; nothing else is.
    for name in page.split("/dashboard/").skip(1).filter_map(|rest| rest.split(['"', '\'']).next()) {
        let file = get(&format!("/dashboard/{name}"), false).await.unwrap();
        assert_eq!(file.status(), 200, "/dashboard/{name}");
    }
    for path in ["/dashboard/nothing.js", "/dashboard/..%2Fregistry.json", "/registry.json", "/dashboard/"] {
        assert_eq!(get(path, false).await.unwrap().status(), 404, "{path}");
    }
}
