//! Seed rows a receiver built against the original products relies on: seed 001's fixed-IP
//! call history sent at each ten-minute boundary, seed 003's Webex-signed partner feed and its
//! records API.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::*;

const TEN_MIN: i64 = 600_000;

fn missed(id: &str, number: &str) -> serde_json::Value {
    event(
        id,
        "acme",
        "call.completed",
        id,
        json!({"answered": false, "direction": "inbound", "call_type": "incoming",
               "started_at": "2026-11-22T10:00:00Z", "ended_at": "2026-11-22T10:00:20Z",
               "caller": {"number": number}, "callee": {"number": "+81300000001"}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_history_integration_in_batch_mode_sends_each_record_at_the_window_boundary() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    let created = api
        .integration(
            "acme",
            json!({"name": "history", "url": rx.url, "profile": "call-history",
                   "event_types": ["call.unanswered"],
                   "delivery": {"mode": "batch", "interval_s": 600, "delay_s": 0}}),
        )
        .await;
    assert_eq!(created["delivery"]["mode"], "batch", "{created}");
    let ingested_at = server.clock.now_ms();
    let boundary = (ingested_at.div_euclid(TEN_MIN) + 1) * TEN_MIN;
    let body = json!({"events": [missed("m1", "+81901234567"), missed("m2", "+81901234568")]});
    assert_eq!(server.ingest(body).await.0, 202);

    // The clock moves in 20-second steps: nothing may arrive before the boundary.
    let got = rx
        .take_advancing(
            &server.clock,
            2,
            Duration::from_secs(20),
            Duration::from_secs(660),
        )
        .await;
    let mut ids = Vec::new();
    for r in &got {
        assert!(
            r.clock_ms >= boundary && r.clock_ms < boundary + 30_000,
            "sent at {} for the boundary {boundary}",
            r.clock_ms
        );
        // Each record is its own request, in the profile's own shape.
        let body = r.json();
        assert_eq!(body["call"]["details"].as_array().map(Vec::len), Some(1));
        ids.push(body["call"]["id"].as_str().unwrap_or_default().to_string());
    }
    ids.sort();
    assert_eq!(ids, ["m1", "m2"]);
}

/// A forward proxy for plain http (absolute-form requests) and CONNECT tunnels, keeping every
/// byte clients sent through it.
async fn egress_proxy() -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut conn = BufReader::new(conn);
                let mut line = String::new();
                if conn.read_line(&mut line).await.is_err() {
                    return;
                }
                let mut parts = line.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let host = if method == "CONNECT" {
                    target.to_string()
                } else {
                    let rest = target.trim_start_matches("http://");
                    rest.split('/').next().unwrap_or_default().to_string()
                };
                let Ok(upstream) = tokio::net::TcpStream::connect(&host).await else {
                    return;
                };
                let (mut up_read, mut up_write) = upstream.into_split();
                if method == "CONNECT" {
                    loop {
                        let mut h = String::new();
                        if conn.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let _ = conn
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                } else {
                    log.lock().extend_from_slice(line.as_bytes());
                    if up_write.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let (mut client_read, mut client_write) = tokio::io::split(conn);
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
                });
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            log.lock().extend_from_slice(&buf[..n]);
                            if up_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                down.abort();
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// How many requests of `kind` (the `callhook-event-type` header) went through the proxy.
fn through(seen: &Mutex<Vec<u8>>, kind: &str) -> usize {
    let needle = format!("callhook-event-type: {kind}\r\n");
    let bytes = seen.lock();
    bytes
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_egress_is_refused_without_a_proxy_and_sends_through_it_with_one() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let spec = json!({"name": "fixed", "url": rx.url, "profile": "call-history",
                      "event_types": ["call.unanswered"], "delivery": {"egress": "fixed"}});
    let (st, v) = api
        .post("/v1/tenants/acme/integrations", spec.clone())
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("egress_unavailable")),
        "{v}"
    );
    let (_, list) = api.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"], json!([]), "the refused save left nothing");
    server.stop().await;

    let (proxy, seen) = egress_proxy().await;
    let server = TestServer::start_with(|c| c.egress_proxy = Some(proxy.clone())).await;
    let api = server.tenant("acme").await;
    let direct_rx = Receiver::start().await;
    let fixed = api.integration("acme", spec).await;
    assert_eq!(fixed["delivery"]["egress"], "fixed");
    let direct = api
        .integration(
            "acme",
            json!({"name": "direct", "url": direct_rx.url, "profile": "call-history",
                   "event_types": ["call.unanswered"]}),
        )
        .await;
    assert_eq!(direct["delivery"]["egress"], "direct");
    assert_eq!(
        through(&seen, "challenge"),
        1,
        "only the fixed integration's challenge came through the proxy"
    );
    let body = json!({"events": [missed("m1", "+81901234567"), missed("m2", "+81901234568")]});
    assert_eq!(server.ingest(body).await.0, 202);
    rx.take(2, 10).await;
    direct_rx.take(2, 10).await;
    assert_eq!(
        through(&seen, "call.unanswered"),
        2,
        "the fixed integration's deliveries, and only those, came through the proxy"
    );
}
