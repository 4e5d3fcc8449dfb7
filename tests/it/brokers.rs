//! Broker destinations against a real NATS server with JetStream (Debian's `nats-server`,
//! started here on 127.0.0.1 with its own store): the message and its headers, the check at
//! save, bad settings, and at-least-once and per-call order across a broker restart.

use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream;
use callhook::render::sign::verify;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

/// A `nats-server -js` on a free port of 127.0.0.1, with its store in a temporary directory
/// that outlives restarts.
struct Nats {
    /// First, so that it is killed before the store directory is removed.
    child: Option<tokio::process::Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Serves TLS only, with this certificate and key (PEM files in `dir`).
    tls: bool,
}

impl Nats {
    async fn start() -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut nats = Nats {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            tls: false,
        };
        nats.run().await;
        nats
    }

    /// A server that speaks TLS only, with a certificate for `127.0.0.1` from `ca`.
    async fn start_tls(ca: &crate::tls::TestCa) -> Nats {
        let mut nats = Nats::start().await;
        nats.stop().await;
        let (cert, key) = ca.client("127.0.0.1");
        std::fs::write(nats.dir.path().join("cert.pem"), cert).expect("cert");
        std::fs::write(nats.dir.path().join("key.pem"), key).expect("key");
        nats.tls = true;
        nats.run().await;
        nats
    }

    /// Starts the server and waits until it says it is ready.
    async fn run(&mut self) {
        let binary = std::env::var("CALLHOOK_NATS_SERVER")
            .unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let mut command = tokio::process::Command::new(binary);
        command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path());
        if self.tls {
            command
                .arg("--tls")
                .arg("--tlscert")
                .arg(self.dir.path().join("cert.pem"))
                .arg("--tlskey")
                .arg(self.dir.path().join("key.pem"));
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server (scripts/install-test-deps installs it)");
        let stderr = child.stderr.take().expect("stderr");
        wait_for_line(stderr, "Server is ready", "nats-server").await;
        self.child = Some(child);
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.url()).await.expect("connect");
        jetstream::new(client)
    }

    async fn stream(&self, name: &str, subjects: &[&str]) -> jetstream::stream::Stream {
        self.jetstream()
            .await
            .get_or_create_stream(jetstream::stream::Config {
                name: name.into(),
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await
            .expect("stream")
    }
}

/// Waits (at most a minute) for a broker's output to say `marker`, then keeps reading it so the
/// broker never blocks on a full pipe.
pub(crate) async fn wait_for_line(
    out: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    marker: &str,
    what: &str,
) {
    let mut lines = BufReader::new(out).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(marker) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "{what} did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// The first pending delivery of the integration with a failed attempt, once there is one.
pub(crate) async fn first_failed_attempt(api: &Api, iid: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = api
            .get(&format!(
                "/v1/tenants/acme/integrations/{iid}/deliveries?status=pending"
            ))
            .await;
        if let Some(d) = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["attempts"].as_u64().unwrap_or(0) >= 1)
        {
            return d.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no attempt failed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Two calls' four states each and the warm-up message, each delivered body as (call, seq):
/// every state there once, in order per call.
pub(crate) fn assert_each_state_once_in_order(bodies: &[Value]) {
    let mut seen: Vec<(String, u64)> = bodies
        .iter()
        .map(|body| {
            (
                body["call_id"].as_str().unwrap_or_default().to_string(),
                body["data"]["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for call in ["c-a", "c-b"] {
        let states: Vec<u64> = seen
            .iter()
            .filter(|(c, _)| c == call)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(states, [1, 2, 3, 4], "{call}: {seen:?}");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 9, "each state once: {seen:?}");
}

fn nats_spec(url: &str, extra: Value) -> Value {
    let mut spec = json!({"name": "queue", "url": url, "event_types": ["call.completed"],
                          "destination": {"type": "nats", "subject": "calls.acme", "stream": "CALLS"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    spec
}

/// The stream's messages, in order, once it holds at least `n`, moving the server's clock on
/// while it waits (retries are scheduled on it).
async fn messages(
    stream: &mut jetstream::stream::Stream,
    clock: &callhook::clock::Clock,
    n: u64,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let held = stream.info().await.map(|i| i.state.messages).unwrap_or(0);
        if held >= n {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream holds {held} of {n} messages"
        );
        clock.advance(Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut out = Vec::new();
    for seq in 1..=n {
        out.push(stream.get_raw_message(seq).await.expect("message"));
    }
    out
}

fn header(m: &async_nats::jetstream::message::StreamMessage, name: &str) -> String {
    m.headers
        .get(name)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_destination_gets_the_signed_payload_as_a_message_confirmed_by_its_stream() {
    let nats = Nats::start().await;
    let mut stream = nats.stream("CALLS", &["calls.>"]).await;
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    // Verification on: the broker is checked when saved (it answers, the stream takes the
    // subject).
    let integ = api
        .integration("acme", nats_spec(&nats.url(), json!({})))
        .await;
    assert_eq!(integ["destination"]["type"], "nats");
    let signing = integ["signing_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let data = json!({"answered": true, "direction": "inbound",
                      "caller": {"number": "+441610000002"}});
    assert_eq!(
        server
            .ingest(event("e-1", "acme", "call.completed", "c-1", data))
            .await
            .0,
        202
    );
    let got = messages(&mut stream, &server.clock, 1).await;
    let m = &got[0];
    assert_eq!(m.subject.as_str(), "calls.acme");
    let body: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
    assert_eq!(body["id"], "e-1");
    assert_eq!(body["delivery_id"], json!(header(m, "webhook-id")));
    assert_eq!(header(m, "Nats-Msg-Id"), header(m, "webhook-id"));
    assert_eq!(header(m, "callhook-event-type"), "call.completed");
    assert_eq!(header(m, "content-type"), "application/json; charset=utf-8");
    let ts: i64 = header(m, "webhook-timestamp").parse().unwrap_or_default();
    assert!(verify(
        &signing,
        &header(m, "webhook-id"),
        ts,
        &m.payload,
        &header(m, "webhook-signature")
    ));
    let done = api.wait_for_deliveries("acme", &iid, "succeeded", 1).await;
    let (_, detail) = api
        .get(&format!(
            "/v1/tenants/acme/integrations/{iid}/deliveries/{}",
            done[0]["id"].as_str().unwrap_or_default()
        ))
        .await;
    let attempt = &detail["attempts_log"][0];
    assert_eq!(attempt["status_code"], Value::Null, "{detail}");
    assert_eq!(
        attempt["response_excerpt"], "stream CALLS sequence 1",
        "{detail}"
    );
    // The console shows where it goes (the form keeps it; creating one is the API's).
    let mut b = crate::console::Browser::new(&server);
    b.sign_in(&api.token).await;
    let page = b.get(&format!("/console/t/acme/integrations/{iid}")).await;
    assert!(
        page.html
            .contains("subject <code>calls.acme</code>, stream <code>CALLS</code>"),
        "{}",
        page.html
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_deliveries_survive_a_broker_restart_at_least_once_and_in_order_per_call() {
    let mut nats = Nats::start().await;
    let mut stream = nats.stream("CALLS", &["calls.>"]).await;
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    api.integration(
        "acme",
        nats_spec(
            &nats.url(),
            json!({"event_types": ["call.state"],
                   "delivery": {"timeout_ms": 1000, "retry": {"policy": "linear", "retries": 10}}}),
        ),
    )
    .await;
    // One delivery first, so the node holds a connection when the broker goes away.
    let warm = event(
        "warm-1",
        "acme",
        "call.state",
        "c-warm",
        json!({"seq": 1, "state": "trying", "direction": "inbound", "local": {"user_id": "u1"}}),
    );
    assert_eq!(server.ingest(warm).await.0, 202);
    messages(&mut stream, &server.clock, 1).await;
    nats.stop().await;
    // Two calls' states while the broker is down: every attempt fails and is retried.
    const STATES: [&str; 4] = ["trying", "proceeding", "early", "confirmed"];
    let mut events = Vec::new();
    for seq in 1..=4 {
        for call in ["c-a", "c-b"] {
            events.push(event(
                &format!("{call}-{seq}"),
                "acme",
                "call.state",
                call,
                json!({"seq": seq, "state": STATES[seq - 1],
                       "direction": "inbound", "local": {"user_id": "u1"}}),
            ));
        }
    }
    assert_eq!(server.ingest(json!({"events": events})).await.0, 202);
    let (_, list) = api.get("/v1/tenants/acme/integrations?limit=1").await;
    let iid = list["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The first attempts fail while the broker is down (and are logged so).
    first_failed_attempt(&api, &iid).await;
    nats.run().await;
    let got = messages(&mut stream, &server.clock, 9).await;
    // In order per call, every state there once (JetStream drops a retry's copy).
    let bodies: Vec<Value> = got
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap_or(Value::Null))
        .collect();
    assert_each_state_once_in_order(&bodies);
    api.wait_for_deliveries("acme", &iid, "succeeded", 9).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_settings_are_checked_when_saved_and_nothing_is_saved_when_they_are_wrong() {
    let nats = Nats::start().await;
    nats.stream("CALLS", &["calls.>"]).await;
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let url = nats.url();
    let cases = [
        (
            json!({"destination": {"type": "nats", "subject": "calls.*", "stream": "CALLS"}}),
            "destination.subject",
        ),
        (
            json!({"destination": {"type": "nats", "subject": "calls acme", "stream": "CALLS"}}),
            "destination.subject",
        ),
        (
            json!({"destination": {"type": "nats", "subject": "calls.acme", "stream": "CALLS!"}}),
            "destination.stream",
        ),
        (
            json!({"destination": {"type": "nats", "subject": "calls.acme", "stream": "CALLS", "queue": 1}}),
            "queue",
        ),
        (json!({"url": "https://example.com/"}), "tls://"),
        (json!({"method": "PUT"}), "`method`"),
        (json!({"secret_use": "webex-signature"}), "`secret_use`"),
        (
            json!({"delivery": {"egress": "fixed"}}),
            "`delivery.egress`",
        ),
        // The check at save: the stream must exist and take the subject.
        (
            json!({"destination": {"type": "nats", "subject": "calls.acme", "stream": "NOPE"}}),
            "stream `NOPE`",
        ),
        (
            json!({"destination": {"type": "nats", "subject": "other.acme", "stream": "CALLS"}}),
            "does not take subject",
        ),
        (
            json!({"url": "nats://127.0.0.1:1"}),
            "connecting to the NATS server",
        ),
    ];
    for (extra, says) in cases {
        let (st, v) = api
            .post(
                "/v1/tenants/acme/integrations",
                nats_spec(&url, extra.clone()),
            )
            .await;
        assert!(st == 422 || st == 400, "{extra}: {st} {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{extra}: {says}: {message}");
    }
    let (_, list) = api.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"], json!([]));
    // A change of destination by PATCH is checked as a new one is.
    let integ = api.integration("acme", nats_spec(&url, json!({}))).await;
    let path = format!(
        "/v1/tenants/acme/integrations/{}",
        integ["id"].as_str().unwrap_or_default()
    );
    let (st, v) = api
        .patch(
            &path,
            json!({"destination": {"type": "nats", "subject": "calls.acme", "stream": "NOPE"}}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let (_, now) = api.get(&path).await;
    assert_eq!(now["destination"]["stream"], "CALLS");
    api.delete(&path).await;
    // Without verification it saves without the broker.
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            nats_spec("nats://127.0.0.1:1", json!({"verification": "none"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    server.stop().await;
}

/// Production is TLS to a broker callhook does not control: the server's certificate is checked
/// against the node's roots (here a private CA in `CALLHOOK_CA_FILE`), and plain `nats://` is
/// refused where plain http is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_behind_a_private_ca_is_reached_over_tls_and_an_untrusted_one_is_not() {
    let ca = crate::tls::TestCa::new();
    let nats = Nats::start_tls(&ca).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("tls://127.0.0.1:{}", nats.port);
    // Untrusted: the check at save fails on the certificate.
    let server = crate::tls::https_only(None).await;
    let api = server.tenant("acme").await;
    let (st, v) = api
        .post("/v1/tenants/acme/integrations", nats_spec(&url, json!({})))
        .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["code"], "destination_unreachable", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("certificate")),
        "{v}"
    );
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            nats_spec(&format!("nats://127.0.0.1:{}", nats.port), json!({})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("must use tls://")),
        "{v}"
    );
    server.stop().await;
    // Trusted: saved after the check, and delivered over TLS.
    let server = crate::tls::https_only(Some(ca.file(dir.path()))).await;
    let api = server.tenant("acme").await;
    // The test's own client trusts the CA to create the stream (it builds its TLS setup from
    // the process's default provider; the node passes its own).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = async_nats::ConnectOptions::new()
        .add_root_certificates(ca.file(dir.path()))
        .require_tls(true)
        .connect(url.as_str())
        .await
        .expect("connect over TLS");
    let mut stream = jetstream::new(client)
        .get_or_create_stream(jetstream::stream::Config {
            name: "CALLS".into(),
            subjects: vec!["calls.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    api.integration("acme", nats_spec(&url, json!({}))).await;
    let data = json!({"answered": true, "direction": "inbound"});
    assert_eq!(
        server
            .ingest(event("e-tls", "acme", "call.completed", "c-tls", data))
            .await
            .0,
        202
    );
    let got = messages(&mut stream, &server.clock, 1).await;
    let body: Value = serde_json::from_slice(&got[0].payload).unwrap_or(Value::Null);
    assert_eq!(body["id"], "e-tls");
    server.stop().await;
}
