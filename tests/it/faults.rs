//! Receivers that misbehave on the wire: each is classified, holds a worker no longer than the
//! integration's timeout, keeps no more of a response than the log's excerpt, and never delays
//! other endpoints.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Not HTTP at all.
    Garbage,
    /// 200 and its headers, then never the body.
    HeadersOnly,
    /// A 200 whose body comes a byte at a time, for longer than the timeout.
    Trickle,
    /// A 200 with a 50 MB body.
    Huge,
    /// Half a response, then a reset.
    ResetMidResponse,
    /// Every response closes the connection.
    CloseEachTime,
    /// Answers 200 just inside the timeout.
    Slow(u64),
}

/// Reads one request's head (enough to answer it; bodies here are small and sent at once).
async fn read_request(conn: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if let Some(head_end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while seen.len() < head_end + 4 + length {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return false,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    return true;
                }
            }
        }
    }
}

async fn misbehave(mut conn: TcpStream, how: Misbehaviour) {
    loop {
        if !read_request(&mut conn).await {
            return;
        }
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        match how {
            Misbehaviour::Garbage => {
                let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
                return;
            }
            Misbehaviour::HeadersOnly => {
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                    .await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Misbehaviour::Trickle => {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n";
                if conn.write_all(head).await.is_err() {
                    return;
                }
                for _ in 0..1000 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if conn.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            }
            Misbehaviour::Huge => {
                let size = 50 * 1024 * 1024;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..size / chunk.len() {
                    if conn.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
            Misbehaviour::ResetMidResponse => {
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                    .await;
                let _ = conn.set_zero_linger();
                return;
            }
            Misbehaviour::CloseEachTime => {
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                    .await;
                return;
            }
            Misbehaviour::Slow(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if conn.write_all(ok).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A receiver that misbehaves `how` on every connection; its URL.
async fn bad_receiver(how: Misbehaviour) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(misbehave(conn, how));
        }
    });
    format!("http://{addr}/hook")
}

const TIMEOUT_MS: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misbehaving_receiver_is_classified_within_its_timeout() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    for (how, success, class) in [
        (Misbehaviour::Garbage, false, Some("request")),
        // The status came: the receiver took the delivery; the body it then withholds, cuts off
        // or floods is not waited for past the timeout, nor kept past the excerpt.
        (Misbehaviour::HeadersOnly, true, None),
        (Misbehaviour::Trickle, true, None),
        (Misbehaviour::Huge, true, None),
        (Misbehaviour::ResetMidResponse, true, None),
        (Misbehaviour::CloseEachTime, true, None),
        (Misbehaviour::Slow(TIMEOUT_MS - 300), true, None),
        (Misbehaviour::Slow(TIMEOUT_MS + 500), false, Some("timeout")),
    ] {
        let url = bad_receiver(how).await;
        let i = api
            .integration(
                "acme",
                json!({"name": format!("{how:?}"), "url": url, "event_types": ["ivr.input"],
                       "verification": "none", "delivery": {"timeout_ms": TIMEOUT_MS}}),
            )
            .await;
        let iid = i["id"].as_str().unwrap_or_default();
        for attempt in 0..2 {
            let started = Instant::now();
            let (st, report) = api
                .post(
                    &format!("/v1/tenants/acme/integrations/{iid}/test"),
                    json!({}),
                )
                .await;
            let took = started.elapsed();
            assert_eq!(st, 200, "{how:?}: {report}");
            assert_eq!(
                (report["success"].as_bool(), report["error_class"].as_str()),
                (Some(success), class),
                "{how:?} attempt {attempt}: {report}"
            );
            assert!(
                took < Duration::from_millis(TIMEOUT_MS + 1_500),
                "{how:?} held the attempt {took:?}"
            );
            let excerpt = report["response_excerpt"].as_str().unwrap_or_default();
            assert!(
                excerpt.len() <= 1024,
                "{how:?} kept {} bytes",
                excerpt.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_delay_the_others() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let hanging = bad_receiver(Misbehaviour::HeadersOnly).await;
    api.integration(
        "acme",
        json!({"name": "hangs", "url": hanging, "event_types": ["ivr.input"],
               "verification": "none", "delivery": {"timeout_ms": 30_000, "max_in_flight": 4}}),
    )
    .await;
    let healthy = Receiver::start().await;
    api.integration(
        "acme",
        json!({"name": "healthy", "url": healthy.url, "event_types": ["ivr.input"]}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        server
            .ingest(json!({"events": ivr_events("acme", 0..20)}))
            .await
            .0,
        202
    );
    healthy.take(20, 10).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the healthy receiver waited {:?} behind one that hangs for 30 s",
        started.elapsed()
    );
}
