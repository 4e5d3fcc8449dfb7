//! `callhook bench`: the real pipeline, end to end, on this machine.
//!
//! Starts a real server in this process (embedded store in a temp dir unless a database URL is
//! given), a minimal receiver on 127.0.0.1 ([`receiver`]) and a load generator ([`load`]) posting
//! ~1 KB `call.completed` events whose ids carry their send time, so the receiver measures
//! ingest-to-arrival latency. The receiver's raw loopback ceiling is measured in the same run, so
//! results read as a ratio rather than an absolute that drifts with the machine.
//!
//! Scenarios: `one-to-one` (one integration), `fan-out` (100 integrations match each event),
//! `isolation` (100 healthy endpoints alone, then with one that hangs and ten that answer 500,
//! three times over, each side's latencies pooled),
//! `backlog` (deliveries held while the integration is disabled, then drained on enable),
//! `postgres` (one-to-one on PostgreSQL with one node, then two nodes sharing the database).

mod load;
mod receiver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use load::TOKEN;
use receiver::Receiver;

/// A wait for deliveries gives up when none has arrived for this long: a stall, not a slow
/// drain (the 1 M backlog takes minutes but never pauses that long).
const STALL: Duration = Duration::from_secs(60);

/// The isolation scenario alternates this many phases alone and as many with bad endpoints.
const ISOLATION_ROUNDS: u64 = 3;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Scenario {
    OneToOne,
    FanOut,
    Isolation,
    Backlog,
    Postgres,
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
    /// Nodes sharing the store (PostgreSQL only), in this process; ingest is spread over them.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Payload profile of the bench's integrations: `canonical` (spliced from the stored
    /// body) or `cdr` (built per event, its record shared by every integration of the event).
    #[arg(long, default_value = "canonical")]
    pub profile: String,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

fn percentiles(sorted: &[u64]) -> Value {
    let p = |q: f64| -> Value {
        if sorted.is_empty() {
            return Value::Null;
        }
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        json!(sorted[i] as f64 / 1000.0)
    };
    json!({"p50": p(0.5), "p99": p(0.99), "p999": p(0.999), "max": p(1.0), "samples": sorted.len()})
}

/// CPU time this process (server, receiver and load generator) has used, in seconds.
fn cpu_seconds() -> f64 {
    // /proc/self/stat: utime and stime are fields 14 and 15, in clock ticks (100 per second on
    // Linux); counted after the command name, which is in parentheses and may hold spaces.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i)?.parse::<f64>().ok();
            Some((ticks(11)? + ticks(12)?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| (kb / 1024.0 * 10.0).round() / 10.0)
}

struct Env {
    nodes: Vec<crate::app::Running>,
    base: String,
    bases: Vec<String>,
    /// The database created for this run, dropped at the end: (server URL, name).
    database: Option<(String, String)>,
    http: reqwest::Client,
    recv: Arc<Receiver>,
    recv_url: String,
    dir: std::path::PathBuf,
    next_event: usize,
    profile: String,
}

impl Env {
    async fn start(args: &BenchArgs, nodes: usize) -> anyhow::Result<Env> {
        let dir = std::env::temp_dir().join(format!(
            "callhook-bench-{}",
            hex::encode(crate::security::random_bytes::<6>())
        ));
        std::fs::create_dir_all(&dir)?;
        let database = match args.database_url.as_deref() {
            Some(url) if url.starts_with("postgres") => Some(create_database(url).await?),
            _ => None,
        };
        anyhow::ensure!(
            nodes == 1 || database.is_some(),
            "several nodes need a shared store: --database-url postgres://…"
        );
        let mut config = crate::config::Config::for_data_dir(dir.clone());
        config.database_url = match &database {
            Some((server, name)) => Some(database_url(server, name)),
            None => args.database_url.clone(),
        };
        config.admin_token = Some(TOKEN.into());
        config.allow_insecure_http = true;
        config.allow_private_destinations = true;
        config.shutdown_grace_ms = 1000;
        config.seal_key = Some(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            crate::security::random_bytes::<32>(),
        ));
        let recv = Receiver::new();
        let recv_url = receiver::start(recv.clone()).await?;
        let mut running = Vec::new();
        for _ in 0..nodes.max(1) {
            running.push(crate::app::start(config.clone()).await?);
        }
        let bases: Vec<String> = running
            .iter()
            .map(|r| format!("http://{}", r.addr))
            .collect();
        let env = Env {
            base: bases[0].clone(),
            bases,
            nodes: running,
            database,
            http: reqwest::Client::new(),
            recv,
            recv_url,
            dir,
            next_event: 0,
            profile: args.profile.clone(),
        };
        env.api(
            "/v1/tenants",
            json!({"id": "bench", "name": "Bench", "max_integrations": 10000}),
        )
        .await?;
        Ok(env)
    }

    /// POSTs `body` to the API of the first node.
    async fn api(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = &body {
            req = req.json(body);
        }
        let r = req.send().await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path}: {status} {v}");
        Ok(v)
    }

    async fn integration(&self, path: &str, extra: Value) -> anyhow::Result<String> {
        let mut spec = json!({"name": path, "url": format!("{}{path}", self.recv_url), "event_types": ["call.completed"],
            "verification": "none", "profile": self.profile, "delivery": {"max_in_flight": 64}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        let v = self.api("/v1/tenants/bench/integrations", spec).await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// Waits until `count` deliveries have arrived; false once none has arrived for `idle`
    /// (a stall), however long the whole wait has been.
    async fn wait_for(&self, count: u64, idle: Duration) -> bool {
        let (mut seen, mut since) = (self.recv.count(), Instant::now());
        while seen < count {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = self.recv.count();
            if now > seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() > idle {
                return false;
            }
        }
        true
    }

    /// Why a wait for `want` deliveries failed, with how far it got.
    fn stalled(&self, want: u64) -> anyhow::Error {
        anyhow::anyhow!(
            "deliveries stalled: {} of {want} arrived, none for {} s",
            self.recv.count(),
            STALL.as_secs()
        )
    }

    /// Throughput: `events` as fast as possible, each going to `fan` integrations.
    async fn throughput(&mut self, args: &BenchArgs, fan: u64) -> anyhow::Result<Value> {
        let before = self.recv.count();
        let started = Instant::now();
        let ingest_s = load::flood(
            &self.http,
            &self.bases,
            &self.recv,
            self.next_event,
            args.events,
            args.batch,
            args.clients,
        )
        .await;
        self.next_event += args.events;
        let want = before + args.events as u64 * fan;
        if !self.wait_for(want, STALL).await {
            return Err(self.stalled(want));
        }
        let total_s = started.elapsed().as_secs_f64();
        let lat = self.recv.take_latencies();
        Ok(json!({
            "events": args.events, "batch": args.batch, "clients": args.clients,
            "ingest_events_per_s": (args.events as f64 / ingest_s).round(),
            "deliveries_per_s": ((args.events as u64 * fan) as f64 / total_s).round(),
            "latency_ms": percentiles(&lat),
        }))
    }

    /// Latency at a steady rate of deliveries per second, each event going to `fan` integrations.
    async fn steady(&mut self, rate: u64, seconds: u64, fan: u64) -> Value {
        let (done, lat) = self.steady_samples(rate, seconds, fan).await;
        json!({"deliveries_per_s": rate, "kept_up": done, "latency_ms": percentiles(&lat)})
    }

    /// [`Env::steady`]'s measurement: whether every delivery arrived, and each one's latency (µs,
    /// sorted).
    async fn steady_samples(&mut self, rate: u64, seconds: u64, fan: u64) -> (bool, Vec<u64>) {
        let before = self.recv.count();
        self.recv.take_latencies();
        let events_rate = (rate / fan).max(1);
        let sent = load::steady(
            &self.http,
            &self.bases,
            &self.recv,
            self.next_event,
            events_rate,
            seconds,
        )
        .await;
        self.next_event += sent;
        let done = self.wait_for(before + sent as u64 * fan, STALL).await;
        (done, self.recv.take_latencies())
    }

    /// One steady phase of the isolation scenario (fan-out to the 100 healthy endpoints); notes
    /// its p99 and the share of the machine's cores the whole process used (server, receiver
    /// and load: the bad endpoints' attempts and retries cost CPU too) in `phases`.
    async fn isolation_phase(
        &mut self,
        side: &str,
        args: &BenchArgs,
        phases: &mut Vec<Value>,
    ) -> (bool, Vec<u64>) {
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        let (done, lat) = self.steady_samples(args.rate, args.seconds, 100).await;
        let share = (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64() / cores() as f64;
        phases.push(json!({"side": side, "p99_ms": percentiles(&lat)["p99"],
                           "cpu_pct_of_machine": (share * 1000.0).round() / 10.0}));
        (done, lat)
    }

    /// The isolation scenario's bad endpoints: one that hangs until its 10 s timeout and ten
    /// that answer 500 (10 % of the healthy ones). Returns their ids.
    async fn add_bad_endpoints(&self) -> anyhow::Result<Vec<String>> {
        let mut ids = vec![
            self.integration(
                "/hang",
                json!({"delivery": {"timeout_ms": 10000, "max_in_flight": 8}}),
            )
            .await?,
        ];
        for _ in 0..10 {
            ids.push(self.integration("/fail", json!({"delivery": {"retry": {"policy": "linear", "retries": 10}, "max_in_flight": 8}})).await?);
        }
        Ok(ids)
    }

    /// Deletes integrations (their pending deliveries and retries go with them).
    async fn delete_integrations(&self, ids: &[String]) -> anyhow::Result<()> {
        for id in ids {
            let path = format!("/v1/tenants/bench/integrations/{id}");
            self.request(reqwest::Method::DELETE, &path, None).await?;
        }
        Ok(())
    }

    /// Stops every node and removes what the run created.
    async fn stop(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((server, name)) = &self.database {
            if let Err(e) = drop_database(server, name).await {
                tracing::warn!(error = %e, database = %name, "could not drop the bench database");
            }
        }
    }
}

/// `server` with its database name replaced by `name`.
fn database_url(server: &str, name: &str) -> String {
    let (head, query) = server.split_once('?').unwrap_or((server, ""));
    // postgres://user@host:port/db → postgres://user@host:port
    let authority_end = head.find("://").map_or(0, |i| i + 3);
    let base = match head[authority_end..].find('/') {
        Some(i) => &head[..authority_end + i],
        None => head,
    };
    match query {
        "" => format!("{base}/{name}"),
        q => format!("{base}/{name}?{q}"),
    }
}

async fn admin_client(server: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(server, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn create_database(server: &str) -> anyhow::Result<(String, String)> {
    let name = format!(
        "callhook_bench_{}",
        hex::encode(crate::security::random_bytes::<6>())
    );
    admin_client(server)
        .await?
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    Ok((server.to_string(), name))
}

async fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    admin_client(server)
        .await?
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

fn ratio(deliveries_per_s: &Value, ceiling: f64) -> Value {
    json!(((deliveries_per_s.as_f64().unwrap_or(0.0) / ceiling) * 1000.0).round() / 1000.0)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut env = Env::start(&args, args.nodes).await?;
    let ceiling =
        load::loopback_ceiling(&format!("{}/h/ceiling", env.recv_url), args.ceiling_seconds).await;
    env.recv
        .count
        .store(0, std::sync::atomic::Ordering::Relaxed);
    env.recv.take_latencies();
    let mut result = json!({
        "scenario": format!("{:?}", args.scenario),
        "machine": {"cpus": cores()},
        "store": args.database_url.as_deref().unwrap_or("sqlite (temp dir)"),
        "loopback_ceiling_per_s": ceiling.round(),
    });
    match args.scenario {
        Scenario::OneToOne => {
            env.integration("/h/0", json!({})).await?;
            let t = env.throughput(&args, 1).await?;
            result["ratio_to_ceiling"] = ratio(&t["deliveries_per_s"], ceiling);
            result["throughput"] = t;
            result["steady"] = env.steady(args.rate, args.seconds, 1).await;
        }
        Scenario::FanOut => {
            for i in 0..100 {
                env.integration(
                    &format!("/h/{i}"),
                    json!({"delivery": {"max_in_flight": 8}}),
                )
                .await?;
            }
            let t = env.throughput(&args, 100).await?;
            result["ratio_to_ceiling"] = ratio(&t["deliveries_per_s"], ceiling);
            result["throughput"] = t;
            result["steady"] = env.steady(args.rate, args.seconds, 100).await;
        }
        Scenario::Isolation => {
            for i in 0..100 {
                env.integration(
                    &format!("/h/{i}"),
                    json!({"delivery": {"max_in_flight": 8}}),
                )
                .await?;
            }
            // Warm-up, not measured: the first deliveries to 100 new endpoints open their
            // connections, which would count against "alone" only.
            env.steady(args.rate, args.seconds.min(2), 100).await;
            // Phases alternate (alone, with the bad endpoints, alone…) and each side's samples
            // are pooled: whatever disturbs the machine now and then (a WAL checkpoint, another
            // process) falls on both sides alike instead of deciding one phase's p99.
            let (mut alone, mut with_bad) = (Vec::new(), Vec::new());
            let (mut kept_up_alone, mut kept_up_bad) = (true, true);
            let mut phases = Vec::new();
            for _ in 0..ISOLATION_ROUNDS {
                let (done, lat) = env.isolation_phase("alone", &args, &mut phases).await;
                kept_up_alone &= done;
                alone.extend(lat);
                let bad = env.add_bad_endpoints().await?;
                let (done, lat) = env.isolation_phase("with_bad", &args, &mut phases).await;
                kept_up_bad &= done;
                with_bad.extend(lat);
                env.delete_integrations(&bad).await?;
            }
            result["phases"] = json!(phases);
            alone.sort_unstable();
            with_bad.sort_unstable();
            let phase = |kept_up: bool, lat: &[u64]| {
                json!({"deliveries_per_s": args.rate, "kept_up": kept_up,
                       "seconds": args.seconds * ISOLATION_ROUNDS, "latency_ms": percentiles(lat)})
            };
            let alone = phase(kept_up_alone, &alone);
            let with_bad = phase(kept_up_bad, &with_bad);
            let p99 = |v: &Value| v["latency_ms"]["p99"].as_f64().unwrap_or(f64::NAN);
            result["p99_change_pct"] =
                json!(((p99(&with_bad) / p99(&alone) - 1.0) * 1000.0).round() / 10.0);
            result["healthy_alone"] = alone;
            result["healthy_with_bad_endpoints"] = with_bad;
        }
        Scenario::Backlog => {
            let iid = env.integration("/h/0", json!({})).await?;
            env.api(
                &format!("/v1/tenants/bench/integrations/{iid}/disable"),
                json!({}),
            )
            .await?;
            let ingest_s = load::flood(
                &env.http,
                &env.bases,
                &env.recv,
                0,
                args.events,
                args.batch,
                args.clients,
            )
            .await;
            let rss_queued = peak_rss_mb();
            let started = Instant::now();
            env.api(
                &format!("/v1/tenants/bench/integrations/{iid}/enable"),
                json!({}),
            )
            .await?;
            if !env.wait_for(args.events as u64, STALL).await {
                return Err(env.stalled(args.events as u64));
            }
            let drain_s = started.elapsed().as_secs_f64();
            result["backlog"] = json!({
                "deliveries_held": args.events,
                "ingest_events_per_s": (args.events as f64 / ingest_s).round(),
                "peak_rss_mb_while_held": rss_queued,
                "drain_per_s": (args.events as f64 / drain_s).round(),
            });
        }
        Scenario::Postgres => {
            anyhow::ensure!(
                args.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")),
                "the postgres scenario needs --database-url postgres://… (scripts/pg-cluster start DIR starts a private server and prints its URL)"
            );
            env.integration("/h/0", json!({})).await?;
            let one = env.throughput(&args, 1).await?;
            result["one_node"] = json!({
                "throughput": one, "ratio_to_ceiling": ratio(&one["deliveries_per_s"], ceiling),
                "steady": env.steady(args.rate, args.seconds, 1).await,
            });
            env.stop().await;
            env = Env::start(&args, 2).await?;
            env.integration("/h/0", json!({})).await?;
            let two = env.throughput(&args, 1).await?;
            result["two_nodes"] = json!({
                "throughput": two, "ratio_to_ceiling": ratio(&two["deliveries_per_s"], ceiling),
                "steady": env.steady(args.rate, args.seconds, 1).await,
            });
        }
    }
    result["peak_rss_mb"] = json!(peak_rss_mb());
    env.stop().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("callhook bench");
        for (k, v) in result.as_object().into_iter().flatten() {
            println!("  {k:<28} {v}");
        }
    }
    Ok(())
}
