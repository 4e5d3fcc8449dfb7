//! Configuration: every setting is a `CALLHOOK_*` environment variable with a matching flag,
//! parsed once into typed values (a bad value stops the start with clap's message naming the
//! setting); the defaults live in [`defaults`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

/// Every default in one place: the flags' and [`Config::for_data_dir`]'s alike.
pub mod defaults {
    pub const RETENTION_HOURS: u32 = 48;
    pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
    pub const DEFAULT_MAX_INTEGRATIONS: u32 = 100;
    pub const BODY_MEMORY_BYTES: usize = 256 * 1024 * 1024;
    pub const BODY_TIMEOUT_MS: u64 = 30_000;
    pub const MAX_RECORDING_BYTES: u64 = 256 * 1024 * 1024;
    pub const HEADER_TIMEOUT_MS: u64 = 10_000;
    pub const WRITE_TIMEOUT_MS: u64 = 30_000;
    pub const STREAM_SEND_TIMEOUT_MS: u64 = 5_000;
    pub const MAX_CONNECTIONS: usize = 768;
    pub const SHUTDOWN_GRACE_MS: u64 = 10_000;
    pub const DERIVED_CDR_GRACE_MS: u64 = 10_000;
    pub const NODE_TIMEOUT_MS: u64 = 10_000;
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where integrations that name no `delivery.egress` send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EgressDefault {
    Direct,
    Fixed,
}

/// A `CALLHOOK_LOG` filter, checked when the configuration is read: a typo stops the start
/// with a message instead of silently logging at another level.
fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| {
            format!("`{s}` is not a log filter ({e}); e.g. `info` or `callhook=debug,info`")
        })
}

