//! Starting and stopping the Worker under `wrangler dev --env test` on a free port, with its
//! own local state directory and site settings seeded into its KV namespace.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One Worker at a time: each workerd takes ~0.5 GB and both cores while starting.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The admin token the tests give the Worker.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A running Worker; stopped (with its whole process group) on drop.
pub struct Worker {
    child: Child,
    /// Its base URL.
    pub url: String,
    state: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

fn edge_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../edge")
}

fn wrangler(edge: &Path) -> Command {
    let mut command = Command::new("node");
    command
        .arg(edge.join("node_modules/wrangler/bin/wrangler.js"))
        .current_dir(edge)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CI", "true");
    command
}

/// Writes `sites` (domain, settings JSON) into the local `SITES` namespace kept in `state`.
fn put_sites(edge: &Path, state: &Path, sites: &[(&str, &str)]) {
    let bulk: Vec<_> = sites.iter().map(|(key, value)| serde_json::json!({ "key": key, "value": value })).collect();
    let file = state.join("sites.json");
    std::fs::write(&file, serde_json::to_vec(&bulk).unwrap()).unwrap();
    let status = wrangler(edge)
        .args(["kv", "bulk", "put", file.to_str().unwrap(), "--binding", "SITES", "--env", "test", "--local"])
        .args(["--persist-to", state.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "writing the SITES namespace failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Worker {
    /// Starts the Worker forwarding to `kinesis`, with `sites` (domain, settings JSON) in KV.
    pub async fn start(kinesis: &str, sites: &[(&str, &str)]) -> Worker {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let edge = edge_dir();
        assert!(edge.join("build/index.js").exists(), "the Worker is not built: run edge/scripts/build");
        assert!(edge.join("node_modules/wrangler").exists(), "wrangler is not installed: run npm ci --prefix edge");
        let state = std::env::temp_dir().join(format!("tally-edge-test-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&state).unwrap();
        if !sites.is_empty() {
            put_sites(&edge, &state, sites);
        }
        let port = free_port();
        let mut command = wrangler(&edge);
        command
            .args(["dev", "--env", "test", "--local", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string(), "--show-interactive-dev-session=false"])
            .args(["--persist-to", state.to_str().unwrap()])
            .args(["--var", &format!("KINESIS_ENDPOINT:{kinesis}")])
            .args(["--var", "AWS_ACCESS_KEY_ID:test", "--var", "AWS_SECRET_ACCESS_KEY:test"])
            .args(["--var", &format!("ADMIN_TOKEN:{ADMIN_TOKEN}")])
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(state.join("wrangler.log")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(state.join("wrangler.err")).unwrap()));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().unwrap();
        let worker = Worker { child, url: format!("http://127.0.0.1:{port}"), state, _turn: turn };
        worker.wait_ready().await;
        worker
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if client.get(format!("{}/api/health", self.url)).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the Worker did not start within 90 s; log:\n{}", self.log());
    }

    /// Writes site settings into the running Worker's local KV namespace, as an operator would
    /// with `wrangler kv key put`.
    #[allow(dead_code, reason = "not every test changes settings")]
    pub fn put_sites(&self, sites: &[(&str, &str)]) {
        put_sites(&edge_dir(), &self.state, sites);
    }

    /// The workerd processes serving this Worker (wrangler's process group).
    #[allow(dead_code, reason = "used by the ignored CPU measurement only")]
    pub fn workerd_pids(&self) -> Vec<u32> {
        let group = self.child.id().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((head, rest)) = stat.rsplit_once(')') else { continue };
            // Field 5 (the 3rd after the name) is the process group.
            if head.ends_with("(workerd") && rest.split_whitespace().nth(2) == Some(group.as_str()) {
                pids.push(pid);
            }
        }
        pids
    }

    /// What wrangler printed so far (request lines, queue batches, console output).
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.state.join(name)).unwrap_or_default();
        format!("{}{}", read("wrangler.log"), read("wrangler.err"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // wrangler starts workerd as a child: end the whole process group.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
