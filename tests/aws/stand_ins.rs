//! Starting and stopping the stand-ins: kinesalite as a node child process, dynoxide in-process,
//! a moto server (S3) as a Python child process shared by the whole test binary, all on
//! 127.0.0.1 and a free port, and SDK clients pointed at them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tally_core::aws::clients::{AwsSettings, Endpoints};

/// A running kinesalite, killed on drop.
pub struct Kinesalite {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Kinesalite {
    /// Starts kinesalite (in memory) on a free port. Needs `npm ci --prefix tests/stand-ins`.
    pub fn start() -> Kinesalite {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/stand-ins");
        assert!(
            dir.join("node_modules/kinesalite").exists(),
            "kinesalite is not installed: run `npm ci --prefix tests/stand-ins` (scripts/test does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("kinesalite.js"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("kinesalite prints its address");
        let url =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {line:?}")).to_owned();
        Kinesalite { child, url }
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A dynoxide server on a free port, with an in-memory database, running on its own thread
/// until the test process ends.
pub struct Dynoxide {
    /// Its base URL.
    pub url: String,
}

impl Dynoxide {
    /// Starts dynoxide.
    pub fn start() -> Dynoxide {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                dynoxide::server::serve_on(listener, dynoxide::Database::memory().unwrap()).await;
            });
        });
        let address = rx.recv_timeout(Duration::from_secs(10)).expect("dynoxide starts");
        Dynoxide { url: format!("http://{address}") }
    }
}

/// Settings for SDK clients against the given stand-ins, with static test credentials.
pub fn settings(kinesis: Option<&str>, dynamodb: Option<&str>) -> AwsSettings {
    AwsSettings {
        region: "us-east-1".into(),
        endpoints: Endpoints {
            kinesis: kinesis.map(str::to_owned),
            dynamodb: dynamodb.map(str::to_owned),
            s3: Some(moto_s3().to_owned()),
        },
        static_credentials: true,
    }
}

/// The URL of the moto server (S3) of this test process, started on first use. It exits when
/// this process does (its standard input closes). Needs the venv that `scripts/test` makes
/// (`TALLY_MOTO_VENV`, default `~/.cache/tally-moto`).
pub fn moto_s3() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let venv = std::env::var_os("TALLY_MOTO_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tally-moto"));
        let python = venv.join("bin/python");
        assert!(python.exists(), "moto is not installed in {}: run scripts/test (it installs it)", venv.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/stand-ins/moto_s3.py");
        let child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python runs");
        // Never dropped: its standard input stays open until this process exits.
        std::mem::forget(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
}
