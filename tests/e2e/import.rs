//! `tally import` without a server: when the command returns, every line it logged is
//! aggregated (both tiers), even when the lines arrive in several appends while flushes commit.

use crate::harness::{TempDir, site_add, tally_ok};
use tally_core::embedded::log::EventLog;
use tally_core::embedded::store::Store;

/// Lines of one site: visitors coming back, pages cycling, a second apart.
fn lines(n: usize) -> String {
    let start_ms = 1_793_527_200_000i64;
    let mut out = String::new();
    for i in 0..n {
        out += &format!(
            r#"{{"n":"pageview","u":"https://big.example/p{}","d":"big.example","timestamp":{},"user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0","visitor":"v{}"}}"#,
            i % 50,
            start_ms + i as i64 * 1000,
            i % 3000
        );
        out.push('\n');
    }
    out
}

#[test]
fn import_returns_once_every_logged_line_is_aggregated() {
    // More lines than one append takes (10,000), flushes smaller than an append: the aggregator
    // catches up with the log while a flush commits and more lines are still coming.
    let text = lines(25_000);
    for round in 0..2 {
        let dir = TempDir::new(&format!("import-all-{round}"));
        site_add(dir.path(), "big.example", None);
        let file = dir.path().join("events.ndjson");
        std::fs::write(&file, &text).unwrap();
        let data = dir.path().to_str().unwrap();
        let out = tally_ok(&[
            "import",
            file.to_str().unwrap(),
            "--data-dir",
            data,
            "--no-progress",
            "--flush-max-entries",
            "8000",
        ]);
        assert!(out.contains("imported 25000 events"), "{out}");
        let log = EventLog::open(&dir.path().join("log.redb")).unwrap();
        let head = *log.head().borrow();
        drop(log);
        let (store, _) = Store::open(&dir.path().join("store.redb")).unwrap();
        assert_eq!(head, 25_000, "every line is logged");
        assert_eq!(store.progress().unwrap().offset, head, "round {round}: the import returned before all was applied");
        let pending = store.table_bytes().unwrap()["segment_pending"];
        let files = store.table_bytes().unwrap()["segment_files"];
        assert!(files > 0, "the import's segments are Parquet files (pending: {pending} bytes)");
    }
}
