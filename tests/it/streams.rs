//! Live streams of a `stream` integration, through the real server: WebSocket and SSE clients,
//! resuming from a cursor, tenant isolation, a slow consumer cut off, the node stopping.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn stream_spec(extra: Value) -> Value {
    let mut spec = json!({"name": "desk", "destination": {"type": "stream"},
                          "event_types": ["call.state", "ivr.input"]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    spec
}

/// A message's cursor as the (transaction, sequence) pair it stands for.
fn pos(m: &Value) -> (u64, u64) {
    let c = m["cursor"].as_str().unwrap_or_default();
    let (x, s) = c.split_once('.').unwrap_or_default();
    (x.parse().unwrap_or(0), s.parse().unwrap_or(0))
}

fn path(iid: &str) -> String {
    format!("/v1/tenants/acme/integrations/{iid}/stream")
}

async fn connect(server: &TestServer, token: &str, path: &str) -> Ws {
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
async fn connect_narrow(server: &TestServer, token: &str, path: &str) -> Ws {
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
async fn next(ws: &mut Ws) -> Value {
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

fn state(id: &str, tenant: &str, call: &str, seq: u64, s: &str) -> Value {
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
    for n in 2..=5 {
        assert_eq!(next(&mut ws).await["event_id"], format!("e-{n}"));
    }
    let live = next(&mut ws).await;
    assert_eq!(live["live"], true, "{live}");
    assert_eq!(server.ingest(ivr(6)).await.0, 202);
    let six = next(&mut ws).await;
    assert_eq!(six["event_id"], "e-6");
    // SSE, resuming with Last-Event-ID: the same objects, `id` the cursor.
    let resp = acme
        .http
        .get(format!("{}{}?cursor=0.0", server.base, path(&iid)))
        .bearer_auth(&acme.token)
        .header("accept", "text/event-stream")
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
    while !text.contains("\"live\":true") {
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

/// A reader whose client does not read: once its socket takes nothing for the send timeout it is
/// cut off with 4008 and a cursor, and resuming from that cursor gives the rest, in order, none
/// missing (the one message that was waiting may come twice). Another reader of the same
/// integration gets every event meanwhile, though the bursts are larger than the ring (it
/// reads those from the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_with_4008_and_resumes_without_loss() {
    // A short send timeout: the slow reader's socket is full long before the quick reader has
    // everything.
    let server = TestServer::start_with(|c| c.stream_send_timeout_ms = 200).await;
    let acme = server.tenant("acme").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let mut slow = connect_narrow(&server, &acme.token, &path(&iid)).await;
    next(&mut slow).await;
    let mut quick = connect(&server, &acme.token, &path(&iid)).await;
    next(&mut quick).await;
    // The quick reader reads as events come.
    const N: usize = 16_000;
    let quick_reads = tokio::spawn(async move {
        for n in 0..N {
            let m = next(&mut quick).await;
            assert_eq!(m["event_id"], format!("e-{n:05}"));
        }
        quick
    });
    // Far more than the server's socket buffer (at most 4 MiB) and the narrow client's hold.
    let pad = "x".repeat(400);
    for chunk in 0..(N / 4000) {
        let batch: Vec<Value> = (0..4000)
            .map(|k| {
                let n = chunk * 4000 + k;
                event(
                    &format!("e-{n:05}"),
                    "acme",
                    "ivr.input",
                    &format!("c-{n}"),
                    json!({"dtmf": "1", "pad": pad}),
                )
            })
            .collect();
        assert_eq!(server.ingest(json!({"events": batch})).await.0, 202);
    }
    // The quick reader got all of them meanwhile.
    let _quick = quick_reads.await.expect("the quick reader got every event");
    // The slow one: what was sent before the cut, then the close frame.
    let mut seen = Vec::new();
    let close = loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), slow.next())
            .await
            .expect("a message")
            .expect("open")
            .expect("message");
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                seen.push((
                    v["event_id"].as_str().unwrap_or("").to_string(),
                    v["cursor"].as_str().unwrap_or("").to_string(),
                ));
            }
            Message::Close(frame) => break frame.expect("a close frame"),
            _ => {}
        }
    };
    assert_eq!(close.code, CloseCode::from(4008), "{close:?}");
    assert!(seen.len() < N, "it was cut off before the end");
    let cursor = close.reason.rsplit(' ').next().unwrap_or("").to_string();
    // The cursor is the last message taken, or the one before it.
    let last_two: Vec<&String> = seen.iter().rev().take(2).map(|(_, c)| c).collect();
    assert!(last_two.contains(&&cursor), "{close:?} after {last_two:?}");
    let mut again = connect(
        &server,
        &acme.token,
        &format!("{}?cursor={cursor}", path(&iid)),
    )
    .await;
    loop {
        let m = next(&mut again).await;
        if m["live"] == true {
            break;
        }
        seen.push((
            m["event_id"].as_str().unwrap_or("").to_string(),
            String::new(),
        ));
    }
    let mut ids: Vec<String> = seen.into_iter().map(|(id, _)| id).collect();
    assert!(ids.len() <= N + 1, "at most the waiting message twice");
    ids.dedup();
    let want: Vec<String> = (0..N).map(|n| format!("e-{n:05}")).collect();
    assert!(
        ids == want,
        "{} events, first wrong at {:?}",
        ids.len(),
        ids.iter().zip(&want).position(|(a, b)| a != b)
    );
    server.stop().await;
}

