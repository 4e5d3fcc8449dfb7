//! Request bodies cannot be used to spend the server's memory.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{ingest_token, raw};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_is_refused_before_its_body_is_read() {
    let server = TestServer::start().await;
    server.tenant("acme").await;
    let viewer = super::token(&server, "tenant_viewer", "acme").await;
    // Headers promise a body that never comes: the answer must not wait for it.
    let head = format!(
        "POST /v1/tenants/acme/integrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {viewer}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    );
    let started = Instant::now();
    let answer = raw(&server, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("\"code\":\"forbidden\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_over_the_routes_limit_is_refused_at_once() {
    let server = TestServer::start().await;
    server.tenant("acme").await;
    let ingest = ingest_token(&server, "acme").await;
    for (path, auth) in [
        ("/console/login", String::new()),
        (
            "/v1/tenants/acme/integrations",
            format!("Authorization: Bearer {ADMIN}\r\n"),
        ),
        ("/v1/events", format!("Authorization: Bearer {ingest}\r\n")),
    ] {
        // 8 MiB declared (over every limit but the recordings'), nothing sent.
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 8388609\r\n\r\n");
        let answer = raw(&server, head.as_bytes(), Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large"), "{path}: {answer}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_forms_take_tens_of_kib_not_megabytes() {
    let server = TestServer::start().await;
    // No declared length (chunked): the limit applies as the body is read.
    let form = format!("token={}", "A".repeat(200 * 1024));
    let mut req = format!(
        "POST /console/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        form.len()
    )
    .into_bytes();
    req.extend_from_slice(form.as_bytes());
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = raw(&server, &req, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_bodies_share_one_memory_budget() {
    let server = TestServer::start_with(|c| {
        c.max_body_bytes = 1024 * 1024;
        c.body_memory_bytes = 1024 * 1024;
        c.body_timeout_ms = 1_000;
    })
    .await;
    server.tenant("acme").await;
    let ingest = ingest_token(&server, "acme").await;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ingest}\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{{\"events\": ["
    );
    // The first request takes the whole budget and trickles its body.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut first = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut first, head.as_bytes())
        .await
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = server.admin().get("/metrics").await;
        if metrics
            .as_str()
            .is_some_and(|m| m.contains("callhook_request_body_bytes 1048576"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first body never took the budget"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The second finds it spent and is told at once to come back.
    let started = Instant::now();
    let answer = raw(&server, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"busy\""), "{answer}");
    assert!(started.elapsed() < Duration::from_millis(900));
    // The first one, never finished, is given up at the body deadline and frees its share.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut first, &mut buf),
    )
    .await
    .expect("answered")
    .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    let (st, _) = server
        .api(&ingest)
        .post(
            "/v1/events",
            event("ok", "acme", "ivr.input", "c", json!({"dtmf": "1"})),
        )
        .await;
    assert_eq!(st, 202);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_whose_parsed_form_would_outgrow_the_memory_budget_is_refused() {
    let server = TestServer::start_with(|c| c.body_memory_bytes = 2 * 1024 * 1024).await;
    server.tenant("acme").await;
    // 200 KiB on the wire, but 100 000 values once parsed (~13 MB): more than the budget.
    let zeros = vec!["0"; 100_000].join(",");
    let mut e = event("e1", "acme", "ivr.input", "c1", json!({"dtmf": "1"}));
    e["data"]["junk"] = json!("PLACEHOLDER");
    let body = e
        .to_string()
        .replace("\"PLACEHOLDER\"", &format!("[{zeros}]"));
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 413);
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "payload_too_complex", "{v}");
    // The same event without the bulk goes in.
    let (st, _) = server
        .ingest(event("e1", "acme", "ivr.input", "c1", json!({"dtmf": "1"})))
        .await;
    assert_eq!(st, 202);
    server.stop().await;
}