/// The settings of a `--config` file: TOML whose keys are the `CALLHOOK_*` names without the
/// prefix, in lower case (`listen = "0.0.0.0:8080"`, `max_body_bytes = 8388608`), returned as
/// the environment variables they stand for. `known` are the variables the command reads. An
/// unknown key, or a value that is not a string, number or boolean, is an error naming it: a
/// typo never silently does nothing.
pub fn file_settings(path: &Path, known: &[String]) -> Result<Vec<(String, String)>, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {name}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config {name} is not TOML: {e}"))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let var = format!("CALLHOOK_{}", key.to_ascii_uppercase());
        if !known.contains(&var) || var == "CALLHOOK_CONFIG" {
            let names: Vec<String> = known
                .iter()
                .filter(|k| k.as_str() != "CALLHOOK_CONFIG")
                .map(|k| k.trim_start_matches("CALLHOOK_").to_ascii_lowercase())
                .collect();
            return Err(format!(
                "--config {name}: unknown setting `{key}`; the settings are {}",
                names.join(", ")
            ));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(format!(
                    "--config {name}: `{key}` must be a string, number or boolean, not {}",
                    other.type_str()
                ))
            }
        };
        out.push((var, text));
    }
    Ok(out)
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// A TOML file of settings (the `CALLHOOK_*` names without the prefix, lower case); the
    /// environment and flags win over it.
    #[arg(long, env = "CALLHOOK_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address the API, console and health endpoints listen on.
    #[arg(long, env = "CALLHOOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// `sqlite://PATH` (embedded, the default under the data dir) or `postgres://…`.
    #[arg(long, env = "CALLHOOK_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for the embedded database, the sealing key and recording files.
    #[arg(long, env = "CALLHOOK_DATA_DIR", default_value = "./callhook-data")]
    pub data_dir: PathBuf,

    /// Bootstrap operator token. When unset, one is generated at first start and printed once.
    #[arg(long, env = "CALLHOOK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Base URL of this service as receivers reach it (used in recording URLs).
    #[arg(long, env = "CALLHOOK_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// How long call data, deliveries and recordings are kept.
    #[arg(long, env = "CALLHOOK_RETENTION_HOURS", default_value_t = defaults::RETENTION_HOURS)]
    pub retention_hours: u32,

    /// Accept `http://` integration URLs. For development and tests only.
    #[arg(long, env = "CALLHOOK_ALLOW_INSECURE_HTTP", default_value_t = false)]
    pub allow_insecure_http: bool,

    /// Allow destinations on loopback, private and link-local networks. For development and tests only.
    #[arg(
        long,
        env = "CALLHOOK_ALLOW_PRIVATE_DESTINATIONS",
        default_value_t = false
    )]
    pub allow_private_destinations: bool,

    /// The proxy integrations with `delivery.egress: fixed` send through (fixed source addresses
    /// for allow-lists).
    #[arg(long, env = "CALLHOOK_EGRESS_PROXY")]
    pub egress_proxy: Option<String>,

    /// PEM certificates trusted for deliveries besides the built-in roots (receivers behind a
    /// private CA).
    #[arg(long, env = "CALLHOOK_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// The NATS servers integrations may publish to (`host` or `host:port`, comma-separated).
    /// None by default: the operator names the brokers the node keeps connections to.
    #[arg(long, env = "CALLHOOK_NATS_SERVERS", value_delimiter = ',')]
    pub nats_servers: Vec<String>,

    /// The AMQP (RabbitMQ) brokers integrations may publish to (`host` or `host:port`,
    /// comma-separated). None by default, as for NATS.
    #[arg(long, env = "CALLHOOK_AMQP_SERVERS", value_delimiter = ',')]
    pub amqp_servers: Vec<String>,

    /// Origins whose pages may show the console in a frame (space- or comma-separated, e.g.
    /// `https://admin.example.com`), for every tenant; partners add their own.
    #[arg(long, env = "CALLHOOK_FRAME_ANCESTORS")]
    pub frame_ancestors: Option<String>,

    /// Where integrations that name no `delivery.egress` send from: `fixed` (through the proxy)
    /// when a proxy is set, as every delivery did before integrations could choose; else `direct`.
    #[arg(long, env = "CALLHOOK_EGRESS_DEFAULT", value_enum, ignore_case = true)]
    pub egress_default: Option<EgressDefault>,

    /// Largest accepted request body, in bytes (413 above it).
    #[arg(long, env = "CALLHOOK_MAX_BODY_BYTES", default_value_t = defaults::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Most integrations a tenant may have when its `max_integrations` is not set.
    #[arg(long, env = "CALLHOOK_DEFAULT_MAX_INTEGRATIONS", default_value_t = defaults::DEFAULT_MAX_INTEGRATIONS)]
    pub default_max_integrations: u32,

    /// Memory for request bodies and their parsed JSON at once, across all requests (a body
    /// counts its size, then about 128 bytes per JSON value while it is parsed and handled); a
    /// request that does not fit now is answered 503, one that could never fit 413.
    #[arg(long, env = "CALLHOOK_BODY_MEMORY_BYTES", default_value_t = defaults::BODY_MEMORY_BYTES)]
    pub body_memory_bytes: usize,

    /// How long a request body may take to arrive (a recording upload: between two chunks).
    #[arg(long, env = "CALLHOOK_BODY_TIMEOUT_MS", default_value_t = defaults::BODY_TIMEOUT_MS)]
    pub body_timeout_ms: u64,

    /// Largest accepted recording file, in bytes (413 above it).
    #[arg(long, env = "CALLHOOK_MAX_RECORDING_BYTES", default_value_t = defaults::MAX_RECORDING_BYTES)]
    pub max_recording_bytes: u64,

    /// Base64 of a 32-byte key sealing integration secrets. When unset, a key file in the data
    /// dir is created at first start and used from then on.
    #[arg(long, env = "CALLHOOK_SEAL_KEY", hide_env_values = true)]
    pub seal_key: Option<String>,

    /// Where operational notifications go (integration failing / disabled / recovered).
    #[arg(long, env = "CALLHOOK_NOTIFY_URL")]
    pub notify_url: Option<String>,

    /// The `whsec_` secret signing operational notifications.
    #[arg(long, env = "CALLHOOK_NOTIFY_SECRET", hide_env_values = true)]
    pub notify_secret: Option<String>,

    /// Log filter (`info`, `callhook=debug`, …).
    #[arg(long, env = "CALLHOOK_LOG", default_value = "info", value_parser = log_filter)]
    pub log: String,

    /// `text` or `json` log lines.
    #[arg(long, env = "CALLHOOK_LOG_FORMAT", value_enum, ignore_case = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How long a client may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "CALLHOOK_HEADER_TIMEOUT_MS", default_value_t = defaults::HEADER_TIMEOUT_MS)]
    pub header_timeout_ms: u64,

    /// How long a response may wait for a client that stopped reading it.
    #[arg(long, env = "CALLHOOK_WRITE_TIMEOUT_MS", default_value_t = defaults::WRITE_TIMEOUT_MS)]
    pub write_timeout_ms: u64,

    /// How long a live stream's message may wait for its client to take it before the client
    /// is cut off as a slow consumer (WebSocket close code 4008).
    #[arg(long, env = "CALLHOOK_STREAM_SEND_TIMEOUT_MS", default_value_t = defaults::STREAM_SEND_TIMEOUT_MS)]
    pub stream_send_timeout_ms: u64,

    /// Most client connections open at once; more are closed as they arrive (logged).
    #[arg(long, env = "CALLHOOK_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// How long shutdown may take in all: open connections and in-flight deliveries get this
    /// long, then what is left is dropped (deliveries are picked up again at the next start).
    #[arg(long, env = "CALLHOOK_SHUTDOWN_GRACE_MS", default_value_t = defaults::SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,

    /// How long a call record built from call states waits before it is sent, so that a
    /// source sending its own `call.completed` for the call supersedes it.
    #[arg(long, env = "CALLHOOK_DERIVED_CDR_GRACE_MS", default_value_t = defaults::DERIVED_CDR_GRACE_MS)]
    pub derived_cdr_grace_ms: u64,

    /// With several nodes on PostgreSQL: a node silent for this long is taken for dead and its
    /// leased deliveries are sent by the others. Nodes heartbeat five times per period.
    #[arg(long, env = "CALLHOOK_NODE_TIMEOUT_MS", default_value_t = defaults::NODE_TIMEOUT_MS)]
    pub node_timeout_ms: u64,

    /// The time the server runs on: the system's, or a test's manual clock.
    #[arg(skip)]
    pub clock: crate::clock::Clock,
}

