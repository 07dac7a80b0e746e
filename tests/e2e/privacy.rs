//! The data directory is private: after `tally serve` started on a directory others could read
//! and took an event, the directory and everything in it are its user's alone.

use crate::harness::{POLL_DEADLINE, TestServer, Visitor, pageview, query_body, settle};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SITE: &str = "private.example";

fn loose_entries(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(format!("{} {mode:o}", entry.path().display()));
        }
        if meta.is_dir() {
            loose_entries(&entry.path(), out);
        }
    }
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_private() {
    let mut server = TestServer::start("privacy", &[SITE]);
    // Made readable by others (as an older release or a careless copy may leave it), then
    // started again: the start tightens it.
    server.stop_with("TERM");
    std::fs::set_permissions(server.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(server.data_dir().join("registry.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    server.start_again(&[]);
    let answer = server.post_event(pageview(SITE, "/").to_string(), &Visitor::new(1).headers()).await;
    assert_eq!(answer.status, 202);
    let body = query_body(SITE, &["events"], json!({}));
    assert!(settle(POLL_DEADLINE, || server.totals(&body), |t| t.as_ref().is_ok_and(|t| t == &[1.0])).await.is_ok());
    server.stop_with("TERM");
    let dir_mode = std::fs::metadata(server.data_dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "the data directory");
    let mut loose = Vec::new();
    loose_entries(server.data_dir(), &mut loose);
    assert!(loose.is_empty(), "readable by others: {loose:?}");
}
