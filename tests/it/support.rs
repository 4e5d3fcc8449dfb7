//! Test support: the real server on 127.0.0.1:0, a receiver whose replies a test scripts, and
//! a small API client.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use callhook::clock::Clock;

pub const ADMIN: &str = "test-operator-token";

pub struct TestServer {
    pub running: Option<callhook::app::Running>,
    /// The server's clock: manual, so a test moves it past a wait instead of sleeping. Leases
    /// (1 h) and node heartbeats follow it too: moving it past a lease makes deliveries still
    /// queued in memory claimable again, and nodes of one database with separate clocks would
    /// take each other for dead — move it by the waits a test means, no further.
    pub clock: Clock,
    pub base: String,
    _dir: tempfile::TempDir,
}

/// The backend under test: SQLite in `dir`, or — with `CALLHOOK_TEST_BACKEND=postgres` (see
/// `scripts/test`) — a new, empty database on the server of `CALLHOOK_TEST_POSTGRES_URL`.
pub async fn store_url(dir: &std::path::Path) -> String {
    if std::env::var("CALLHOOK_TEST_BACKEND").as_deref() == Ok("postgres") {
        let admin_url = std::env::var("CALLHOOK_TEST_POSTGRES_URL").expect(
            "CALLHOOK_TEST_BACKEND=postgres needs CALLHOOK_TEST_POSTGRES_URL (scripts/pg-cluster start DIR prints one)",
        );
        return fresh_database(&admin_url).await;
    }
    format!("sqlite://{}", dir.join("callhook.db").display())
}

/// A PostgreSQL server for tests that need one whatever the backend under test: the one of
/// `CALLHOOK_TEST_POSTGRES_URL`, else a private cluster started now and stopped on drop.
pub struct Postgres {
    pub admin_url: String,
    own: Option<tempfile::TempDir>,
}

impl Postgres {
    pub fn get() -> Postgres {
        if let Ok(url) = std::env::var("CALLHOOK_TEST_POSTGRES_URL") {
            if !url.is_empty() {
                return Postgres {
                    admin_url: url,
                    own: None,
                };
            }
        }
        Postgres::private()
    }

    /// A cluster of this test's own (to crash without disturbing other tests).
    pub fn private() -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let admin_url = pg_cluster("start", dir.path());
        Postgres {
            admin_url,
            own: Some(dir),
        }
    }

    /// Stops the private cluster as a crash would, or starts it again on the same port.
    pub fn crash(&self) {
        pg_cluster(
            "crash",
            self.own.as_ref().expect("a private cluster").path(),
        );
    }
    pub fn resume(&self) {
        pg_cluster(
            "resume",
            self.own.as_ref().expect("a private cluster").path(),
        );
    }
}

fn pg_cluster(command: &str, dir: &std::path::Path) -> String {
    let out =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster"))
            .arg(command)
            .arg(dir)
            .output()
            .expect("run scripts/pg-cluster");
    assert!(
        out.status.success(),
        "scripts/pg-cluster {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            let _ = std::process::Command::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/pg-cluster"
            ))
            .arg("stop")
            .arg(dir.path())
            .output();
        }
    }
}