impl Config {
    /// The database URL in effect: the explicit one, or SQLite inside the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("callhook.db").display()),
        }
    }

    /// Defaults with a given data dir; used by tests and by `demo`.
    pub fn for_data_dir(data_dir: PathBuf) -> Self {
        Self {
            config: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            data_dir,
            admin_token: None,
            public_url: None,
            retention_hours: defaults::RETENTION_HOURS,
            allow_insecure_http: false,
            allow_private_destinations: false,
            egress_proxy: None,
            egress_default: None,
            ca_file: None,
            nats_servers: Vec::new(),
            amqp_servers: Vec::new(),
            frame_ancestors: None,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            body_memory_bytes: defaults::BODY_MEMORY_BYTES,
            default_max_integrations: defaults::DEFAULT_MAX_INTEGRATIONS,
            body_timeout_ms: defaults::BODY_TIMEOUT_MS,
            max_recording_bytes: defaults::MAX_RECORDING_BYTES,
            seal_key: None,
            notify_url: None,
            notify_secret: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            shutdown_grace_ms: defaults::SHUTDOWN_GRACE_MS,
            header_timeout_ms: defaults::HEADER_TIMEOUT_MS,
            write_timeout_ms: defaults::WRITE_TIMEOUT_MS,
            stream_send_timeout_ms: defaults::STREAM_SEND_TIMEOUT_MS,
            max_connections: defaults::MAX_CONNECTIONS,
            derived_cdr_grace_ms: defaults::DERIVED_CDR_GRACE_MS,
            node_timeout_ms: defaults::NODE_TIMEOUT_MS,
            clock: crate::clock::Clock::system(),
        }
    }
}

impl Config {
    /// `CALLHOOK_FRAME_ANCESTORS` as a checked list of origins.
    pub fn frame_ancestors(&self) -> Result<Vec<String>, String> {
        let listed: Vec<String> = self
            .frame_ancestors
            .as_deref()
            .unwrap_or_default()
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        crate::model::tenancy::check_frame_ancestors(&listed)
            .map_err(|e| format!("CALLHOOK_FRAME_ANCESTORS: {e}"))
    }
}
