//! `kill -9` in the middle of ingest and delivery, then a restart on the same store.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

use crate::support::*;

pub fn spawn_server(
    dir: &std::path::Path,
    database_url: &str,
    port: u16,
    env: &[(&str, &str)],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_callhook"))
        .arg("serve")
        .envs(env.iter().copied())
        .env("CALLHOOK_DATABASE_URL", database_url)
        .env("CALLHOOK_LISTEN", format!("127.0.0.1:{port}"))
        .env("CALLHOOK_DATA_DIR", dir)
        .env("CALLHOOK_ADMIN_TOKEN", ADMIN)
        .env("CALLHOOK_ALLOW_INSECURE_HTTP", "true")
        .env("CALLHOOK_ALLOW_PRIVATE_DESTINATIONS", "true")
        .env("CALLHOOK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn callhook")
}

/// Posts batches of `per_request` `ivr.input` events (ids `<prefix>-<n>-<i>`) to `api` until
/// `stop`, adding the ids of every batch answered 202 to `acked`; a refused or failed request
/// (the node is down) is not counted, and tried again with new ids.
pub fn ingest_until_stopped(
    api: Api,
    prefix: &'static str,
    per_request: usize,
    acked: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let ids: Vec<String> = (0..per_request)
                .map(|i| format!("{prefix}-{n}-{i}"))
                .collect();
            let events: Vec<_> = ids
                .iter()
                .map(|id| event(id, "acme", "ivr.input", id, json!({"dtmf": "1"})))
                .collect();
            let sent = api
                .http
                .post(format!("{}/v1/events", api.base))
                .bearer_auth(ADMIN)
                .json(&json!({"events": events}))
                .send()
                .await;
            if matches!(sent, Ok(ref r) if r.status() == 202) {
                acked.lock().extend(ids);
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            n += 1;
        }
    })
}

/// What a receiver got during a kill test: requests, successful ones, distinct event ids.
#[derive(Default)]
pub struct Tally {
    pub requests: usize,
    pub successes: usize,
    pub seen: HashSet<String>,
}

impl Tally {
    /// Takes the next delivery (waiting up to `secs`).
    pub async fn take(&mut self, rx: &Receiver, secs: u64) {
        let r = rx.next(secs).await;
        self.requests += 1;
        if r.status == 200 {
            self.successes += 1;
            self.seen
                .insert(r.json()["id"].as_str().unwrap_or_default().to_string());
        }
    }

    /// Takes deliveries until every acknowledged id has arrived (fails after two minutes).
    pub async fn until_all_of(&mut self, rx: &Receiver, acked: &HashSet<String>) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !acked.is_subset(&self.seen) {
            assert!(
                Instant::now() < deadline,
                "lost: {} acknowledged events never delivered",
                acked.difference(&self.seen).count()
            );
            self.take(rx, 60).await;
        }
    }
}

pub async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ingest_and_delivery_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("dir");
    let url = store_url(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let api = Api {
        base: base.clone(),
        token: ADMIN.into(),
        http: reqwest::Client::new(),
    };
    let rx = Receiver::start().await;
    // A slow receiver that sometimes fails: deliveries are queued, in flight and in retry when
    // the process dies.
    let mut script = Vec::new();
    for i in 0..400 {
        script.push(if i % 7 == 0 {
            Reply::Status(503)
        } else {
            Reply::Delay(15, 200)
        });
    }
    rx.script(script, Reply::Delay(5, 200));

    let mut child = spawn_server(dir.path(), &url, port, &[]);
    wait_ready(&base).await;
    api.post("/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    let (st, _) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "n", "url": rx.url,
        "event_types": ["ivr.input"], "verification": "none",
        "delivery": {"retry": {"policy": "linear", "retries": 10}}}),
        )
        .await;
    assert_eq!(st, 201);

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let ingest = ingest_until_stopped(api.clone(), "ev", 25, acked.clone(), stop.clone());

    // Kill once deliveries are flowing and ingest is mid-stream.
    let mut got = Tally::default();
    while got.requests < 150 {
        got.take(&rx, 30).await;
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let acked_before_kill = acked.lock().len();
    let backlog_at_kill = acked.lock().difference(&got.seen).count();

    let mut child = spawn_server(dir.path(), &url, port, &[]);
    wait_ready(&base).await;
    // Ingest goes on against the restarted process for a moment, then stops.
    while acked.lock().len() < acked_before_kill + 250 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = ingest.await;
    let acked = acked.lock().clone();
    rx.set_default(Reply::Status(200));

    got.until_all_of(&rx, &acked).await;
    let lost = acked.difference(&got.seen).count();
    println!(
        "kill -9: acknowledged {} ({acked_before_kill} before the kill, {backlog_at_kill} of them not yet delivered), delivered {} distinct in {} requests, lost {lost}",
        acked.len(),
        got.seen.len(),
        got.requests
    );
    assert_eq!(lost, 0);
    assert!(
        backlog_at_kill > 0,
        "the kill must leave acknowledged work undelivered"
    );
    let _ = child.kill();
    let _ = child.wait();
}
