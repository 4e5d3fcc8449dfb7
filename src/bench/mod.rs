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
//! `postgres` (one-to-one on PostgreSQL with one node, then two nodes sharing the database),
//! `scale-out` (one-to-one on PostgreSQL with 1, 2, 3… node processes, each capped at a share
//! of a core: [`scale`]), `stream` (`--readers` WebSocket readers of a live stream, timed from
//! ingest to each reader: [`stream`]).

mod args;
mod env;
mod load;
mod measure;
mod pgstats;
mod receiver;
mod scale;
mod stream;

use std::time::Instant;

use serde_json::{json, Value};

use args::*;
pub use args::{BenchArgs, Scenario};
use env::*;
use measure::*;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let first = match args.scenario {
        Scenario::ScaleOut => Nodes::Processes {
            count: args.node_count(),
            cpu: args.cpu_per_node,
        },
        _ => Nodes::InProcess(args.node_count()),
    };
    let mut env = Env::start(&args, first).await?;
    let ceiling_url = format!("{}/h/ceiling", env.recv_url);
    // The ceiling is the cheapest client's: wrk when installed, else bare hyper connections;
    // reqwest's (callhook's own client) is the second line.
    let raw = load::raw_ceiling(&ceiling_url, args.ceiling_seconds).await;
    let wrk = load::wrk_ceiling(&ceiling_url, args.ceiling_seconds, &env.dir).await;
    let reqwest_ceiling = load::loopback_ceiling(&ceiling_url, args.ceiling_seconds).await;
    let (ceiling, ceiling_client) = match wrk {
        Some(w) if w > raw => (w, "wrk, 64 connections"),
        _ => (raw, "hyper, 64 bare HTTP/1.1 connections"),
    };
    env.recv
        .count
        .store(0, std::sync::atomic::Ordering::Relaxed);
    env.recv.take_latencies();
    let mut result = json!({
        "scenario": format!("{:?}", args.scenario),
        "machine": {"cpus": cores()},
        "store": args.database_url.as_deref().unwrap_or("sqlite (temp dir)"),
        "loopback_ceiling_per_s": ceiling.round(),
        "ceiling_client": ceiling_client,
        "hyper_ceiling_per_s": raw.round(),
        "wrk_ceiling_per_s": wrk.map(f64::round),
        "reqwest_ceiling_per_s": reqwest_ceiling.round(),
    });
    match args.scenario {
        Scenario::OneToOne => {
            env.integration("/h/0", json!({})).await?;
            let t = env.throughput(&args, 1).await?;
            result["ratio_to_ceiling"] = ratio(&t["deliveries_per_s"], ceiling);
            result["ratio_to_reqwest_ceiling"] = ratio(&t["deliveries_per_s"], reqwest_ceiling);
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
            result["ratio_to_reqwest_ceiling"] = ratio(&t["deliveries_per_s"], reqwest_ceiling);
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
            env = Env::start(&args, Nodes::InProcess(2)).await?;
            env.integration("/h/0", json!({})).await?;
            let two = env.throughput(&args, 1).await?;
            result["two_nodes"] = json!({
                "throughput": two, "ratio_to_ceiling": ratio(&two["deliveries_per_s"], ceiling),
                "steady": env.steady(args.rate, args.seconds, 1).await,
            });
        }
        Scenario::Stream => {
            result["stream"] = stream::run(&mut env, &args).await?;
        }
        Scenario::ScaleOut => {
            anyhow::ensure!(
                args.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")),
                "the scale-out scenario needs --database-url postgres://… (scripts/pg-cluster start DIR starts a private server and prints its URL)"
            );
            let mut runs = Vec::new();
            let mut one_node = None;
            for (i, &count) in args.nodes.iter().enumerate() {
                if i > 0 {
                    env.stop().await;
                    env = Env::start(
                        &args,
                        Nodes::Processes {
                            count,
                            cpu: args.cpu_per_node,
                        },
                    )
                    .await?;
                }
                env.integration("/h/0", json!({})).await?;
                let mut per_run = args.clone();
                per_run.clients = scale::clients_for(args.clients, count);
                let before = scale::mark(&env.processes);
                let t = env.throughput(&per_run, 1).await?;
                let after = scale::mark(&env.processes);
                let rate = t["deliveries_per_s"].as_f64().unwrap_or(0.0);
                let base = *one_node.get_or_insert(if count == 1 { rate } else { f64::NAN });
                runs.push(json!({
                    "nodes": count,
                    "throughput": t,
                    "speedup_over_one_node": ((rate / base) * 100.0).round() / 100.0,
                    "cpu": scale::spent(&before, &after, args.events as u64),
                }));
            }
            result["cpu_per_node"] = json!(args.cpu_per_node);
            result["runs"] = json!(runs);
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
