//! The `bench` command's arguments and scenarios.

use std::time::Duration;

use clap::{Args, ValueEnum};

/// A wait for deliveries gives up when none has arrived for this long: a stall, not a slow
/// drain (the 1 M backlog takes minutes but never pauses that long).
pub(crate) const STALL: Duration = Duration::from_secs(60);

/// The isolation scenario alternates this many phases alone and as many with bad endpoints.
pub(crate) const ISOLATION_ROUNDS: u64 = 3;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Scenario {
    OneToOne,
    FanOut,
    Isolation,
    Backlog,
    Postgres,
    ScaleOut,
    /// Live stream readers over WebSocket: ingest-to-reader latency at `--rate` events/s.
    Stream,
}

/// What posts the throughput phase's events.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Load {
    /// reqwest clients in this process (`--clients`, `--batch`, `--events`).
    Reqwest,
    /// `wrk` (installed separately), one event per request over `--clients` connections for
    /// `--wrk-seconds`: a load generator far cheaper than the in-process one, as from outside.
    Wrk,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Scenario::OneToOne)]
    pub scenario: Scenario,
    /// Events in the throughput (or backlog) phase.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events per ingest request (1 = one request per event).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent ingest clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Steady rate of the latency phase, in deliveries per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Seconds of the latency phase (isolation: of each of its six phases).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Seconds spent measuring the loopback ceiling.
    #[arg(long, default_value_t = 3)]
    pub ceiling_seconds: u64,
    /// Store to use (default: SQLite in a temp dir). A `postgres://` URL names a server the
    /// bench may create databases on: each run uses a new database, dropped at the end.
    #[arg(long, env = "CALLHOOK_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Nodes sharing the store (PostgreSQL only); ingest is spread over them. In this process,
    /// except for `scale-out`, which runs each as a process of its own and takes a list
    /// (`--nodes 1,2,3`: one run per count).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub nodes: Vec<usize>,
    /// `scale-out`: the share of one core each node process may use (its cgroup's CPU quota).
    #[arg(long, default_value_t = 0.2)]
    pub cpu_per_node: f64,
    /// Payload profile of the bench's integrations: `canonical` (spliced from the stored
    /// body) or `cdr` (built per event, its record shared by every integration of the event).
    #[arg(long, default_value = "canonical")]
    pub profile: String,
    /// What posts the throughput phase's events.
    #[arg(long, value_enum, default_value_t = Load::Reqwest)]
    pub load: Load,
    /// `--load wrk`: seconds of posting.
    #[arg(long, default_value_t = 10)]
    pub wrk_seconds: u64,
    /// `stream`: WebSocket readers of the one stream integration.
    #[arg(long, default_value_t = 10)]
    pub readers: usize,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The node count of the scenarios that run one count (the first given).
    pub fn node_count(&self) -> usize {
        self.nodes.first().copied().unwrap_or(1).max(1)
    }
}