/// On PostgreSQL an event's `seq` is taken when it is inserted, not when it commits: a
/// transaction that inserted earlier can commit later. The stream must hold the later event back
/// until the earlier one is visible, then give both in order; a reader that went by `seq` alone
/// would give the later one and never the earlier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_an_event_that_commits_after_a_later_one_is_not_skipped() {
    let pg = Postgres::get();
    let url = fresh_database(&pg.admin_url).await;
    let for_server = url.clone();
    let server = TestServer::start_with(move |c| c.database_url = Some(for_server)).await;
    let acme = server.tenant("acme").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let mut ws = connect(&server, &acme.token, &path(&iid)).await;
    next(&mut ws).await;
    // A writer that holds its transaction open after inserting: its event has the lower seq.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client.batch_execute("BEGIN").await.expect("begin");
    let body = json!({"id": "early", "type": "ivr.input", "tenant_id": "acme",
                      "occurred_at": "2026-11-22T10:00:00.123Z", "call_id": "c-1",
                      "data": {"dtmf": "1"}})
    .to_string();
    client
        .execute(
            "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body)
             VALUES ('acme', 'early', 'ivr.input', 'c-1', 0, 0, $1)",
            &[&body],
        )
        .await
        .expect("insert");
    let late = event("late", "acme", "ivr.input", "c-2", json!({"dtmf": "2"}));
    assert_eq!(server.ingest(late).await.0, 202);
    // While the earlier one is not committed, the later one is held back.
    let held = tokio::time::timeout(Duration::from_millis(500), ws.next()).await;
    assert!(
        held.is_err(),
        "nothing while the earlier event is uncommitted: {held:?}"
    );
    client.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(next(&mut ws).await["event_id"], "early");
    assert_eq!(next(&mut ws).await["event_id"], "late");
    // A row that cannot be read is skipped; the stream goes on past it.
    client
        .execute(
            "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body)
             VALUES ('acme', 'broken', 'ivr.input', 'c-3', 0, 0, 'not json')",
            &[],
        )
        .await
        .expect("insert");
    let after = event("after", "acme", "ivr.input", "c-4", json!({"dtmf": "4"}));
    assert_eq!(server.ingest(after).await.0, 202);
    assert_eq!(next(&mut ws).await["event_id"], "after");
    // And a reader catching up from before it too.
    let mut again = connect(&server, &acme.token, &format!("{}?cursor=0.0", path(&iid))).await;
    let ids: Vec<Value> = [
        next(&mut again).await,
        next(&mut again).await,
        next(&mut again).await,
    ]
    .iter()
    .map(|m| m["event_id"].clone())
    .collect();
    assert_eq!(ids, [json!("early"), json!("late"), json!("after")]);
    assert_eq!(next(&mut again).await["live"], true);
    // A client that sends messages is told a stream takes none.
    again
        .send(Message::Text("hello".into()))
        .await
        .expect("send");
    let closed = loop {
        match again.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("closed without a frame: {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| f.code), Some(CloseCode::Policy));
    server.stop().await;
}

/// One tenant's burst (larger than a ring) neither cuts off nor delays another tenant's reader,
/// and a stream whose integration is deleted is closed with 4004.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_burst_leaves_a_stream_alone_and_a_deleted_integration_closes_it() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    server.tenant("globex").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let mut ws = connect(&server, &acme.token, &path(&iid)).await;
    next(&mut ws).await;
    let burst: Vec<Value> = (0..5000)
        .map(|n| {
            event(
                &format!("g-{n}"),
                "globex",
                "ivr.input",
                "c-g",
                json!({"dtmf": "1"}),
            )
        })
        .collect();
    assert_eq!(server.ingest(json!({"events": burst})).await.0, 202);
    let own = event("a-1", "acme", "ivr.input", "c-a", json!({"dtmf": "2"}));
    assert_eq!(server.ingest(own).await.0, 202);
    assert_eq!(next(&mut ws).await["event_id"], "a-1");
    let (st, _) = acme
        .delete(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(st, 204);
    let after = event("a-2", "acme", "ivr.input", "c-a", json!({"dtmf": "3"}));
    assert_eq!(server.ingest(after).await.0, 202);
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Text(t))) => panic!("an event after deletion: {t}"),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time")
    .expect("a close frame");
    assert_eq!(closed.code, CloseCode::from(4004), "{closed:?}");
    server.stop().await;
}

/// Two nodes on one PostgreSQL: a stream read on one node gets the events stored through the
/// other (its tailer finds them in the shared log), in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_node_gets_the_events_another_node_stored() {
    let (_pg, a, b) = crate::cluster::two_nodes().await;
    let acme = a.tenant("acme").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let mut ws = connect(&a, &acme.token, &path(&iid)).await;
    next(&mut ws).await;
    for n in 1..=3 {
        let e = event(
            &format!("b-{n}"),
            "acme",
            "ivr.input",
            "c-1",
            json!({"dtmf": n.to_string()}),
        );
        assert_eq!(b.ingest(e).await.0, 202);
    }
    for n in 1..=3 {
        assert_eq!(next(&mut ws).await["event_id"], format!("b-{n}"));
    }
    b.stop().await;
    a.stop().await;
}
