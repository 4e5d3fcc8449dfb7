//! Live streams of a `stream` integration, through the real server: WebSocket and SSE clients,
//! resuming from a cursor, tenant isolation, a slow consumer cut off, the node stopping.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) fn stream_spec(extra: Value) -> Value {
    let mut spec = json!({"name": "desk", "destination": {"type": "stream"},
                          "event_types": ["call.state", "ivr.input"]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    spec
}

/// A message's cursor as the (transaction, sequence) pair it stands for.
pub(crate) fn pos(m: &Value) -> (u64, u64) {
    let c = m["cursor"].as_str().unwrap_or_default();
    let (x, s) = c.split_once('.').unwrap_or_default();
    (x.parse().unwrap_or(0), s.parse().unwrap_or(0))
}

pub(crate) fn path(iid: &str) -> String {
    format!("/v1/tenants/acme/integrations/{iid}/stream")
}

pub(crate) async fn connect(server: &TestServer, token: &str, path: &str) -> Ws {
    let url = format!("{}{path}", server.base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    assert_eq!(resp.status(), 101);
    ws
}

/// A client whose socket takes little (a small receive buffer, which also turns off the
/// kernel's growing it): a reader that does not read fills the server's side soon.
pub(crate) async fn connect_narrow(server: &TestServer, token: &str, path: &str) -> Ws {
    let url = format!("{}{path}", server.base.replacen("http", "ws", 1));
    let mut req = url.as_str().into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("buffer size");
    let addr = addr.parse().expect("address");
    let stream = socket.connect(addr).await.expect("connect");
    let (ws, resp) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next JSON message (pings are answered by the client library as it reads).
pub(crate) async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message within 20 s")
            .expect("open")
            .expect("message");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

pub(crate) fn state(id: &str, tenant: &str, call: &str, seq: u64, s: &str) -> Value {
    event(
        id,
        tenant,
        "call.state",
        call,
        json!({"seq": seq, "state": s, "direction": "inbound",
               "local": {"user_id": "u1", "number": "+441610000001"},
               "remote": {"number": "+447700900123"}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_gives_its_tenants_events_live_rendered_with_profile_and_privacy() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    server.tenant("globex").await;
    let integ = acme
        .integration(
            "acme",
            stream_spec(json!({"privacy": {"remote_number": {"action": "mask", "digits": 4}}})),
        )
        .await;
    assert_eq!(integ["destination"]["type"], "stream");
    assert!(integ.get("url").is_none(), "{integ}");
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let mut ws = connect(&server, &acme.token, &path(&iid)).await;
    let live = next(&mut ws).await;
    assert_eq!(live["live"], true, "{live}");
    let events = json!({"events": [
        state("g-1", "globex", "c-g", 1, "trying"),
        state("a-1", "acme", "c-a", 1, "trying"),
        state("a-2", "acme", "c-a", 2, "confirmed"),
    ]});
    assert_eq!(server.ingest(events).await.0, 202);
    let events = json!({"events": [
        // Arrives after `confirmed`: stale, skipped as webhooks skip it.
        state("a-0", "acme", "c-a", 1, "proceeding"),
        event("a-3", "acme", "ivr.input", "c-a", json!({"dtmf": "1"})),
        event("a-4", "acme", "call.completed", "c-a", json!({"answered": true})),
    ]});
    assert_eq!(server.ingest(events).await.0, 202);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut ws).await);
    }
    let ids: Vec<&str> = got
        .iter()
        .map(|m| m["event_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["a-1", "a-2", "a-3"], "{got:?}");
    let first = &got[0];
    assert_eq!(first["event_type"], "call.state");
    assert_eq!(first["payload"]["id"], "a-1");
    assert_eq!(first["payload"]["delivery_id"], first["cursor"]);
    assert_eq!(
        first["payload"]["data"]["remote"]["number"], "+44770090XXXX",
        "privacy rules apply: {first}"
    );
    assert_eq!(first["payload"]["data"]["local"]["number"], "+441610000001");
    let mut positions = vec![pos(&live)];
    positions.extend(got.iter().map(pos));
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    // An edit applies to the next event: ivr.input dropped.
    let (st, v) = acme
        .patch(
            &format!("/v1/tenants/acme/integrations/{iid}"),
            json!({"event_types": ["call.state"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let more = json!({"events": [
        event("a-5", "acme", "ivr.input", "c-b", json!({"dtmf": "2"})),
        state("a-6", "acme", "c-b", 1, "trying"),
    ]});
    assert_eq!(server.ingest(more).await.0, 202);
    assert_eq!(next(&mut ws).await["event_id"], "a-6");
    // The node stopping closes the stream with 1001 and the cursor to resume from.
    server.stop().await;
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time")
    .expect("a close frame");
    assert_eq!(closed.code, CloseCode::Away);
    assert!(closed.reason.contains("cursor"), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_a_cursor_replays_what_was_missed_with_no_gap_and_no_repeat() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let mut ws = connect(&server, &acme.token, &path(&iid)).await;
    next(&mut ws).await;
    let ivr = |n: usize| {
        event(
            &format!("e-{n}"),
            "acme",
            "ivr.input",
            "c-1",
            json!({"dtmf": n.to_string()}),
        )
    };
    assert_eq!(server.ingest(ivr(1)).await.0, 202);
    let one = next(&mut ws).await;
    assert_eq!(one["event_id"], "e-1");
    let cursor = one["cursor"].as_str().unwrap_or_default().to_string();
    ws.close(None).await.expect("close");
    // Missed while away, with another tenant's in between.
    server.tenant("globex").await;
    let mut batch = Vec::new();
    for n in 2..=5 {
        batch.push(ivr(n));
        batch.push(event(
            &format!("g-{n}"),
            "globex",
            "ivr.input",
            "c-9",
            json!({"dtmf": "9"}),
        ));
    }
    assert_eq!(server.ingest(json!({"events": batch})).await.0, 202);
    let mut ws = connect(
        &server,
        &acme.token,
        &format!("{}?cursor={cursor}", path(&iid)),
    )
    .await;
    // The live marker comes once what the store could give is given. On PostgreSQL the log is
    // read only as far as the oldest transaction still running in the cluster (the tests share
    // one), so events stored a moment before may follow it: in order, none missing, none twice.
    let (mut ids, mut live) = (Vec::new(), false);
    while ids.len() < 4 || !live {
        let m = next(&mut ws).await;
        match m["event_id"].as_str() {
            Some(id) => ids.push(id.to_string()),
            None => live = m["live"] == true,
        }
    }
    assert_eq!(ids, ["e-2", "e-3", "e-4", "e-5"]);
    assert_eq!(server.ingest(ivr(6)).await.0, 202);
    let six = next(&mut ws).await;
    assert_eq!(six["event_id"], "e-6");
    // SSE, resuming with Last-Event-ID: the same objects, `id` the cursor.
    let resp = sse_request(&server, &format!("{}?cursor=0.0", path(&iid)))
        .bearer_auth(&acme.token)
        // Newer than the URL's cursor (a browser reconnecting to the same URL): it wins.
        .header("last-event-id", &cursor)
        .send()
        .await
        .expect("sse");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/event-stream"));
    let mut resp = resp;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("\"live\":true") || !text.contains("\"event_id\":\"e-6\"") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("sse events in time")
            .expect("chunk")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["event_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids, ["e-2", "e-3", "e-4", "e-5", "e-6"], "{text}");
    assert!(
        text.contains(&format!("id: {}", six["cursor"].as_str().unwrap_or("-"))),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_its_tenants_alone_and_bad_requests_are_refused_with_nothing_changed() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let get = |api: &Api, p: String, accept: &'static str| {
        let req = api
            .http
            .get(format!("{}{p}", server.base))
            .bearer_auth(&api.token)
            .header("accept", accept);
        async move {
            let r = req.send().await.expect("get");
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Another tenant's token: not found, as every other object of acme's.
    let (st, v) = get(&globex, path(&iid), "text/event-stream").await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = get(
        &globex,
        format!("/v1/tenants/globex/integrations/{iid}/stream"),
        "text/event-stream",
    )
    .await;
    assert_eq!(st, 404, "{v}");
    // Neither WebSocket nor SSE asked for; a cursor it never gave.
    let (st, v) = get(&acme, path(&iid), "application/json").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (406, Some("stream_protocol")),
        "{v}"
    );
    for bad in ["x", "1", "1.2.3", "-1.2", "99999999999999999999.1"] {
        let (st, v) = get(
            &acme,
            format!("{}?cursor={bad}", path(&iid)),
            "text/event-stream",
        )
        .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (400, Some("invalid_cursor")),
            "{bad}: {v}"
        );
    }
    // A webhook integration has no stream.
    let rx = Receiver::start().await;
    let hook = acme
        .integration(
            "acme",
            json!({"name": "crm", "url": rx.url, "event_types": ["call.state"]}),
        )
        .await;
    let hid = hook["id"].as_str().unwrap_or_default();
    let (st, v) = get(&acme, path(hid), "text/event-stream").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("not_a_stream")),
        "{v}"
    );
    // Settings that mean sending somewhere are refused for a stream.
    for (extra, says) in [
        (json!({"url": "https://example.com/"}), "`url`"),
        (json!({"headers": {"X-A": "b"}}), "`headers`"),
        (json!({"custom_data": {"a": 1}}), "`custom_data`"),
        (json!({"method": "PUT"}), "`method`"),
        (json!({"delivery": {"mode": "batch"}}), "`delivery.mode`"),
    ] {
        let (st, v) = acme
            .post("/v1/tenants/acme/integrations", stream_spec(extra.clone()))
            .await;
        assert_eq!(st, 422, "{extra}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains(says),
            "{extra}: {v}"
        );
    }
    let (_, list) = acme.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let (st, v) = acme
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/test"),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("not_applicable")),
        "{v}"
    );
    // A stream takes no deliveries: events for it queue nothing.
    assert_eq!(
        server
            .ingest(state("a-1", "acme", "c-1", 1, "trying"))
            .await
            .0,
        202
    );
    rx.next(20).await;
    let (_, d) = acme
        .get(&format!("/v1/tenants/acme/integrations/{iid}/deliveries"))
        .await;
    assert_eq!(d["items"], json!([]), "{d}");
    server.stop().await;
}

/// The code the stream closes with, within 10 s (half the ping interval); no event before it.
pub(crate) async fn close_code(ws: &mut Ws) -> CloseCode {
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Text(t))) => {
                    panic!("a message after the stream should have ended: {t}")
                }
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed within 10 s")
    .expect("a close frame");
    closed.code
}

/// A request for Server-Sent Events at `path` of the server (credentials left to the caller).
pub(crate) fn sse_request(server: &TestServer, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .header("accept", "text/event-stream")
}

/// What an SSE response says until `needle` appears (within 10 s, half the ping interval: what
/// arrives in time was not found by the periodic look).
async fn sse_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("`{needle}` within 10 s; got {text}"))
            .expect("chunk")
            .unwrap_or_else(|| panic!("ended before `{needle}`: {text}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

/// Access withdrawn on the node ends the streams it opened at once, with 4003: a deleted token
/// (WebSocket and SSE alike), a portal session its partner ended (the console's live page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_4003_at_once_when_its_token_or_session_is_withdrawn() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let (st, desk) = acme
        .post(
            "/v1/tokens",
            json!({"role": "tenant_viewer", "tenant_id": "acme", "name": "desk"}),
        )
        .await;
    assert_eq!(st, 201, "{desk}");
    let token = desk["token"].as_str().unwrap_or_default();
    let mut ws = connect(&server, token, &path(&iid)).await;
    assert_eq!(next(&mut ws).await["live"], true);
    let mut sse = sse_request(&server, &path(&iid))
        .bearer_auth(token)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);
    sse_until(&mut sse, "\"live\":true").await;
    // A portal session on the console's live page.
    let (st, link) = server
        .admin()
        .post(
            "/v1/tenants/acme/portal-links",
            json!({"role": "tenant_viewer"}),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let (_, cookie) = crate::portal::open(&server, link).await;
    let cookie = cookie.split(';').next().unwrap_or_default().to_string();
    let mut console = sse_request(
        &server,
        &format!("/console/t/acme/integrations/{iid}/live/events"),
    )
    .header("cookie", &cookie)
    .send()
    .await
    .expect("console sse");
    assert_eq!(console.status(), 200);
    sse_until(&mut console, "\"live\":true").await;

    let (st, _) = acme
        .delete(&format!(
            "/v1/tokens/{}",
            desk["id"].as_str().unwrap_or("-")
        ))
        .await;
    assert_eq!(st, 204);
    assert_eq!(close_code(&mut ws).await, CloseCode::from(4003));
    let text = sse_until(&mut sse, "event: close").await;
    assert!(text.contains("\"code\":4003"), "{text}");

    // The portal session goes on until its partner (here the operator) ends it.
    let ev = event("a-1", "acme", "ivr.input", "c-1", json!({"dtmf": "1"}));
    assert_eq!(server.ingest(ev).await.0, 202);
    sse_until(&mut console, "\"event_id\":\"a-1\"").await;
    let (_, sessions) = server.admin().get("/v1/tenants/acme/portal-sessions").await;
    let sid = sessions["items"][0]["id"]
        .as_str()
        .unwrap_or("-")
        .to_string();
    let (st, v) = server
        .admin()
        .delete(&format!("/v1/tenants/acme/portal-sessions/{sid}"))
        .await;
    assert_eq!(st, 204, "{v}");
    let text = sse_until(&mut console, "event: close").await;
    assert!(text.contains("\"code\":4003"), "{text}");

    // A partner's admin sees its tenants' streams while they are its tenants.
    let p1 = crate::partners::partner_admin(&server, "p1").await;
    crate::partners::partner_admin(&server, "p2").await;
    let moved = |pid: &'static str| {
        let admin = server.admin();
        async move {
            let (st, v) = admin
                .patch("/v1/tenants/acme", json!({"partner_id": pid}))
                .await;
            assert_eq!(st, 200, "{v}");
        }
    };
    moved("p1").await;
    let mut ws = connect(&server, &p1.token, &path(&iid)).await;
    assert_eq!(next(&mut ws).await["live"], true);
    moved("p2").await;
    assert_eq!(close_code(&mut ws).await, CloseCode::from(4003));
    server.stop().await;
}
