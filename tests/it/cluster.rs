//! Several nodes on one PostgreSQL database: changes made on one node obeyed by the other,
//! each call's order kept across nodes, and a node killed with `kill -9` mid-stream losing
//! nothing it acknowledged.
//!
//! These tests always run on PostgreSQL: the server from `CALLHOOK_TEST_POSTGRES_URL`, else a
//! private cluster they start themselves (scripts/pg-cluster).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

use callhook::store::{BatchWindow, IngestBatch, IngestItem, Lease};

use crate::crash::{ingest_until_stopped, spawn_server, wait_ready, Tally};
use crate::support::*;

/// The sealing key every node of a test shares (secrets sealed on one node open on the other).
const SEAL_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Polls `check` until it holds; returns how long it took.
async fn until(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// Two in-process nodes on one new database (the server is kept alive as long as the first
/// value lives).
pub(crate) async fn two_nodes() -> (Postgres, TestServer, TestServer) {
    let pg = Postgres::get();
    let url = fresh_database(&pg.admin_url).await;
    let on_shared = |c: &mut callhook::config::Config| {
        c.database_url = Some(url.clone());
        c.seal_key = Some(SEAL_KEY.into());
    };
    let a = TestServer::start_with(on_shared).await;
    let b = TestServer::start_with(on_shared).await;
    (pg, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_follow_each_others_changes_and_keep_each_calls_order() {
    let (_pg, a, b) = two_nodes().await;
    let on_a = a.tenant("acme").await;
    let on_b = b.api(&on_a.token);

    // Slow and sometimes failing: deliveries overlap and retry, so order is really at stake.
    let rx = Receiver::start().await;
    let mut script = Vec::new();
    for i in 0..600 {
        script.push(if i % 9 == 4 {
            Reply::Status(503)
        } else {
            Reply::Delay(3, 200)
        });
    }
    rx.script(script, Reply::Delay(2, 200));
    let i = on_a
        .integration(
            "acme",
            json!({"name": "ordered", "url": rx.url, "event_types": ["ivr.input"], "verification": "none",
                   "delivery": {"ordered": true, "retry": {"policy": "linear", "retries": 5}}}),
        )
        .await;
    let iid = i["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/tenants/acme/integrations/{iid}");
    // No waiting for node B to hear of anything: what A acknowledged, B obeys for the next event.

    // 20 calls × 8 events, each call's events posted alternately to A and B, one after the other.
    let calls = 20;
    let per_call = 8;
    let mut tasks = Vec::new();
    for c in 0..calls {
        let (na, nb) = (a.admin(), b.admin());
        tasks.push(tokio::spawn(async move {
            for k in 0..per_call {
                let node = if k % 2 == 0 { &na } else { &nb };
                let id = format!("c{c}-e{k}");
                let (st, _) = node
                    .post(
                        "/v1/events",
                        event(
                            &id,
                            "acme",
                            "ivr.input",
                            &format!("call-{c}"),
                            json!({"dtmf": "1"}),
                        ),
                    )
                    .await;
                assert_eq!(st, 202);
            }
        }));
    }
    for t in tasks {
        t.await.expect("ingest task");
    }
    let mut order: HashMap<String, Vec<usize>> = HashMap::new();
    let mut done: HashSet<String> = HashSet::new();
    while done.len() < calls * per_call {
        let r = rx.next(30).await;
        let id = r.json()["id"].as_str().unwrap_or_default().to_string();
        let (call, k) = id.split_once("-e").unwrap_or_default();
        let k: usize = k.parse().unwrap_or(usize::MAX);
        let seq = order.entry(call.to_string()).or_default();
        assert!(
            seq.last().is_none_or(|last| *last <= k),
            "call {call}: event {k} sent after event {}",
            seq.last().copied().unwrap_or_default()
        );
        seq.push(k);
        if r.status == 200 {
            done.insert(id);
        }
    }

    // Both nodes recorded outcomes, each into its own count rows: either node's chart sums
    // them (a success recorded twice or lost would show here).
    // (The receiver has answered; the outcome is recorded just after.)
    for node in [&on_a, &on_b] {
        until("both nodes' successes in the chart", 15, async || {
            let (st, v) = node.get(&format!("{path}/stats")).await;
            assert_eq!(st, 200, "{v}");
            let succeeded = crate::charts::totals(&v).0;
            assert!(succeeded <= (calls * per_call) as u64, "{v}");
            succeeded == (calls * per_call) as u64
        })
        .await;
    }

    // Disabled on A: B holds the very next event instead of sending it.
    let (st, _) = on_a
        .post(&format!("{path}/disable"), json!({"reason": "maintenance"}))
        .await;
    assert_eq!(st, 200);
    let (st, _) = b
        .admin()
        .post(
            "/v1/events",
            event(
                "after-disable",
                "acme",
                "ivr.input",
                "call-x",
                json!({"dtmf": "9"}),
            ),
        )
        .await;
    assert_eq!(st, 202);
    on_b.wait_for_deliveries("acme", &iid, "held", 1).await;

    // Edited on A (another URL) and re-enabled without resending: B sends the very next event
    // there.
    let rx2 = Receiver::start().await;
    let (st, v) = on_a.patch(&path, json!({"url": rx2.url})).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = on_a
        .post(&format!("{path}/enable"), json!({"resend": false}))
        .await;
    assert_eq!(st, 200);
    b.admin()
        .post(
            "/v1/events",
            event(
                "after-edit",
                "acme",
                "ivr.input",
                "call-y",
                json!({"dtmf": "8"}),
            ),
        )
        .await;
    assert_eq!(rx2.next(15).await.json()["id"], "after-edit");
    println!(
        "two nodes: {} events of {calls} calls in order; create, disable and edit on A obeyed by B for the very next event",
        calls * per_call
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_node_is_refused_by_the_other() {
    let (_pg, a, b) = two_nodes().await;
    let on_a = a.tenant("acme").await;
    let (_, viewer) = on_a
        .post(
            "/v1/tokens",
            json!({"role": "tenant_viewer", "tenant_id": "acme", "name": "v"}),
        )
        .await;
    let viewer_on_b = b.api(viewer["token"].as_str().unwrap_or_default());
    // B has looked the token up once, so it is in B's cache.
    let (st, _) = viewer_on_b.get("/v1/tenants/acme").await;
    assert_eq!(st, 200);
    let (st, _) = on_a
        .delete(&format!(
            "/v1/tokens/{}",
            viewer["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(st, 204);
    let took = until("node B to refuse the revoked token", 5, async || {
        viewer_on_b.get("/v1/tenants/acme").await.0 == 401
    })
    .await;
    eprintln!("revocation reached node B after {took:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_node_of_two_loses_no_acknowledged_event() {
    let pg = Postgres::get();
    let url = fresh_database(&pg.admin_url).await;
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port")
    };
    let (port_a, port_b) = (free_port(), free_port());
    let shared = [
        ("CALLHOOK_SEAL_KEY", SEAL_KEY),
        ("CALLHOOK_NODE_TIMEOUT_MS", "2000"),
    ];
    let mut node_a = spawn_server(dir_a.path(), &url, port_a, &shared);
    let mut node_b = spawn_server(dir_b.path(), &url, port_b, &shared);
    let api = |port: u16| Api {
        base: format!("http://127.0.0.1:{port}"),
        token: ADMIN.into(),
        http: reqwest::Client::new(),
    };
    let (api_a, api_b) = (api(port_a), api(port_b));
    wait_ready(&api_a.base).await;
    wait_ready(&api_b.base).await;

    let rx = Receiver::start().await;
    let mut script = Vec::new();
    for i in 0..600 {
        script.push(if i % 7 == 0 {
            Reply::Status(503)
        } else {
            Reply::Delay(15, 200)
        });
    }
    rx.script(script, Reply::Delay(5, 200));
    api_a
        .post("/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    let (st, _) = api_a
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"], "verification": "none",
                   "delivery": {"retry": {"policy": "linear", "retries": 10}}}),
        )
        .await;
    assert_eq!(st, 201);
    until("node B to know the integration", 10, async || {
        api_b.get("/v1/tenants/acme/integrations").await.1["items"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let ingest = [("a", api_a.clone()), ("b", api_b.clone())]
        .map(|(name, node)| ingest_until_stopped(node, name, 20, acked.clone(), stop.clone()));

    let mut got = Tally::default();
    for _ in 0..200 {
        got.take(&rx, 30).await;
    }
    node_a.kill().expect("kill -9");
    let _ = node_a.wait();
    let killed_at = Instant::now();
    let acked_at_kill = acked.lock().len();
    let undelivered_at_kill = acked.lock().difference(&got.seen).count();
    // B alone goes on taking events for a while.
    while acked.lock().len() < acked_at_kill + 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in ingest {
        let _ = t.await;
    }
    let acked = acked.lock().clone();
    rx.set_default(Reply::Status(200));
    got.until_all_of(&rx, &acked).await;
    let recovered_after = killed_at.elapsed();
    let lost = acked.difference(&got.seen).count();
    let duplicates = got.successes - got.seen.len();
    println!(
        "two nodes, one killed: acknowledged {} ({acked_at_kill} before the kill, {undelivered_at_kill} of them undelivered then), delivered {} distinct, {duplicates} duplicate successes, lost {lost}; all delivered {recovered_after:?} after the kill",
        acked.len(),
        got.seen.len(),
    );
    assert_eq!(lost, 0);
    assert!(
        undelivered_at_kill > 0,
        "the kill must leave acknowledged work undelivered"
    );
    // A duplicate is an attempt the dead node made whose success was never recorded: at most
    // what it had in flight (its in-flight limit per integration), never its whole backlog.
    assert!(duplicates <= 64, "{duplicates} duplicates");
    let _ = node_b.kill();
    let _ = node_b.wait();
}

/// Two nodes' stores on one new database of `pg` (which must outlive them: it may own the
/// server).
async fn two_stores(pg: &Postgres) -> (callhook::store::DynStore, callhook::store::DynStore) {
    let url = fresh_database(&pg.admin_url).await;
    let node_a = callhook::store::open(&url).await.expect("open a");
    let node_b = callhook::store::open(&url).await.expect("open b");
    (node_a, node_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_hears_how_many_share_the_store_so_rate_limits_are_split() {
    let pg = Postgres::get();
    let (a, b) = two_stores(&pg).await;
    let now = 1_800_000_000_000;
    let beat = a.heartbeat("node-a", now, 10_000).await.expect("beat a");
    assert_eq!(beat.live_nodes, 1);
    let beat = b
        .heartbeat("node-b", now + 1_000, 10_000)
        .await
        .expect("beat b");
    assert_eq!(beat.live_nodes, 2);
    // b falls silent: once it counts as dead, a is alone again and sends the whole rate.
    let beat = a
        .heartbeat("node-a", now + 20_000, 10_000)
        .await
        .expect("beat a");
    assert_eq!(beat.live_nodes, 1);
}

fn queued_call(n: usize) -> IngestItem {
    crate::store::cdr_item(&format!("w-{n}"), "2026-11-22T10:00:30Z", "b1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_closing_the_same_window_send_it_once() {
    let pg = Postgres::get();
    let (node_a, node_b) = two_stores(&pg).await;
    let boundary = callhook::time::parse_rfc3339_ms("2026-11-22T10:01:00Z").unwrap_or_default();
    let lease = |owner: &str| Lease {
        owner: Arc::from(owner),
        until: boundary + 600_000,
    };
    node_a
        .ingest(IngestBatch {
            items: (0..2500).map(queued_call).collect(),
            lease: lease("a"),
            now: boundary + 1000,
            not_before: None,
            config_version: None,
        })
        .await
        .expect("ingest");
    let window = |owner: &str| BatchWindow {
        lease: lease(owner),
        now: boundary + 1000,
        ..crate::store::window_at(boundary)
    };
    // Both nodes' schedulers reach the boundary at the same moment, several times over.
    let (a, b) = tokio::join!(
        node_a.close_window(window("a")),
        node_b.close_window(window("b"))
    );
    let (a, b) = (a.expect("close on a"), b.expect("close on b"));
    let (c, d) = tokio::join!(
        node_a.close_window(window("a")),
        node_b.close_window(window("b"))
    );
    let (c, d) = (c.expect("again"), d.expect("again"));
    let parts: Vec<_> = a.iter().chain(&b).chain(&c).chain(&d).collect();
    assert_eq!(
        parts.len(),
        3,
        "2 500 calls are three parts of one batch, closed once"
    );
    assert!(a.is_empty() || b.is_empty(), "one node closed it, not both");
    let mut calls: Vec<String> = parts
        .iter()
        .flat_map(|p| {
            p.event.event.data["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|i| i["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let sent = calls.len();
    calls.sort();
    calls.dedup();
    assert_eq!((sent, calls.len()), (2500, 2500), "every call once");

    // The purge: one node at a time; the other skips its turn instead of doubling the work.
    let (ra, rb) = tokio::join!(
        node_a.purge(i64::MAX, 10_000),
        node_b.purge(i64::MAX, 10_000)
    );
    let (ra, rb) = (ra.expect("purge a"), rb.expect("purge b"));
    assert!(
        ra.total() == 0 || rb.total() == 0,
        "both purged at once: {ra:?} {rb:?}"
    );
}

/// One call on node B, routed with caches at `config_version`.
fn queued_on_b(call: usize, config_version: Option<i64>) -> IngestBatch {
    IngestBatch {
        items: vec![queued_call(call)],
        lease: Lease {
            owner: Arc::from("b"),
            until: i64::MAX,
        },
        now: 1000,
        not_before: None,
        config_version,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_caches_lag_behind_a_change_does_not_route_with_them() {
    let pg = Postgres::get();
    let (node_a, node_b) = two_stores(&pg).await;
    // Node B's follower is "slow": nothing of its notices is applied.
    let mut b_notices = node_b.changes().expect("notices");
    node_b
        .ingest(queued_on_b(1, node_b.applied_version()))
        .await
        .expect("nothing changed yet");

    node_a
        .insert_integration(crate::store::disabled_integration(None), None)
        .await
        .expect("change on a");
    let refused = node_b
        .ingest(queued_on_b(2, node_b.applied_version()))
        .await;
    let Err(callhook::store::StoreError::StaleConfig(version)) = refused else {
        panic!("routed with caches older than the change: {refused:?}");
    };
    // The notice reaches B with that version; once applied, B routes again.
    let notice = b_notices.recv().await.expect("notice");
    assert_eq!(
        (notice.version, notice.change),
        (
            version,
            Some(callhook::store::Change::Integration("i1".into()))
        )
    );
    node_b.applied(notice.version);
    node_b
        .ingest(queued_on_b(3, node_b.applied_version()))
        .await
        .expect("caught up");
}

/// The race a two-node bench run hit: B routes a request while its caches still lack a new
/// integration, its follower applies the change before the request commits, and the request
/// was stored with no delivery for the integration. What counts is the version the caches had
/// when the request was routed, not the one at commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_routed_before_the_follower_caught_up_is_routed_again() {
    let pg = Postgres::get();
    let (node_a, node_b) = two_stores(&pg).await;
    let mut b_notices = node_b.changes().expect("notices");
    let routed_with = node_b.applied_version();
    assert!(
        routed_with.is_some(),
        "a shared store checks routing versions"
    );

    node_a
        .insert_integration(crate::store::disabled_integration(None), None)
        .await
        .expect("change on a");
    let notice = b_notices.recv().await.expect("notice");
    node_b.applied(notice.version);
    let late = node_b.ingest(queued_on_b(1, routed_with)).await;
    assert!(
        matches!(late, Err(callhook::store::StoreError::StaleConfig(v)) if v == notice.version),
        "a request routed before the change was applied must be routed again: {late:?}"
    );
}
