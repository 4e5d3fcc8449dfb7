//! Regression tests for the holes found when the service was attacked as a hostile tenant and a
//! hostile client would: each test is named after the hole it closes.

mod bodies;
mod config;
mod connections;
mod recordings;
mod routing;
mod settings;
mod tokens;

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A token of `role` for `tenant`, minted by the operator.
pub async fn token(server: &TestServer, role: &str, tenant: &str) -> String {
    let (st, tok) = server
        .admin()
        .post(
            "/v1/tokens",
            json!({"role": role, "tenant_id": tenant, "name": role}),
        )
        .await;
    assert_eq!(st, 201, "{tok}");
    tok["token"].as_str().unwrap_or_default().to_string()
}

/// An ingest token for `tenant`.
pub async fn ingest_token(server: &TestServer, tenant: &str) -> String {
    token(server, "ingest", tenant).await
}

/// Sends raw bytes on a new connection and returns what comes back before the server closes
/// the connection or `wait` passes (then whatever arrived, possibly nothing).
pub async fn raw(server: &TestServer, bytes: &[u8], wait: Duration) -> String {
    let addr = server.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                out.extend_from_slice(&buf[..n]);
                // One complete response is enough.
                if complete(&out) {
                    break;
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

fn complete(resp: &[u8]) -> bool {
    let text = String::from_utf8_lossy(resp);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    body.len() >= len
}
