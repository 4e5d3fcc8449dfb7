//! A RabbitMQ node for the AMQP tests (Debian's `rabbitmq-server`, started here on 127.0.0.1
//! with its own node name, ports and store), and helpers to read what callhook published.

use std::process::Stdio;
use std::time::Duration;

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};

/// A RabbitMQ node on free ports of 127.0.0.1, its store in a temporary directory that outlives
/// restarts; optionally a TLS listener too, with a certificate for 127.0.0.1.
pub(crate) struct Rabbit {
    pub(crate) child: Option<tokio::process::Child>,
    pub(crate) port: u16,
    pub(crate) tls_port: Option<u16>,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) const USER: &str = "callhook";
pub(crate) const PASSWORD: &str = "callhook-pass-1";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Rabbit {
    pub(crate) async fn start(ca: Option<&crate::tls::TestCa>) -> Rabbit {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        // The broker's user (its password is the integration's secret, 8 characters or more).
        let mut conf = format!(
            "listeners.tcp.default = 127.0.0.1:{port}\n\
             default_user = {USER}\n\
             default_pass = {PASSWORD}\n"
        );
        let tls_port = ca.map(|ca| {
            let tls_port = free_port();
            let (cert, key) = ca.client("127.0.0.1");
            std::fs::write(dir.path().join("cert.pem"), cert).expect("cert");
            std::fs::write(dir.path().join("key.pem"), key).expect("key");
            let ca_file = ca.file(dir.path());
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                ca_file.display(),
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display(),
            ));
            tls_port
        });
        std::fs::write(dir.path().join("rabbitmq.conf"), conf).expect("conf");
        std::fs::write(dir.path().join("plugins"), "[].").expect("plugins");
        let mut rabbit = Rabbit {
            child: None,
            port,
            tls_port,
            dir,
        };
        rabbit.run().await;
        rabbit
    }

    /// Starts the node and waits until it says it is ready to take connections.
    pub(crate) async fn run(&mut self) {
        let d = self.dir.path();
        let binary = std::env::var("CALLHOOK_RABBITMQ_SERVER")
            .unwrap_or_else(|_| "/usr/lib/rabbitmq/bin/rabbitmq-server".into());
        let mut command = tokio::process::Command::new(binary);
        command
            .env("HOME", d)
            .env(
                "RABBITMQ_NODENAME",
                format!("callhook-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d.join("feature_flags"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            // Its own process group, so that stopping it stops the Erlang VM under the script.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .expect("rabbitmq-server (scripts/install-test-deps installs it)");
        let stdout = child.stdout.take().expect("stdout");
        crate::brokers::wait_for_line(stdout, "Server startup complete", "rabbitmq-server").await;
        self.child = Some(child);
    }

    /// Kills the whole node at once (no clean shutdown), as a crash would.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&child);
            let _ = child.wait().await;
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("amqp://127.0.0.1:{}", self.port)
    }

    /// The test's own connection, as the broker's default user.
    pub(crate) async fn admin(&self) -> lapin::Channel {
        let conn = Connection::connect(
            &format!("amqp://{USER}:{PASSWORD}@127.0.0.1:{}/%2f", self.port),
            ConnectionProperties::default(),
        )
        .await
        .expect("connect");
        // The channel keeps its connection open.
        conn.create_channel().await.expect("channel")
    }

    /// A topic exchange `calls` and a durable queue bound to it for `binding`.
    pub(crate) async fn exchange_and_queue(&self, queue: &str, binding: &str) -> lapin::Channel {
        let ch = self.admin().await;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            "calls".into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .expect("exchange");
        self.queue(&ch, queue, binding).await;
        ch
    }

    pub(crate) async fn queue(&self, ch: &lapin::Channel, queue: &str, binding: &str) {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(queue.into(), durable, FieldTable::default())
            .await
            .expect("queue");
        ch.queue_bind(
            queue.into(),
            "calls".into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    }
}

/// Kills the script and the Erlang VM it started (killing the script alone leaves the VM).
pub(crate) fn kill_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            kill_group(child);
        }
    }
}

pub(crate) fn amqp_spec(url: &str, extra: Value) -> Value {
    let mut spec = json!({"name": "queue", "url": url, "event_types": ["call.completed"],
                          "secret": PASSWORD,
                          "destination": {"type": "amqp", "exchange": "calls",
                                          "routing_key": "acme.cdr", "user": USER}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    spec
}

/// `n` messages from `queue`, taken in order, moving the server's clock on while it waits
/// (retries are scheduled on it).
pub(crate) async fn take(
    ch: &lapin::Channel,
    queue: &str,
    clock: &callhook::clock::Clock,
    n: usize,
) -> Vec<lapin::message::BasicGetMessage> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        let got = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get");
        match got {
            Some(m) => out.push(m),
            None => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{queue} gave {} of {n} messages",
                    out.len()
                );
                clock.advance(Duration::from_millis(500));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}

/// Whatever the queue still holds.
pub(crate) async fn take_waiting(
    ch: &lapin::Channel,
    queue: &str,
) -> Vec<lapin::message::BasicGetMessage> {
    let mut out = Vec::new();
    while let Ok(Some(m)) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
    {
        out.push(m);
    }
    out
}

pub(crate) fn header(m: &lapin::message::BasicGetMessage, name: &str) -> String {
    let headers = m.delivery.properties.headers().clone().unwrap_or_default();
    match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        _ => String::new(),
    }
}