/// Creates a database with a random name and returns its URL.
pub async fn fresh_database(admin_url: &str) -> String {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    let conn = tokio::spawn(conn);
    let name = format!("t_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    drop(client);
    let _ = conn.await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    format!("{base}/{name}")
}

pub fn dev_config(dir: &std::path::Path) -> callhook::config::Config {
    let mut c = callhook::config::Config::for_data_dir(dir.to_path_buf());
    c.admin_token = Some(ADMIN.into());
    c.allow_insecure_http = true;
    c.allow_private_destinations = true;
    // The tests' own NATS servers (tests/it/brokers.rs).
    c.nats_servers = vec!["127.0.0.1".into(), "localhost".into()];
    c.amqp_servers = vec!["127.0.0.1".into(), "localhost".into()];
    c.shutdown_grace_ms = 2_000;
    c
}

impl TestServer {
    /// A server for local receivers (insecure http and private destinations allowed).
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut callhook::config::Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = dev_config(dir.path());
        config.database_url = Some(store_url(dir.path()).await);
        config.clock = Clock::manual();
        tweak(&mut config);
        let clock = config.clock.clone();
        let running = callhook::app::start(config).await.expect("server starts");
        let base = format!("http://{}", running.addr);
        TestServer {
            running: Some(running),
            clock,
            base,
            _dir: dir,
        }
    }

    /// A server on a store that outlives it (the test holds the directory): its URL, to open
    /// the store again once the server has stopped.
    pub async fn start_on_kept_store() -> (TestServer, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = store_url(dir.path()).await;
        let for_server = url.clone();
        let server = Self::start_with(move |c| c.database_url = Some(for_server)).await;
        (server, url, dir)
    }

    pub fn api(&self, token: &str) -> Api {
        Api {
            base: self.base.clone(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().to_path_buf()
    }

    /// Posts events (one, or `{"events": [...]}`) with the operator token.
    pub async fn ingest(&self, body: Value) -> (u16, Value) {
        self.admin().post("/v1/events", body).await
    }

    pub fn admin(&self) -> Api {
        self.api(ADMIN)
    }

    /// A receiver that stamps arrivals with this server's clock.
    pub async fn receiver(&self) -> Receiver {
        Receiver::start_on(self.clock.clone()).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// A tenant and a tenant_admin token for it.
    pub async fn tenant(&self, id: &str) -> Api {
        let admin = self.admin();
        let (st, _) = admin
            .post("/v1/tenants", json!({"id": id, "name": id}))
            .await;
        assert_eq!(st, 201, "tenant {id}");
        let (st, tok) = admin
            .post(
                "/v1/tokens",
                json!({"role": "tenant_admin", "tenant_id": id, "name": "t"}),
            )
            .await;
        assert_eq!(st, 201);
        self.api(tok["token"].as_str().unwrap_or_default())
    }
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates an integration and returns its JSON (with the signing secret).
    pub async fn integration(&self, tenant: &str, spec: Value) -> Value {
        let (st, v) = self
            .post(&format!("/v1/tenants/{tenant}/integrations"), spec)
            .await;
        assert_eq!(st, 201, "create integration: {v}");
        v
    }

    /// Waits until a delivery log query returns `n` items with `status` (awaited by polling the
    /// API: the log is what a user would look at).
    pub async fn wait_for_deliveries(
        &self,
        tenant: &str,
        iid: &str,
        status: &str,
        n: usize,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, v) = self
                .get(&format!(
                    "/v1/tenants/{tenant}/integrations/{iid}/deliveries?status={status}&limit=500"
                ))
                .await;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if items.len() >= n {
                return items;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} {status} deliveries, have {}",
                items.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub fn event(id: &str, tenant: &str, kind: &str, call: &str, data: Value) -> Value {
    json!({"id": id, "type": kind, "tenant_id": tenant, "occurred_at": "2026-11-22T10:00:00.123Z",
           "call_id": call, "data": data})
}

/// `ivr.input` events `e<i>` for `i` in `range`, each on its own call `c<i>`.
pub fn ivr_events(tenant: &str, range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| {
            event(
                &format!("e{i}"),
                tenant,
                "ivr.input",
                &format!("c{i}"),
                json!({"dtmf": "1"}),
            )
        })
        .collect()
}

/// What a receiver answers.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    /// Never answers (until the client gives up).
    Hang,
    Delay(u64, u16),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChallengeReply {
    Echo,
    Wrong,
    Status(u16),
    Hang,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The raw query string (GET deliveries carry their payload there).
    pub query: String,
    pub at: Instant,
    /// The arrival on the clock the receiver was started on (the server's, for
    /// [`TestServer::receiver`]), in epoch milliseconds.
    pub clock_ms: i64,
    /// The status the receiver answered with.
    pub status: u16,
    /// The HTTP version the request came in.
    pub version: axum::http::Version,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
    challenge: ChallengeReply,
}

#[derive(Clone)]
struct RecvState {
    script: Arc<Mutex<Script>>,
    tx: mpsc::UnboundedSender<Received>,
    concurrency: Arc<Concurrency>,
    clock: Clock,
}

/// Requests being answered right now, and the most there ever were at once.
#[derive(Default)]
pub struct Concurrency {
    now: std::sync::atomic::AtomicUsize,
    pub most: std::sync::atomic::AtomicUsize,
}

struct InFlight(Arc<Concurrency>);

impl InFlight {
    fn enter(c: &Arc<Concurrency>) -> InFlight {
        use std::sync::atomic::Ordering::SeqCst;
        let now = c.now.fetch_add(1, SeqCst) + 1;
        c.most.fetch_max(now, SeqCst);
        InFlight(c.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A real HTTP endpoint on 127.0.0.1:0.
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    pub concurrency: Arc<Concurrency>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(Clock::system()).await
    }

    /// A receiver speaking https with `tls` (its certificate should be for `localhost`), at
    /// `https://localhost:<port>/hook`.
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Receiver {
        let (mut receiver, app) = Self::parts(Clock::system());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    // HTTP/2 when the client offered it and the configuration lists it (ALPN).
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let io = hyper_util::rt::TokioIo::new(tls);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(io, service)
                        .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                });
            }
        });
        receiver.url = format!("https://localhost:{}/hook", addr.port());
        receiver
    }

    /// The receiver's state and its app, not yet listening.
    fn parts(clock: Clock) -> (Receiver, axum::Router) {
        let (tx, rx) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(Script {
            queue: VecDeque::new(),
            default: Reply::Status(200),
            challenge: ChallengeReply::Echo,
        }));
        let concurrency = Arc::new(Concurrency::default());
        let state = RecvState {
            script: script.clone(),
            tx,
            concurrency: concurrency.clone(),
            clock,
        };
        let app = axum::Router::new().fallback(handle).with_state(state);
        let receiver = Receiver {
            url: String::new(),
            script,
            rx: tokio::sync::Mutex::new(rx),
            concurrency,
        };
        (receiver, app)
    }

    /// A receiver that stamps arrivals with `clock`.
    pub async fn start_on(clock: Clock) -> Receiver {
        let (mut receiver, app) = Self::parts(clock);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver.url = format!("http://{addr}/hook");
        receiver
    }

    /// Replies for the next deliveries, in order; then `default`.
    pub fn script(&self, replies: Vec<Reply>, default: Reply) {
        let mut s = self.script.lock();
        s.queue = replies.into();
        s.default = default;
    }

    pub fn set_default(&self, default: Reply) {
        self.script.lock().default = default;
    }

    pub fn challenge(&self, reply: ChallengeReply) {
        self.script.lock().challenge = reply;
    }

    /// The next delivery (challenges are not reported), or a panic after `secs`.
    pub async fn next(&self, secs: u64) -> Received {
        let mut rx = self.rx.lock().await;
        match tokio::time::timeout(Duration::from_secs(secs), rx.recv()).await {
            Ok(Some(r)) => r,
            _ => panic!("no delivery arrived within {secs} s"),
        }
    }

    /// The next `n` deliveries, moving `clock` forward by `step` whenever none is waiting:
    /// retry waits of seconds pass in milliseconds, and arrivals keep their clock times.
    /// Panics when `n` have not arrived within `max` on the clock.
    pub async fn take_advancing(
        &self,
        clock: &Clock,
        n: usize,
        step: Duration,
        max: Duration,
    ) -> Vec<Received> {
        let mut rx = self.rx.lock().await;
        let until = clock.now_ms() + max.as_millis() as i64;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout(Duration::from_millis(5), rx.recv()).await {
                Ok(Some(r)) => out.push(r),
                Ok(None) => panic!("the receiver stopped"),
                Err(_) => {
                    assert!(
                        clock.now_ms() < until,
                        "{} of {n} deliveries arrived within {max:?} on the clock",
                        out.len()
                    );
                    clock.advance(step);
                }
            }
        }
        out
    }

    /// Moves `clock` forward in `step`s up to `until`, panicking if a delivery arrives on the way
    /// (each step leaves the node a few milliseconds to send what it would).
    pub async fn none_until(&self, clock: &Clock, until: i64, step: Duration) {
        let mut rx = self.rx.lock().await;
        loop {
            if let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(5), rx.recv()).await {
                panic!(
                    "a delivery arrived at {} on the clock, before {until}",
                    r.clock_ms
                );
            }
            let now = clock.now_ms();
            if now >= until {
                return;
            }
            clock.advance(step.min(Duration::from_millis((until - now) as u64)));
        }
    }

    pub async fn take(&self, n: usize, secs: u64) -> Vec<Received> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next(secs).await);
        }
        out
    }
}

