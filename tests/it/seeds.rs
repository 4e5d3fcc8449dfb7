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
    // Seed 001's "Source IP address" mode: every ten minutes, from fixed addresses.
    let (proxy, seen) = egress_proxy().await;
    let server = TestServer::start_with(|c| {
        c.egress_proxy = Some(proxy.clone());
        c.egress_default = Some(callhook::config::EgressDefault::Direct);
    })
    .await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    let created = api
        .integration(
            "acme",
            json!({"name": "history", "url": rx.url, "profile": "call-history",
                   "event_types": ["call.unanswered"],
                   "delivery": {"mode": "batch", "interval_s": 600, "delay_s": 0, "egress": "fixed"}}),
        )
        .await;
    assert_eq!(created["delivery"]["mode"], "batch", "{created}");
    let ingested_at = server.clock.now_ms();
    let boundary = (ingested_at.div_euclid(TEN_MIN) + 1) * TEN_MIN;
    let body = json!({"events": [missed("m1", "+81901234567"), missed("m2", "+81901234568")]});
    assert_eq!(server.ingest(body).await.0, 202);

    // Nothing arrives while the clock moves up to the boundary in 20-second steps (the test
    // clock also runs with real time, hence the two seconds' margin); moved to the boundary,
    // and then only by real time, both records arrive.
    rx.none_until(&server.clock, boundary - 2_000, Duration::from_secs(20))
        .await;
    server.clock.advance(Duration::from_millis(
        (boundary - server.clock.now_ms()).max(0) as u64,
    ));
    let got = rx.take(2, 10).await;
    let mut ids = Vec::new();
    for r in &got {
        assert!(
            r.clock_ms >= boundary && r.clock_ms < boundary + 12_000,
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
    assert_eq!(
        through(&seen, "call.unanswered"),
        2,
        "both from the fixed addresses"
    );
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
                   "event_types": ["call.unanswered"], "delivery": {"egress": "direct"}}),
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
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_that_name_no_egress_keep_the_proxy_a_node_was_started_with() {
    // Before integrations could choose, a node with a proxy sent everything through it: that
    // stays the default there, so an upgrade changes no receiver's allow-list.
    let (proxy, seen) = egress_proxy().await;
    let server = TestServer::start_with(|c| c.egress_proxy = Some(proxy.clone())).await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let unnamed = api
        .integration(
            "acme",
            json!({"name": "old", "url": rx.url, "profile": "call-history",
                   "event_types": ["call.unanswered"]}),
        )
        .await;
    assert!(unnamed["delivery"].get("egress").is_none(), "{unnamed}");
    assert_eq!(server.ingest(missed("m1", "+81901234567")).await.0, 202);
    rx.next(10).await;
    assert_eq!(through(&seen, "call.unanswered"), 1);
    server.stop().await;

    // CALLHOOK_EGRESS_DEFAULT=direct makes the proxy opt-in; `fixed` without a proxy does not
    // start.
    let (proxy, seen) = egress_proxy().await;
    let server = TestServer::start_with(|c| {
        c.egress_proxy = Some(proxy.clone());
        c.egress_default = Some(callhook::config::EgressDefault::Direct);
    })
    .await;
    let api = server.tenant("acme").await;
    api.integration(
        "acme",
        json!({"name": "new", "url": rx.url, "profile": "call-history",
               "event_types": ["call.unanswered"]}),
    )
    .await;
    assert_eq!(server.ingest(missed("m2", "+81901234567")).await.0, 202);
    rx.next(10).await;
    assert_eq!(through(&seen, "call.unanswered"), 0);
    server.stop().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = callhook::config::Config::for_data_dir(dir.path().to_path_buf());
    config.egress_default = Some(callhook::config::EgressDefault::Fixed);
    let refused = callhook::app::start(config).await;
    assert!(
        refused
            .err()
            .is_some_and(|e| e.to_string().contains("CALLHOOK_EGRESS_PROXY")),
        "a fixed default without a proxy stops the start"
    );
}

/// A call of tenant `t1` that ended `ago_ms` before `now`.
fn ended(id: &str, now: i64, ago_ms: i64) -> serde_json::Value {
    let at = callhook::time::format_ms(now - ago_ms);
    event(
        id,
        "t1",
        "call.completed",
        &format!("call-{id}"),
        json!({"answered": true, "direction": "inbound", "scope": "external",
               "started_at": at, "ended_at": at, "caller": {"number": "+441610000001"},
               "callee": {"number": "+441610000002"}}),
    )
}

/// A tenant `id` of partner `p1`.
async fn partner_tenant(server: &TestServer, id: &str) {
    let (st, _) = server
        .admin()
        .post(
            "/v1/tenants",
            json!({"id": id, "name": id, "partner_id": "p1"}),
        )
        .await;
    assert_eq!(st, 201, "tenant {id}");
}

