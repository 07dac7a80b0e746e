//! `tally serve` on a small file system that fills up: ingest answers 503 (never 202 or 500)
//! and health says failing; once space is freed it takes events again within seconds, without a
//! restart, and every event that got a 202 is counted exactly once.

use crate::harness::{
    ServerProcess, TempDir, Visitor, http_client, key_create, pageview, post_event, query_body, settle, site_add,
    totals,
};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SITE: &str = "full.example";

/// A tmpfs of `megabytes` mounted on a fresh directory, unmounted on drop; `None` where this
/// process may not mount (not root).
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = TempDir::new("small-disk");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes zeros to `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = file.sync_all();
    written
}

async fn health(client: &reqwest::Client, base: &str) -> (u16, Value) {
    let response = client.get(format!("{base}/api/health")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_full_disk_gives_503_and_freeing_space_brings_202_back_without_a_restart() {
    let Some(disk) = SmallDisk::mount(24) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); the disk-full test did not run");
        return;
    };
    let data: PathBuf = disk.path().join("data");
    site_add(&data, SITE, None);
    let key = key_create(&data, SITE);
    let server = ServerProcess::spawn(&data, &["--ingest-rate-per-client", "0", "--ingest-rate-per-site", "0"]);
    let (base, client) = (server.base().to_owned(), http_client());
    let mut accepted = 0u64;
    let mut send = async |n: u32| {
        let visitor = Visitor::new(n % 60_000);
        let body = pageview(SITE, &format!("/page/{n}/{}", "x".repeat(200))).to_string();
        let answer = post_event(&client, &base, body.into_bytes(), &visitor.headers()).await.unwrap();
        assert!(answer.status == 202 || answer.status == 503, "never anything but 202 or 503: {answer:?}");
        if answer.status == 202 {
            accepted += 1;
        }
        answer.status
    };
    for n in 0..200 {
        assert_eq!(send(n).await, 202, "room at first");
    }

    // Fill the disk, then send until the log needs room it cannot get.
    let filler = disk.path().join("filler");
    assert!(fill(&filler) > 0);
    let mut n = 200;
    let mut refused = false;
    while n < 60_000 && !refused {
        refused = send(n).await == 503;
        n += 1;
    }
    assert!(refused, "the full disk never refused an event");
    let (status, body) = health(&client, &base).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("failing")), "health while full: {body}");
    assert_eq!(body["log"], "failing", "{body}");
    for _ in 0..20 {
        assert_eq!(send(n).await, 503, "still full");
        n += 1;
    }

    // Free the space: events are taken again within seconds, by the same process.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        let status = send(n).await;
        n += 1;
        if status == 202 {
            break;
        }
        assert!(freed.elapsed() < Duration::from_secs(10), "no 202 within 10 s of freeing space");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..50 {
        assert_eq!(send(n).await, 202, "taking events again");
        n += 1;
    }
    let healthy = settle(Duration::from_secs(10), || health(&client, &base), |(s, _)| *s == 200).await;
    assert!(healthy.is_ok(), "health turns ok again: {healthy:?}");

    // Exactly the acknowledged events are counted: none lost, none twice.
    let query = query_body(SITE, &["pageviews"], json!({}));
    let count = settle(
        Duration::from_secs(30),
        || async {
            let response =
                client.post(format!("{base}/api/v2/query")).bearer_auth(&key).json(&query).send().await.unwrap();
            response.json::<Value>().await.map(|answer| totals(&answer)).unwrap_or_default()
        },
        |t| t.first() == Some(&(accepted as f64)),
    )
    .await;
    assert_eq!(count, Ok(vec![accepted as f64]), "every 202 counted once; stderr:\n{}", server.stderr());
    drop(server);
}