async fn handle(
    State(state): State<RecvState>,
    version: axum::http::Version,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri.query().unwrap_or_default().to_string();
    let at = Instant::now();
    let clock_ms = state.clock.now_ms();
    if headers
        .get("callhook-event-type")
        .and_then(|v| v.to_str().ok())
        == Some("challenge")
    {
        let token = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["challenge"].as_str().map(String::from))
            .unwrap_or_default();
        let mode = state.script.lock().challenge;
        return match mode {
            ChallengeReply::Echo => ([("content-type", "text/plain")], token).into_response(),
            ChallengeReply::Wrong => ([("content-type", "text/plain")], "nope").into_response(),
            ChallengeReply::Status(s) => StatusCode::from_u16(s)
                .unwrap_or(StatusCode::OK)
                .into_response(),
            ChallengeReply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::OK.into_response()
            }
        };
    }
    let _in_flight = InFlight::enter(&state.concurrency);
    let reply = {
        let mut s = state.script.lock();
        s.queue.pop_front().unwrap_or_else(|| s.default.clone())
    };
    let status = match reply {
        Reply::Status(s) | Reply::RetryAfter(s, _) | Reply::Delay(_, s) => s,
        Reply::Hang => 0,
    };
    let _ = state.tx.send(Received {
        headers,
        body,
        query,
        at,
        clock_ms,
        status,
        version,
    });
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s)
            .unwrap_or(StatusCode::OK)
            .into_response(),
        Reply::RetryAfter(s, secs) => (
            StatusCode::from_u16(s).unwrap_or(StatusCode::OK),
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Reply::Delay(ms, s) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            StatusCode::from_u16(s)
                .unwrap_or(StatusCode::OK)
                .into_response()
        }
    }
}

/// How many deliveries a stopped server left leased to itself in `store` (a graceful
/// stop leaves none).
pub async fn leases_left(store: &callhook::store::DynStore) -> u64 {
    store.recover(i64::MAX / 4, 0).await.expect("read leases")
}
