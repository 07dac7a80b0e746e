//! The HTTP server loop of every Tally server (`tally serve`, `tally query`, `tally ingest`'s
//! metrics endpoint), with the limits `axum::serve` does not set, so that no client can hold the
//! server or its shutdown: a header read timeout (hyper starts it whenever a connection waits
//! for a request head, so it is also the idle keep-alive timeout and the timeout of a
//! connection that sends nothing), a body read timeout, a cap on open connections (at the cap
//! the server stops accepting until one closes) and a drain deadline on shutdown, after which
//! open connections are dropped.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// The limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a connection may take to send a request's head, counted from when it starts
    /// waiting for one (so also how long a kept-alive connection may idle).
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for open requests before it drops their connections.
    pub drain: Duration,
}

/// Default header (and idle) timeout, seconds.
pub const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
/// Default body timeout, seconds.
pub const DEFAULT_BODY_TIMEOUT_S: u64 = 30;
/// Default connection cap.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1_024;
/// Default drain deadline, seconds.
pub const DEFAULT_DRAIN_S: u64 = 10;

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_S),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_S),
            max_connections: usize::try_from(DEFAULT_MAX_CONNECTIONS).unwrap_or(usize::MAX),
            drain: Duration::from_secs(DEFAULT_DRAIN_S),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then lets open
/// requests finish for up to the drain deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(limits.body_timeout));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app.clone().layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _slot = slot;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!(open = connections.len(), drain_s = limits.drain.as_secs(), "connections still open after the drain deadline: dropped");
        }
    }
    connections.abort_all();
    Ok(())
}
