//! The HTTP server: hyper's HTTP/1.1 server, one task per connection, with the limits a public
//! listener needs — every socket has a timeout, connections are capped, and shutdown is bounded.
//!
//! - **Headers** must arrive within the header timeout, on a new connection (before the first
//!   byte too) and between keep-alive requests (so it is also the idle timeout).
//! - **Bodies**: a pause longer than the body timeout ends the request (routes that buffer a
//!   body also bound the whole read, see [`body`]).
//! - **Responses**: a client that stops reading for the write timeout loses the connection.
//! - **Connections** beyond the cap are closed as they arrive, with a warning in the log, so
//!   file descriptors are left for the store, the receivers and `/healthz`.
//! - **Shutdown**: the listener closes, connections finish their request and close, and after
//!   the grace period whatever is still open is dropped: a client holding half-sent headers
//!   cannot keep the process alive.
//!
//! HTTP/1.1 only: HTTP/2 in clear text (prior knowledge) is not served; put a TLS-terminating
//! proxy in front for HTTP/2.

pub mod body;
mod io;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Limits of the listener (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    /// How long shutdown waits for open connections.
    pub grace: Duration,
}

/// Largest request head (request line and headers) read, in bytes: more is answered 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// Serves `app` until `stop`, then drains connections for at most `limits.grace`.
pub async fn run(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut warned_at: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors (or a connection reset before accept): wait a little
                // rather than spin; the connections that hold them time out.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let now = tokio::time::Instant::now();
            if warned_at.is_none_or(|t| now - t > Duration::from_secs(10)) {
                warned_at = Some(now);
                tracing::warn!(
                    max = limits.max_connections,
                    %peer,
                    "connection limit reached (CALLHOOK_MAX_CONNECTIONS); closing new connections until some end"
                );
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(io::Guarded::new(tcp, limits.write_timeout));
        let svc = TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(io, svc).with_upgrades();
        let mut closed = closed.clone();
        conns.spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => log_end(r, peer),
                _ = async { drop(closed.wait_for(|c| *c).await) } => {
                    conn.as_mut().graceful_shutdown();
                    log_end(conn.await, peer);
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let open = conns.len();
    let drained = tokio::time::timeout(limits.grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            of = open,
            "connections still open when the shutdown grace ran out; closing them"
        );
        conns.abort_all();
    }
}

fn log_end(r: Result<(), hyper::Error>, peer: SocketAddr) {
    if let Err(e) = r {
        tracing::debug!(error = %e, %peer, "connection ended");
    }
}