async fn partner_with_tenant(server: &TestServer) -> Api {
    let partner = crate::partners::partner_admin(server, "p1").await;
    partner_tenant(server, "t1").await;
    partner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_feed_sends_webex_records_signed_with_x_spark_signature_and_never_the_secret() {
    use hmac::{Hmac, Mac};
    let server = TestServer::start().await;
    let partner = partner_with_tenant(&server).await;
    let rx = server.receiver().await;
    let secret = "partner-secret-0001";
    let (st, feed) = partner
        .post(
            "/v1/partners/p1/integrations",
            json!({"name": "feed", "url": rx.url, "secret": secret}),
        )
        .await;
    assert_eq!(st, 201, "{feed}");
    let guid = feed["trigger_id"].as_str().unwrap_or_default();
    let (st, by_guid) = partner
        .get(&format!("/v1/partners/p1/integrations/{guid}"))
        .await;
    assert_eq!(
        (st, &by_guid["id"]),
        (200, &feed["id"]),
        "a partner route by GUID"
    );
    assert_eq!(
        (
            feed["profile"].as_str(),
            feed["secret_use"].as_str(),
            feed["delivery"]["interval_s"].as_u64(),
            feed["delivery"]["delay_s"].as_u64()
        ),
        (
            Some("webex-cdr"),
            Some("webex-signature"),
            Some(300),
            Some(300)
        ),
        "seed 003's defaults"
    );
    // Both calls end inside one five-minute window (the last one that has ended): two calls
    // 60 and 90 s ago fell into two windows whenever a boundary lay between them (1 run in 10).
    let now = server.clock.now_ms();
    let window_end = now - now.rem_euclid(300_000);
    let body = json!({"events": [ended("a", window_end, 60_000), ended("b", window_end, 90_000)]});
    assert_eq!(server.ingest(body).await.0, 202);
    let got = rx
        .take_advancing(
            &server.clock,
            1,
            Duration::from_secs(10),
            Duration::from_secs(15 * 60),
        )
        .await;
    let r = &got[0];
    // Verified here with HMAC-SHA1 over the bytes received, independently of callhook's code.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(&r.body);
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(r.header("x-spark-signature"), expected);
    assert_eq!(
        r.header("authorization"),
        "",
        "the secret itself is never sent"
    );
    assert!(
        !String::from_utf8_lossy(&r.body).contains(secret),
        "nor is it in the body"
    );
    assert!(
        r.header("webhook-signature").starts_with("v1,"),
        "Standard Webhooks headers stay"
    );
    let batch = r.json();
    assert_eq!(
        batch
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["items".to_string()]),
        "Webex's bare body: {batch}"
    );
    let mut calls: Vec<&str> = batch["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["Correlation ID"].as_str().unwrap_or_default())
        .collect();
    calls.sort_unstable();
    assert_eq!(calls, ["call-a", "call-b"]);
    assert_eq!(batch["items"][0]["Org UUID"], "t1");
    assert_eq!(batch["items"][0]["Direction"], "TERMINATING");
    assert_eq!(r.header("callhook-part"), "1/1");
    let window = r.header("callhook-window");
    let (start, end) = window.split_once('/').unwrap_or_default();
    let (start, end) = (
        callhook::time::parse_rfc3339_ms(start).unwrap_or(0),
        callhook::time::parse_rfc3339_ms(end).unwrap_or(0),
    );
    assert_eq!(end - start, 300_000, "{window}");
    assert!(
        r.clock_ms >= end + 300_000,
        "calls that ended 10–5 minutes before the send"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_api_takes_a_two_hour_window_and_pages_by_link_header() {
    let server = TestServer::start().await;
    let partner = partner_with_tenant(&server).await;
    let now = server.clock.now_ms();
    let min = 60_000;
    let body = json!({"events": [ended("old", now, 100 * min), ended("mid", now, 60 * min),
                                 ended("new", now, 30 * min), ended("too-new", now, 2 * min)]});
    assert_eq!(server.ingest(body).await.0, 202);
    // Two hours, ending six minutes ago.
    let (start, end) = (
        callhook::time::format_ms(now - 126 * min),
        callhook::time::format_ms(now - 6 * min),
    );
    let (st, v) = partner
        .get(&format!(
            "/v1/partners/p1/reconciliation/counts?startTime={start}&endTime={end}"
        ))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("window_too_long")),
        "the counts keep seed 003's one-hour cap"
    );
    // A tenant of the partner without a call in the window is counted, with 0.
    partner_tenant(&server, "t0-quiet").await;
    let hour = callhook::time::format_ms(now - 66 * min);
    let (st, counts) = partner
        .get(&format!(
            "/v1/partners/p1/reconciliation/counts?startTime={hour}&endTime={end}"
        ))
        .await;
    assert_eq!(st, 200, "{counts}");
    assert_eq!(
        counts["cdr_counts"],
        json!([{"orgId": "t0-quiet", "count": 0}, {"orgId": "t1", "count": 2}])
    );
    let (st, v) = partner
        .get(&format!(
            "/v1/partners/p1/reconciliation/records?orgId=t1&startTime={start}&endTime={end}&max=501"
        ))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_max"))
    );
    // `limit`, the earlier name, keeps its range; a page is 500 at most.
    let (st, v) = partner
        .get(&format!(
            "/v1/partners/p1/reconciliation/records?orgId=t1&startTime={start}&endTime={end}&limit=1000"
        ))
        .await;
    assert_eq!(
        (st, v["items"].as_array().map(Vec::len), &v["next_cursor"]),
        (200, Some(3), &serde_json::Value::Null)
    );
    // A feed asked for in real time gets Webex records as they come, with no window.
    let rx = Receiver::start().await;
    let (st, feed) = partner
        .post(
            "/v1/partners/p1/integrations",
            json!({"name": "live", "url": rx.url, "delivery": {"mode": "realtime"}}),
        )
        .await;
    assert_eq!(st, 201, "{feed}");
    assert_eq!(
        (
            feed["profile"].as_str(),
            feed["delivery"]["mode"].as_str(),
            feed["delivery"].get("interval_s")
        ),
        (Some("webex-cdr"), Some("realtime"), None)
    );

    let mut url = format!(
        "{}/v1/partners/p1/reconciliation/records?orgId=t1&startTime={start}&endTime={end}&max=2",
        server.base
    );
    let mut pages = Vec::new();
    loop {
        let resp = partner
            .http
            .get(&url)
            .bearer_auth(&partner.token)
            .send()
            .await
            .expect("records");
        assert_eq!(resp.status(), 200);
        let link = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let ids: Vec<String> = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["Correlation ID"].as_str().unwrap_or_default().to_string())
            .collect();
        pages.push(ids);
        match link {
            Some(l) => {
                let (target, rel) = l.split_once(';').unwrap_or_default();
                assert_eq!(rel.trim(), "rel=\"next\"");
                url = target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string();
                assert!(url.starts_with("http"), "an absolute link: {url}");
            }
            None => break,
        }
        assert!(pages.len() < 5, "paging does not end: {pages:?}");
    }
    assert_eq!(
        pages,
        [vec!["call-old", "call-mid"], vec!["call-new"]],
        "oldest end first, two a page, the call of two minutes ago outside the window"
    );
    // A last page that is exactly full names no next one.
    let resp = partner
        .http
        .get(format!(
            "{}/v1/partners/p1/reconciliation/records?orgId=t1&startTime={start}&endTime={end}&max=3",
            server.base
        ))
        .bearer_auth(&partner.token)
        .send()
        .await
        .expect("records");
    assert!(resp.headers().get("link").is_none());
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(
        (body["items"].as_array().map(Vec::len), &body["next_cursor"]),
        (Some(3), &serde_json::Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_delivery_handed_over_early_still_waits_for_its_own_window() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    // call.state is ordered per call by default.
    api.integration(
        "acme",
        json!({"name": "states", "url": rx.url, "profile": "call-state", "event_types": ["call.state"],
               "delivery": {"mode": "batch", "interval_s": 600, "delay_s": 0}}),
    )
    .await;
    let state = |seq: u64, state: &str| {
        event(
            &format!("s{seq}"),
            "acme",
            "call.state",
            "call-1",
            json!({"seq": seq, "state": state, "direction": "inbound",
                   "local": {"user_id": "u1", "number": "+441610000001"}}),
        )
    };
    let first = (server.clock.now_ms().div_euclid(TEN_MIN) + 1) * TEN_MIN;
    assert_eq!(server.ingest(state(1, "early")).await.0, 202);
    rx.script(vec![Reply::Status(500)], Reply::Status(200));
    rx.none_until(&server.clock, first - 2_000, Duration::from_secs(20))
        .await;
    server.clock.advance(Duration::from_millis(
        (first - server.clock.now_ms()).max(0) as u64,
    ));
    assert_eq!(
        rx.next(10).await.status,
        500,
        "the first state, at its boundary"
    );
    // The next state arrives in the next window, while the first waits for its retry.
    let second = first + TEN_MIN;
    assert_eq!(server.ingest(state(2, "confirmed")).await.0, 202);
    let retried = rx
        .take_advancing(
            &server.clock,
            1,
            Duration::from_millis(500),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(retried[0].json()["seq_num"], 1);
    // Handed over when the first succeeded, the second still waits for its own boundary.
    rx.none_until(&server.clock, second - 2_000, Duration::from_secs(20))
        .await;
    server.clock.advance(Duration::from_millis(
        (second - server.clock.now_ms()).max(0) as u64,
    ));
    let got = rx.next(10).await;
    assert_eq!(got.json()["seq_num"], 2);
    assert!(
        got.clock_ms >= second,
        "sent at {} for {second}",
        got.clock_ms
    );
}
