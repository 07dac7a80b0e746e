//! The import socket of `tally serve`, so that `tally import` works while the server runs:
//! `<data dir>/import.sock`, a Unix socket only the data directory's owner can use (mode 0600).
//!
//! `tally import` sends the line [`HEADER`], then its NDJSON lines, then closes its writing half.
//! The server runs the lines through the same [`Importer`] into its own log, waits until its
//! aggregator has applied everything logged so far, and answers one JSON line: the [`Summary`],
//! or `{"error": "…"}`.

use super::Summary;
use super::lines::Importer;
use crate::embedded::store::Store;
use anyhow::Context;
use indicatif::ProgressBar;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "import.sock";
/// The first line a client sends: the protocol and its version.
pub const HEADER: &str = "tally-import 1";
/// A connection that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a waiting read looks whether the server is stopping.
const TICK: Duration = Duration::from_millis(200);
/// The longest the server waits for its aggregator to move on before answering anyway.
const APPLY_PATIENCE: Duration = Duration::from_secs(120);

/// The socket's path for a data directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

/// The listening socket; its file is removed when this is dropped.
pub struct ImportSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
    stopping: Arc<AtomicBool>,
}

impl Drop for ImportSocket {
    fn drop(&mut self) {
        // Imports under way stop at their next read, so shutdown never waits for a client.
        self.stopping.store(true, Ordering::Relaxed);
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts taking imports on the data directory's socket (a stale file from a killed server is
/// replaced: the caller holds the data directory's log, so no other server uses it). Without a
/// socket (for example a path too long for one) the server runs on and `tally import` says so.
pub fn listen(dir: &Path, importer: Importer, store: Arc<Store>) -> Option<ImportSocket> {
    let path = path(dir);
    let _ = std::fs::remove_file(&path);
    let bound = tokio::net::UnixListener::bind(&path)
        .and_then(|listener| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map(|_| listener));
    let listener = match bound {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "no import socket: `tally import` needs the server stopped");
            return None;
        }
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = stopping.clone();
    let task = tokio::spawn(async move {
        loop {
            let (connection, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "import socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (importer, store, stop) = (importer.clone(), store.clone(), stop.clone());
            let runtime = tokio::runtime::Handle::current();
            let stream = match connection.into_std() {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "import socket: cannot take the connection");
                    continue;
                }
            };
            tokio::task::spawn_blocking(move || serve_one(stream, &importer, &store, &runtime, &stop));
        }
    });
    Some(ImportSocket { path, task, stopping })
}

/// Takes one import and answers it.
fn serve_one(
    stream: UnixStream,
    importer: &Importer,
    store: &Store,
    runtime: &tokio::runtime::Handle,
    stopping: &AtomicBool,
) {
    let started = Instant::now();
    let answer = take_import(&stream, importer, store, runtime, stopping);
    let line = match &answer {
        Ok(summary) => serde_json::to_string(summary).unwrap_or_default(),
        Err(error) => serde_json::json!({ "error": format!("{error:#}") }).to_string(),
    };
    match &answer {
        Ok(summary) => tracing::info!(
            accepted = summary.accepted,
            duplicates = summary.duplicates,
            took_ms = started.elapsed().as_millis() as u64,
            "import through the socket done"
        ),
        Err(error) => tracing::warn!(error = format!("{error:#}"), "import through the socket failed"),
    }
    let mut writer = &stream;
    if let Err(error) = writer.write_all(format!("{line}\n").as_bytes()) {
        tracing::warn!(%error, "import socket: the client left before the answer");
    }
}

fn take_import(
    stream: &UnixStream,
    importer: &Importer,
    store: &Store,
    runtime: &tokio::runtime::Handle,
    stopping: &AtomicBool,
) -> anyhow::Result<Summary> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TICK))?;
    let mut reader = BufReader::with_capacity(1 << 20, UntilStopping { stream, stopping });
    let mut header = String::new();
    (&mut reader).take(64).read_line(&mut header)?;
    anyhow::ensure!(header.trim_end() == HEADER, "not a tally import (expected the line `{HEADER}` first)");
    let summary = importer.read_all(&mut reader, runtime, &mut |_, _| {})?;
    wait_applied(importer, store, stopping)?;
    Ok(summary)
}

/// The connection, ending in an error once the server is stopping.
struct UntilStopping<'a> {
    stream: &'a UnixStream,
    stopping: &'a AtomicBool,
}

impl Read for UntilStopping<'_> {
    /// Reads in ticks of [`TICK`], so a client that sends nothing holds neither shutdown nor
    /// (past [`READ_TIMEOUT`]) the connection.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let idle = Instant::now();
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("tally serve is stopping"));
            }
            match self.stream.read(buf) {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if idle.elapsed() >= READ_TIMEOUT {
                        return Err(std::io::Error::new(ErrorKind::TimedOut, "the client sent nothing for 300 s"));
                    }
                }
                other => return other,
            }
        }
    }
}

/// Waits until the store has applied the log as far as it reaches now.
fn wait_applied(importer: &Importer, store: &Store, stopping: &AtomicBool) -> anyhow::Result<()> {
    let head = *importer.log().head().borrow();
    let (mut last, mut moved) = (store.progress()?.offset, Instant::now());
    while last < head {
        anyhow::ensure!(
            !stopping.load(Ordering::Relaxed),
            "tally serve is stopping: the events are in its log and are counted before it stops, or when it starts again"
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = store.progress()?.offset;
        if now != last {
            (last, moved) = (now, Instant::now());
        }
        anyhow::ensure!(
            moved.elapsed() < APPLY_PATIENCE,
            "the events are in the log, but the aggregator has not moved for {} s (offset {last} of {head}); see the server's log",
            APPLY_PATIENCE.as_secs()
        );
    }
    Ok(())
}

/// The socket of a `tally serve` running on `dir`, if one answers.
pub fn connect(dir: &Path) -> anyhow::Result<Option<UnixStream>> {
    let path = path(dir);
    match UnixStream::connect(&path) {
        Ok(stream) => Ok(Some(stream)),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => Err(error).with_context(|| {
            format!("cannot use the import socket {} of the running server: run as its owner", path.display())
        }),
        // Not there, or a stale file of a server that stopped: no server to import through.
        Err(_) => Ok(None),
    }
}

/// Sends the input to the server and returns its answer (blocking).
pub fn send(stream: UnixStream, mut reader: Box<dyn BufRead + Send>, bar: &ProgressBar) -> anyhow::Result<Summary> {
    let sent = (|| -> std::io::Result<()> {
        let mut writer = BufWriter::with_capacity(1 << 20, &stream);
        writer.write_all(format!("{HEADER}\n").as_bytes())?;
        loop {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            writer.write_all(chunk)?;
            let n = chunk.len();
            reader.consume(n);
            bar.inc(n as u64);
        }
        writer.flush()?;
        drop(writer);
        stream.shutdown(std::net::Shutdown::Write)
    })();
    bar.set_message("sent; tally serve is aggregating");
    let mut answer = String::new();
    let read = BufReader::new(&stream).read_line(&mut answer);
    bar.finish_and_clear();
    let value: serde_json::Value = match (read, serde_json::from_str(&answer)) {
        (Ok(_), Ok(value)) => value,
        _ => {
            let why = sent.err().map_or_else(String::new, |e| format!(" ({e})"));
            anyhow::bail!(
                "tally serve closed the import socket without an answer{why}: it may have stopped; run the import again (nothing is counted twice)"
            );
        }
    };
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("tally serve refused the import: {error}");
    }
    serde_json::from_value(value).context("reading the server's answer")
}
