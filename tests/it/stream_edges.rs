//! Live streams at their edges, through the real server: a consumer that does not read, another
//! tenant's burst, transactions that commit out of order, and two nodes on one store.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::streams::*;
use crate::support::*;

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
    assert_eq!(close_code(&mut ws).await, CloseCode::from(4004));
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

/// A tenant's 201st stream on a node is refused with 429 `too_many_streams` before anything is
/// opened; another tenant's streams are counted apart; a stream that ended gives its place up
/// before its client sees the connection close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_streams_past_the_limit_are_refused_with_429_and_one_closed_frees_its_place() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let mut open = Vec::new();
    for _ in 0..200 {
        open.push(connect(&server, &acme.token, &path(&iid)).await);
    }
    let refused = sse_request(&server, &path(&iid))
        .bearer_auth(&acme.token)
        .send()
        .await
        .expect("sse");
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    let other = globex.integration("globex", stream_spec(json!({}))).await;
    let other_path = format!(
        "/v1/tenants/globex/integrations/{}/stream",
        other["id"].as_str().unwrap_or_default()
    );
    let mut ws = connect(&server, &globex.token, &other_path).await;
    assert_eq!(next(&mut ws).await["live"], true);

    let mut first = open.pop().expect("a stream");
    first.close(None).await.expect("close");
    while let Some(Ok(_)) = first.next().await {}
    let mut again = connect(&server, &acme.token, &path(&iid)).await;
    assert_eq!(next(&mut again).await["live"], true);
    server.stop().await;
}
