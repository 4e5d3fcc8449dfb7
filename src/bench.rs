//! `callhook bench`: the real pipeline, end to end, on this machine.
//!
//! Starts a real server (in this process, embedded store in a temp dir unless a database URL is
//! given), a minimal receiver on 127.0.0.1, and a load generator posting `call.completed`
//! events. Each event's id carries its send time, so the receiver measures ingest-to-arrival
//! latency. The receiver's raw loopback ceiling is measured in the same run, so results read as
//! a ratio rather than an absolute that drifts with the machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use clap::Args;
use parking_lot::Mutex;
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Events in the throughput phase.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events per ingest request (1 = one request per event).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent ingest clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Steady rate (events/s) of the latency phase.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Store to use (default: SQLite in a temp dir).
    #[arg(long, env = "CALLHOOK_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

struct Receiver {
    count: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    epoch: Instant,
}

impl Receiver {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// The send time is the id's last segment (`b-<n>-<micros>`), found without parsing the body.
fn sent_us(body: &[u8]) -> Option<u64> {
    let key = b"\"id\":\"b-";
    let start = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[start..];
    let end = rest.iter().position(|b| *b == b'"')?;
    let id = std::str::from_utf8(&rest[..end]).ok()?;
    id.rsplit('-').next()?.parse().ok()
}

async fn start_receiver(state: Arc<Receiver>) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let state = state.clone();
        async move {
            if let Some(sent) = sent_us(&body) {
                let lat = state.now_us().saturating_sub(sent);
                state.latencies_us.lock().push(lat);
            }
            state.count.fetch_add(1, Ordering::Relaxed);
            ""
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/hook"))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One realistic CDR event (~1 KB), formatted directly so the load generator stays cheap.
fn cdr(n: usize, sent_us: u64) -> String {
    format!(
        r#"{{"id":"b-{n}-{sent_us}","type":"call.completed","tenant_id":"bench","occurred_at":"2026-11-22T10:00:00.000Z","call_id":"call-{n}","data":{{"answered":true,"direction":"inbound","scope":"external","call_type":"incoming","started_at":"2026-11-22T09:58:00.000Z","answered_at":"2026-11-22T09:58:07.000Z","ended_at":"2026-11-22T10:00:00.000Z","ring_ms":7000,"talk_ms":113000,"caller":{{"number":"+441610000001","name":"Alice Example","country":"GB"}},"callee":{{"number":"+441610000002","name":"Support"}},"did":{{"number":"+441610000000","name":"Main line"}},"owner":{{"kind":"user","user_id":"u-17"}},"tags":{{"campaign":"winter"}},"recording_ids":["rec-1"],"rating":{{"rated":true,"cost":0.012,"band":"national"}}}}}}"#
    )
}

fn batch_body(first: usize, n: usize, sent_us: u64) -> String {
    if n == 1 {
        return cdr(first, sent_us);
    }
    let items: Vec<String> = (first..first + n).map(|i| cdr(i, sent_us)).collect();
    format!(r#"{{"events":[{}]}}"#, items.join(","))
}

/// The receiver's ceiling: 64 requests in flight straight at it.
async fn loopback_ceiling(url: &str, secs: u64) -> f64 {
    let client = reqwest::Client::new();
    let body = cdr(0, 0).into_bytes();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, url, body, done) =
            (client.clone(), url.to_string(), body.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if client.post(&url).body(body.clone()).send().await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let mut config = crate::config::Config::for_data_dir(dir.clone());
    config.database_url = args.database_url.clone();
    config.admin_token = Some("bench-operator".into());
    config.allow_insecure_http = true;
    config.allow_private_destinations = true;
    config.log = "warn".into();
    let recv = Arc::new(Receiver {
        count: AtomicU64::new(0),
        latencies_us: Mutex::new(Vec::new()),
        epoch: Instant::now(),
    });
    let url = start_receiver(recv.clone()).await?;
    let ceiling = loopback_ceiling(&url, 3).await;
    recv.count.store(0, Ordering::Relaxed);
    recv.latencies_us.lock().clear();

    let running = crate::app::start(config).await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth("bench-operator")
            .json(&body)
            .send()
    };
    post("/v1/tenants", json!({"id": "bench", "name": "Bench"})).await?;
    let r = post("/v1/tenants/bench/integrations", json!({"name": "bench", "url": url,
        "event_types": ["call.completed"], "verification": "none", "delivery": {"max_in_flight": 64}})).await?;
    anyhow::ensure!(
        r.status() == 201,
        "creating the integration failed: {}",
        r.text().await?
    );

    // Throughput: as fast as the clients can post.
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (http, base, next, recv, args) = (
            http.clone(),
            base.clone(),
            next.clone(),
            recv.clone(),
            args.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(args.batch as u64, Ordering::Relaxed) as usize;
                if first >= args.events {
                    return;
                }
                let n = args.batch.min(args.events - first);
                let now = recv.now_us();
                let body = batch_body(first, n, now);
                let _ = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth("bench-operator")
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
            }
        }));
    }
    for c in clients {
        let _ = c.await;
    }
    let ingest_s = started.elapsed().as_secs_f64();
    while recv.count.load(Ordering::Relaxed) < args.events as u64 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deliver_s = started.elapsed().as_secs_f64();
    let mut throughput_lat = std::mem::take(&mut *recv.latencies_us.lock());
    throughput_lat.sort_unstable();

    // Latency: a steady rate, in ticks of 10 ms.
    let per_tick = (args.rate / 100).max(1) as usize;
    let total = per_tick * 100 * args.seconds as usize;
    let before = recv.count.load(Ordering::Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0usize;
    while sent < total {
        tick.tick().await;
        let now = recv.now_us();
        let body = batch_body(args.events + sent, per_tick, now);
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move {
            let _ = http
                .post(format!("{base}/v1/events"))
                .bearer_auth("bench-operator")
                .body(body)
                .send()
                .await;
        });
        sent += per_tick;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while recv.count.load(Ordering::Relaxed) < before + total as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut lat = std::mem::take(&mut *recv.latencies_us.lock());
    lat.sort_unstable();
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let result = json!({
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "scenario": "one-to-one", "store": args.database_url.as_deref().unwrap_or("sqlite (temp dir)"),
        "events": args.events, "batch": args.batch, "clients": args.clients,
        "ingest_events_per_s": (args.events as f64 / ingest_s).round(),
        "deliveries_per_s": (args.events as f64 / deliver_s).round(),
        "loopback_ceiling_per_s": ceiling.round(),
        "ratio_to_ceiling": ((args.events as f64 / deliver_s) / ceiling * 1000.0).round() / 1000.0,
        "throughput_latency_ms": {"p50": percentile(&throughput_lat, 0.5), "p99": percentile(&throughput_lat, 0.99)},
        "steady_rate_per_s": per_tick * 100,
        "steady_latency_ms": {"p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99), "p999": percentile(&lat, 0.999), "max": percentile(&lat, 1.0)},
        "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "callhook bench — one-to-one, {} events, batches of {}, {} clients",
            args.events, args.batch, args.clients
        );
        for (k, v) in result.as_object().into_iter().flatten() {
            println!("  {k:<26} {v}");
        }
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "callhook-bench-{}",
        hex::encode(crate::security::random_bytes::<6>())
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
