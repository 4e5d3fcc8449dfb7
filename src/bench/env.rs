//! One bench run's world: the server (on its own store, or a new PostgreSQL database dropped
//! afterwards), the receiver, the tenant and the load, and the phases run against them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::args::*;
use super::load::{self, TOKEN};
use super::measure::*;
use super::receiver::{self, Receiver};

/// Where a run's nodes live.
#[derive(Clone, Copy)]
pub(crate) enum Nodes {
    /// In this process.
    InProcess(usize),
    /// As processes of their own, each capped at `cpu` cores ([`super::scale`]).
    Processes { count: usize, cpu: f64 },
}

pub(crate) struct Env {
    pub(super) nodes: Vec<crate::app::Running>,
    pub(super) processes: Vec<super::scale::NodeProcess>,
    pub(super) base: String,
    pub(super) bases: Vec<String>,
    /// The database created for this run, dropped at the end: (server URL, name).
    pub(super) database: Option<(String, String)>,
    pub(super) http: reqwest::Client,
    pub(super) recv: Arc<Receiver>,
    pub(super) recv_url: String,
    pub(super) dir: std::path::PathBuf,
    pub(super) next_event: usize,
    pub(super) profile: String,
}

impl Env {
    pub(super) async fn start(args: &BenchArgs, nodes: Nodes) -> anyhow::Result<Env> {
        let count = match nodes {
            Nodes::InProcess(n) | Nodes::Processes { count: n, .. } => n.max(1),
        };
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
            count == 1 || database.is_some(),
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
        let (mut running, mut processes) = (Vec::new(), Vec::new());
        let bases: Vec<String> = match nodes {
            Nodes::InProcess(_) => {
                for _ in 0..count {
                    running.push(crate::app::start(config.clone()).await?);
                }
                running
                    .iter()
                    .map(|r| format!("http://{}", r.addr))
                    .collect()
            }
            Nodes::Processes { cpu, .. } => {
                anyhow::ensure!(
                    database.is_some(),
                    "node processes share a PostgreSQL database: --database-url postgres://…"
                );
                let (started, bases) = super::scale::spawn(&config, count, cpu, &dir).await?;
                processes = started;
                bases
            }
        };
        let env = Env {
            base: bases[0].clone(),
            bases,
            nodes: running,
            processes,
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
    pub(super) async fn api(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub(super) async fn request(
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

    pub(super) async fn integration(&self, path: &str, extra: Value) -> anyhow::Result<String> {
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
    pub(super) async fn wait_for(&self, count: u64, idle: Duration) -> bool {
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
    pub(super) fn stalled(&self, want: u64) -> anyhow::Error {
        anyhow::anyhow!(
            "deliveries stalled: {} of {want} arrived, none for {} s",
            self.recv.count(),
            STALL.as_secs()
        )
    }

    /// On PostgreSQL, the start of a phase whose database costs are reported: the bench
    /// database's URL, whether its statement counters were reset, and the database's CPU so far.
    async fn database_mark(&self) -> Option<(String, bool, f64)> {
        let url = self.database.as_ref().map(|(s, n)| database_url(s, n))?;
        let statements = super::pgstats::reset(&url).await;
        Some((url, statements, super::scale::database_cpu_seconds()))
    }

    /// What the database spent per delivery since [`Env::database_mark`] (null on SQLite).
    async fn database_spent(mark: Option<(String, bool, f64)>, deliveries: u64) -> Value {
        let Some((url, statements, cpu)) = mark else {
            return Value::Null;
        };
        let us = (super::scale::database_cpu_seconds() - cpu) / deliveries.max(1) as f64 * 1e6;
        let mut out = json!({"cpu_us_per_delivery": (us * 10.0).round() / 10.0});
        if statements {
            out["statements"] = super::pgstats::top(&url, deliveries).await;
        }
        out
    }

    /// The start of a throughput phase: deliveries so far, the database's mark, time and CPU.
    async fn flood_start(&self) -> FloodStart {
        FloodStart {
            before: self.recv.count(),
            db: self.database_mark().await,
            started: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    /// Waits until `deliveries` more have arrived since `start`; the figures every throughput
    /// phase reports (the bench process's CPU: the server unless its nodes are processes of
    /// their own, the receiver, and an in-process load generator), and the latencies.
    async fn flood_end(
        &mut self,
        start: FloodStart,
        deliveries: u64,
    ) -> anyhow::Result<(serde_json::Map<String, Value>, Vec<u64>)> {
        let want = start.before + deliveries;
        if !self.wait_for(want, STALL).await {
            return Err(self.stalled(want));
        }
        let total_s = start.started.elapsed().as_secs_f64();
        let cpu_us = (cpu_seconds() - start.cpu) / deliveries.max(1) as f64 * 1e6;
        let lat = self.recv.take_latencies();
        let database = Self::database_spent(start.db, deliveries).await;
        let mut out = serde_json::Map::new();
        out.insert("database".into(), database);
        out.insert(
            "deliveries_per_s".into(),
            json!((deliveries as f64 / total_s).round()),
        );
        out.insert(
            "bench_process_cpu_us_per_delivery".into(),
            json!((cpu_us * 10.0).round() / 10.0),
        );
        Ok((out, lat))
    }

    /// Throughput with `wrk` as the load: one event per request for `--wrk-seconds`, then the
    /// wait until every acknowledged event is delivered (`fan` times).
    async fn throughput_wrk(&mut self, args: &BenchArgs, fan: u64) -> anyhow::Result<Value> {
        let start = self.flood_start().await;
        let (accepted, refused) =
            load::wrk_flood(&self.base, args.wrk_seconds, args.clients, &self.dir).await?;
        let ingest_s = start.started.elapsed().as_secs_f64();
        let (mut out, _) = self.flood_end(start, accepted * fan).await?;
        out.extend(
            json!({
                "load": "wrk", "batch": 1, "connections": args.clients,
                "events_acknowledged": accepted, "requests_refused": refused,
                "ingest_events_per_s": (accepted as f64 / ingest_s).round(),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        Ok(Value::Object(out))
    }

    /// Throughput: `events` as fast as possible, each going to `fan` integrations.
    pub(super) async fn throughput(&mut self, args: &BenchArgs, fan: u64) -> anyhow::Result<Value> {
        if args.load == Load::Wrk {
            return self.throughput_wrk(args, fan).await;
        }
        let start = self.flood_start().await;
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
        let (mut out, lat) = self.flood_end(start, args.events as u64 * fan).await?;
        out.extend(
            json!({
                "events": args.events, "batch": args.batch, "clients": args.clients,
                "ingest_events_per_s": (args.events as f64 / ingest_s).round(),
                "latency_ms": percentiles(&lat),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        Ok(Value::Object(out))
    }

    /// Latency at a steady rate of deliveries per second, each event going to `fan` integrations.
    pub(super) async fn steady(&mut self, rate: u64, seconds: u64, fan: u64) -> Value {
        let (done, lat) = self.steady_samples(rate, seconds, fan).await;
        json!({"deliveries_per_s": rate, "kept_up": done, "latency_ms": percentiles(&lat)})
    }

    /// [`Env::steady`]'s measurement: whether every delivery arrived, and each one's latency (µs,
    /// sorted).
    pub(super) async fn steady_samples(
        &mut self,
        rate: u64,
        seconds: u64,
        fan: u64,
    ) -> (bool, Vec<u64>) {
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
    pub(super) async fn isolation_phase(
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
    pub(super) async fn add_bad_endpoints(&self) -> anyhow::Result<Vec<String>> {
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
    pub(super) async fn delete_integrations(&self, ids: &[String]) -> anyhow::Result<()> {
        for id in ids {
            let path = format!("/v1/tenants/bench/integrations/{id}");
            self.request(reqwest::Method::DELETE, &path, None).await?;
        }
        Ok(())
    }

    /// Stops every node and removes what the run created.
    pub(super) async fn stop(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
        super::scale::stop(self.processes).await;
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((server, name)) = &self.database {
            if let Err(e) = drop_database(server, name).await {
                tracing::warn!(error = %e, database = %name, "could not drop the bench database");
            }
        }
    }
}

/// `server` with its database name replaced by `name`.
pub(crate) fn database_url(server: &str, name: &str) -> String {
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

pub(crate) async fn admin_client(server: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(server, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

pub(crate) async fn create_database(server: &str) -> anyhow::Result<(String, String)> {
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

pub(crate) async fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    admin_client(server)
        .await?
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// Where a throughput phase began ([`Env::flood_start`]).
struct FloodStart {
    before: u64,
    db: Option<(String, bool, f64)>,
    started: Instant,
    cpu: f64,
}
