//! Every socket has a timeout, connections are capped, and shutdown is bounded.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw;
use crate::support::*;

/// Waits until the server closes `conn` (EOF or reset), returning what it sent before.
async fn closed_within(conn: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).to_string()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_sent_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = TestServer::start_with(|c| c.header_timeout_ms = 300).await;
    let mut silent = connect(&server).await;
    let mut half = connect(&server).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    for (name, conn) in [("silent", &mut silent), ("half-sent headers", &mut half)] {
        assert!(
            closed_within(conn, Duration::from_secs(5)).await.is_some(),
            "{name} connection still open"
        );
    }
    // A keep-alive connection gets its answer, then is closed once idle.
    let sent = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(
        sent.as_deref()
            .is_some_and(|s| s.starts_with("HTTP/1.1 200")),
        "{sent:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_body_is_given_up_after_the_body_timeout() {
    let server = TestServer::start_with(|c| c.body_timeout_ms = 300).await;
    let mut conn = connect(&server).await;
    conn.write_all(b"POST /console/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=abc")
        .await
        .expect("write");
    let sent = closed_within(&mut conn, Duration::from_secs(5)).await;
    assert!(sent.is_some(), "the connection is still open");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_the_service_answers_once_idle_ones_time_out() {
    let server = TestServer::start_with(|c| {
        c.max_connections = 4;
        c.header_timeout_ms = 500;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&server).await);
    }
    // Accepted and closed at once: the cap is reached.
    let mut extra = connect(&server).await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = closed_within(&mut extra, Duration::from_secs(2)).await;
    assert_eq!(answer.as_deref(), Some(""), "{answer:?}");
    // The idle ones time out and free their slots.
    for conn in idle.iter_mut() {
        assert!(closed_within(conn, Duration::from_secs(5)).await.is_some());
    }
    let answer = raw(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_within_the_grace_while_a_client_holds_half_sent_headers() {
    let server = TestServer::start_with(|c| {
        c.shutdown_grace_ms = 500;
        c.header_timeout_ms = 600_000;
    })
    .await;
    let mut conn = connect(&server).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown finished");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(closed_within(&mut conn, Duration::from_secs(2))
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_are_answered_with_the_error_envelope() {
    let server = TestServer::start().await;
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    for (req, status, code) in [
        (b"GARBAGE\r\n\r\n".to_vec(), "400", "bad_request"),
        (huge.into_bytes(), "431", "headers_too_large"),
    ] {
        let answer = raw(&server, &req, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        let body = answer
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(v["error"]["code"], code, "{answer}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_from_outside_the_handlers_carry_the_error_envelope() {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let server = TestServer::start_with(|c| c.seal_key = Some(key)).await;
    let http = reqwest::Client::new();
    for (method, path, status, code) in [
        (
            reqwest::Method::DELETE,
            "/v1/events",
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::GET,
            "/v1/tenants/%FF%FE",
            400,
            "bad_request",
        ),
    ] {
        let resp = http
            .request(method.clone(), format!("{}{path}", server.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // A range outside a recording: the file server's own 416 gets the envelope too.
    server.tenant("acme").await;
    let ingest = super::ingest_token(&server, "acme").await;
    let resp = http
        .put(format!("{}/v1/recordings/f1", server.base))
        .bearer_auth(&ingest)
        .body(vec![1u8; 100])
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 201);
    let key = callhook::security::seal::Sealer::from_key([9; 32]).derive_key("recording-urls");
    let link = callhook::security::links::Links::new(&server.base, key).url(
        "acme",
        "f1",
        callhook::time::now_ms(),
    );
    let resp = http
        .get(&link)
        .header("range", "bytes=500-600")
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status().as_u16(), 416);
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "range_not_satisfiable", "{v}");
    server.stop().await;
}
