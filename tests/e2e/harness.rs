//! The harness: temporary data directories, the `tally` CLI, one `tally serve` child per test
//! (killed when dropped), visitors with realistic browser headers, and HTTP and polling helpers.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary under test.
pub const TALLY: &str = env!("CARGO_BIN_EXE_tally");
/// How long `tally serve` may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a CLI command may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to stop after SIGTERM or SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default deadline of [`eventually`].
pub const POLL_DEADLINE: Duration = Duration::from_secs(10);
/// `TALLY_LOG` for every child: quiet (`warn`) unless `TALLY_E2E_LOG` asks for more.
fn log_filter() -> String {
    std::env::var("TALLY_E2E_LOG").unwrap_or_else(|_| "warn".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Temporary directories and child processes
// ---------------------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tally-e2e-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Copies everything a reader yields into a shared buffer, on a thread of its own.
fn drain<R: Read + Send + 'static>(mut reader: R) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    let thread = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = reader.read(&mut chunk) {
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    (buffer, thread)
}

fn text(buffer: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

/// Waits for a child to exit, at most `timeout`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a CLI command did.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Starts a `tally` command with the test log filter, no stdin, and piped stdout and stderr.
fn spawn_tally(command: &mut Command) -> Child {
    command
        .env("TALLY_LOG", log_filter())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {TALLY}: {e}"))
}

/// Runs `tally ARGS…` to completion (killing it after [`CLI_TIMEOUT`]).
pub fn run_cli(args: &[&str]) -> CliOutput {
    let mut child = spawn_tally(Command::new(TALLY).args(args));
    let (stdout, out_thread) = drain(child.stdout.take().unwrap());
    let (stderr, err_thread) = drain(child.stderr.take().unwrap());
    let status = wait_timeout(&mut child, CLI_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = out_thread.join();
    let _ = err_thread.join();
    let (stdout, stderr) = (text(&stdout), text(&stderr));
    let Some(status) = status else {
        panic!(
            "`tally {}` did not finish within {CLI_TIMEOUT:?}; stdout {stdout:?}; stderr:\n{stderr}",
            args.join(" ")
        );
    };
    CliOutput { status, stdout, stderr }
}

/// Runs `tally ARGS…`, asserts exit status 0 and returns its stdout.
pub fn tally_ok(args: &[&str]) -> String {
    let out = run_cli(args);
    assert!(
        out.status.success(),
        "`tally {}` exited with {}; stdout {:?}; stderr:\n{}",
        args.join(" "),
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// `tally site add DOMAIN [--timezone TZ] --data-dir DIR`.
pub fn site_add(data_dir: &Path, domain: &str, timezone: Option<&str>) {
    let dir = data_dir.to_str().unwrap();
    let mut args = vec!["site", "add", domain];
    if let Some(tz) = timezone {
        args.extend(["--timezone", tz]);
    }
    args.extend(["--data-dir", dir]);
    tally_ok(&args);
}

/// `tally key create --site DOMAIN --data-dir DIR`; checks that stdout is the key alone.
pub fn key_create(data_dir: &Path, site: &str) -> String {
    let out = tally_ok(&["key", "create", "--site", site, "--data-dir", data_dir.to_str().unwrap()]);
    let key = out.strip_suffix('\n').unwrap_or(&out);
    assert!(
        is_api_key(key),
        "`tally key create` should print the new key alone on one line (`tally_` + 64 hex chars); stdout was {out:?}"
    );
    key.to_owned()
}

/// Whether `s` has the shape of an API key: `tally_` and 64 hex digits.
pub fn is_api_key(s: &str) -> bool {
    s.strip_prefix("tally_").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One running `tally serve`, killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    base: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Spawns `tally serve --listen 127.0.0.1:0 --data-dir DIR --trust-proxy EXTRA…` and waits
    /// for the `listening on http://…` line on its stdout.
    pub fn spawn(data_dir: &Path, extra_args: &[&str]) -> ServerProcess {
        let mut command = Command::new(TALLY);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--trust-proxy")
            .args(extra_args);
        let mut child = spawn_tally(&mut command);
        let (stderr, stderr_thread) = drain(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let later_lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = later_lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let read = reader.read_line(&mut first).map(|_| first);
            let _ = tx.send(read);
            // Keep reading (and the lines) so that the server never blocks on a full pipe.
            for line in reader.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let outcome = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) => parse_listening_line(&line).ok_or_else(|| format!("unexpected first stdout line {line:?}")),
            Ok(Err(e)) => Err(format!("reading its stdout failed: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("no stdout line within {STARTUP_TIMEOUT:?}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("its stdout closed".to_owned()),
        };
        match outcome {
            Ok(base) => ServerProcess { child, base, stderr, stdout: later_lines },
            Err(why) => {
                let _ = child.kill();
                let status = child.wait();
                let _ = stderr_thread.join();
                panic!("`tally serve` did not start ({why}); exit status {status:?}; stderr:\n{}", text(&stderr));
            }
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines the server wrote to stdout after its `listening on` line, so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`TERM`, `INT`) and waits for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(sent.success(), "kill -{signal} failed: {sent}");
        wait_timeout(&mut self.child, STOP_TIMEOUT).unwrap_or_else(|| {
            panic!("`tally serve` did not exit within {STOP_TIMEOUT:?} of SIG{signal}; stderr:\n{}", self.stderr())
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `listening on http://127.0.0.1:PORT` → `http://127.0.0.1:PORT`.
fn parse_listening_line(line: &str) -> Option<String> {
    let addr = line.trim_end_matches(['\r', '\n']).strip_prefix("listening on http://")?;
    let socket: std::net::SocketAddr = addr.parse().ok()?;
    (socket.ip().is_loopback() && socket.port() != 0).then(|| format!("http://{socket}"))
}

// ---------------------------------------------------------------------------------------------
// The test server
// ---------------------------------------------------------------------------------------------

/// A data directory with some sites and one key per site, and `tally serve` running on it.
pub struct TestServer {
    // Declared first so that it is dropped (killed) before the directory is removed.
    process: Option<ServerProcess>,
    client: reqwest::Client,
    keys: BTreeMap<String, String>,
    dir: TempDir,
}

impl TestServer {
    /// Registers `sites` (one key each) and starts the server.
    pub fn start(tag: &str, sites: &[&str]) -> TestServer {
        TestServer::start_with(tag, sites, &[])
    }

    /// As [`TestServer::start`], with extra `tally serve` arguments.
    pub fn start_with(tag: &str, sites: &[&str], extra_args: &[&str]) -> TestServer {
        let dir = TempDir::new(tag);
        let mut keys = BTreeMap::new();
        for site in sites {
            site_add(dir.path(), site, None);
            keys.insert((*site).to_owned(), key_create(dir.path(), site));
        }
        let process = ServerProcess::spawn(dir.path(), extra_args);
        TestServer { process: Some(process), client: http_client(), keys, dir }
    }

    fn process(&self) -> &ServerProcess {
        self.process.as_ref().expect("the server is not running")
    }

    /// The server's resident memory now and at its peak, in KiB (from `/proc`).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process().pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn base(&self) -> &str {
        self.process().base()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The key created for `site`.
    pub fn key(&self, site: &str) -> &str {
        self.keys.get(site).unwrap_or_else(|| panic!("no key for {site}"))
    }

    /// Remembers a key made later (e.g. by the CLI while serving).
    pub fn set_key(&mut self, site: &str, key: String) {
        self.keys.insert(site.to_owned(), key);
    }

    pub fn stderr(&self) -> String {
        self.process.as_ref().map(ServerProcess::stderr).unwrap_or_default()
    }

    /// SIGKILL the server (no chance to flush anything).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Sends SIGTERM or SIGINT and waits for the exit; returns its status and stderr.
    pub fn stop_with(&mut self, signal: &str) -> (ExitStatus, String) {
        let mut process = self.process.take().expect("the server is not running");
        let status = process.signal_and_wait(signal);
        (status, process.stderr())
    }

    /// Starts the server again on the same data directory (it gets a new port).
    pub fn start_again(&mut self, extra_args: &[&str]) {
        assert!(self.process.is_none(), "stop the server before starting it again");
        self.process = Some(ServerProcess::spawn(self.dir.path(), extra_args));
    }

    /// POSTs a body to `/api/event`; panics if there is no HTTP answer.
    pub async fn post_event(&self, body: impl Into<Vec<u8>>, headers: &[(String, String)]) -> Answer {
        let body = body.into();
        post_event(&self.client, self.base(), body, headers)
            .await
            .unwrap_or_else(|e| panic!("POST /api/event: no answer: {e:?}; server stderr:\n{}", self.stderr()))
    }

    /// GET with an optional bearer key; returns status and body.
    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let mut request = self.client.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("GET {path}: {e:?}"));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// POSTs a raw query body with the given `Authorization` header value (if any).
    pub async fn query_with_auth(&self, authorization: Option<&str>, body: &[u8]) -> (u16, String) {
        let mut request =
            self.client.post(self.url("/api/v2/query")).header("Content-Type", "application/json").body(body.to_vec());
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("POST /api/v2/query: {e:?}"));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// POSTs a query with `Bearer KEY`; returns status and body.
    pub async fn query_raw(&self, key: &str, body: &Value) -> (u16, String) {
        self.query_with_auth(Some(&format!("Bearer {key}")), body.to_string().as_bytes()).await
    }

    /// Runs a query with the key of its `site_id`; `Ok(json)` on 200, otherwise `Err(status and body)`.
    pub async fn query(&self, body: &Value) -> Result<Value, String> {
        let site = body["site_id"].as_str().expect("query without site_id");
        let (status, text) = self.query_raw(self.key(site), body).await;
        if status != 200 {
            return Err(format!("{status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("200 but not JSON ({e}): {text}"))
    }

    /// The one-row totals of a query (`results[0].metrics`).
    pub async fn totals(&self, body: &Value) -> Result<Vec<f64>, String> {
        self.query(body).await.map(|answer| totals(&answer))
    }

    /// `GET /api/v2/drops?site_id=SITE` with the site's key: per-reason counts, zeros left out.
    pub async fn drops(&self, site: &str) -> Result<BTreeMap<String, u64>, String> {
        let (status, text) = self.get(&format!("/api/v2/drops?site_id={site}"), Some(self.key(site))).await;
        if status != 200 {
            return Err(format!("{status} {text}"));
        }
        let answer: Value = serde_json::from_str(&text).map_err(|e| format!("200 but not JSON ({e}): {text}"))?;
        if answer["site_id"] != site {
            return Err(format!("site_id is not {site}: {text}"));
        }
        let drops = answer["drops"].as_object().ok_or_else(|| format!("no drops object: {text}"))?;
        let mut counts = BTreeMap::new();
        for (reason, count) in drops {
            let count = count.as_u64().ok_or_else(|| format!("count of {reason} is not a number: {text}"))?;
            if count > 0 {
                counts.insert(reason.clone(), count);
            }
        }
        Ok(counts)
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// A client that never goes through a proxy from the environment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT).build().unwrap()
}

/// As [`http_client`], but each request on a new connection, so that requests cannot disturb
/// each other through a shared keep-alive connection.
pub fn http_client_unpooled() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT).pool_max_idle_per_host(0).build().unwrap()
}

/// The answer to `POST /api/event`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// `X-Tally-Accepted`, parsed.
    pub accepted: Option<u64>,
    /// `X-Tally-Dropped`, split on commas; empty when the header is absent.
    pub dropped: Vec<String>,
    /// The raw `X-Tally-Dropped`, if any.
    pub dropped_header: Option<String>,
}

impl Answer {
    /// The `error` field of a JSON error body.
    pub fn error(&self) -> Option<String> {
        let body: Value = serde_json::from_str(&self.body).ok()?;
        body["error"].as_str().map(str::to_owned)
    }
}

/// POSTs `body` to `BASE/api/event` with the given headers.
pub async fn post_event(
    client: &reqwest::Client,
    base: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> reqwest::Result<Answer> {
    let mut request = client.post(format!("{base}/api/event")).body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let accepted = header("x-tally-accepted").and_then(|v| v.trim().parse().ok());
    let dropped_header = header("x-tally-dropped");
    let dropped = dropped_header
        .as_deref()
        .map(|v| v.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let body = response.text().await?;
    Ok(Answer { status, body, accepted, dropped, dropped_header })
}

// ---------------------------------------------------------------------------------------------
// Visitors and events
// ---------------------------------------------------------------------------------------------

/// A simulated browser: its own IP (through `X-Forwarded-For`), Chrome user agent and, optionally,
/// a country, region and city (through `CF-IPCountry`, `CF-Region-Code` and `CF-IPCity`).
#[derive(Debug, Clone)]
pub struct Visitor {
    pub ip: String,
    pub user_agent: String,
    pub country: Option<String>,
    /// (region code, city).
    pub place: Option<(String, String)>,
}

impl Visitor {
    /// Visitor number `n` (< 65 000): distinct IP and user agent for distinct `n`.
    pub fn new(n: u32) -> Visitor {
        assert!(n < 65_000);
        let host = n + 1;
        let ip = format!("198.18.{}.{}", host / 256, host % 256);
        Visitor { ip, user_agent: chrome_ua(n), country: None, place: None }
    }

    pub fn in_country(mut self, country: &str) -> Visitor {
        self.country = Some(country.to_owned());
        self
    }

    /// In `region` (its code, as Cloudflare's `CF-Region-Code` sends it) and `city`.
    pub fn in_place(mut self, region: &str, city: &str) -> Visitor {
        self.place = Some((region.to_owned(), city.to_owned()));
        self
    }

    /// The headers a tracker request from this visitor carries.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("User-Agent".to_owned(), self.user_agent.clone()),
            ("X-Forwarded-For".to_owned(), self.ip.clone()),
        ];
        if let Some(country) = &self.country {
            headers.push(("CF-IPCountry".to_owned(), country.clone()));
        }
        if let Some((region, city)) = &self.place {
            headers.push(("CF-Region-Code".to_owned(), region.clone()));
            headers.push(("CF-IPCity".to_owned(), city.clone()));
        }
        headers
    }
}

/// A realistic desktop Chrome user agent, different for each `n`.
pub fn chrome_ua(n: u32) -> String {
    const PLATFORMS: [&str; 4] = [
        "Windows NT 10.0; Win64; x64",
        "Macintosh; Intel Mac OS X 10_15_7",
        "X11; Linux x86_64",
        "Windows NT 10.0; WOW64",
    ];
    let platform = PLATFORMS[(n % 4) as usize];
    let major = 118 + n % 8;
    format!(
        "Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.{}.{} Safari/537.36",
        6000 + n % 97,
        n
    )
}

/// A pageview of `https://DOMAIN/PATH`, with long keys.
pub fn pageview(domain: &str, path: &str) -> Value {
    json!({"name": "pageview", "url": format!("https://{domain}{path}"), "domain": domain})
}

// ---------------------------------------------------------------------------------------------
// Queries and polling
// ---------------------------------------------------------------------------------------------

/// A Stats API v2 query: `site_id`, `metrics`, `date_range: "day"`, plus the members of `extra`
/// (e.g. `{"dimensions": [...], "filters": [...]}`), which may override those.
pub fn query_body(site: &str, metrics: &[&str], extra: Value) -> Value {
    let mut body = json!({"site_id": site, "metrics": metrics, "date_range": "day"});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// `results[0].metrics` as numbers (NaN for anything else); empty when there is no row.
pub fn totals(answer: &Value) -> Vec<f64> {
    answer["results"][0]["metrics"]
        .as_array()
        .map(|metrics| metrics.iter().map(|m| m.as_f64().unwrap_or(f64::NAN)).collect())
        .unwrap_or_default()
}

/// Every result row: its dimension values as text and its metrics as numbers.
pub fn rows(answer: &Value) -> Vec<(Vec<String>, Vec<f64>)> {
    let Some(results) = answer["results"].as_array() else { return Vec::new() };
    results
        .iter()
        .map(|row| {
            let dimensions = row["dimensions"].as_array().map_or_else(Vec::new, |ds| {
                ds.iter().map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned)).collect()
            });
            let metrics = row["metrics"]
                .as_array()
                .map_or_else(Vec::new, |ms| ms.iter().map(|m| m.as_f64().unwrap_or(f64::NAN)).collect());
            (dimensions, metrics)
        })
        .collect()
}

/// Calls `probe` every 50 ms until `done` holds for its value and returns `Ok` with that value;
/// `Err` with the last value seen once `deadline` has passed.
pub async fn settle<T, F, Fut>(deadline: Duration, mut probe: F, done: impl Fn(&T) -> bool) -> Result<T, T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let give_up = Instant::now() + deadline;
    loop {
        let value = probe().await;
        if done(&value) {
            return Ok(value);
        }
        if Instant::now() >= give_up {
            return Err(value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// As [`settle`], but panics with `what` and the last value seen when the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, probe: F, done: impl Fn(&T) -> bool) -> T
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    settle(deadline, probe, done)
        .await
        .unwrap_or_else(|last| panic!("{what}: not reached within {deadline:?}; last value seen: {last:?}"))
}

/// Awaits every task, re-raising the first panic as it was (so its message is the test's).
pub async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(value) => out.push(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("task failed: {e}"),
        }
    }
    out
}
