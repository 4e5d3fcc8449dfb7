//! The bench's load: ~1 KB `call.completed` events, formatted directly so the generator stays
//! cheap, posted in batches (or one per request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::receiver::Receiver;

pub const TOKEN: &str = "bench-operator";

pub fn cdr(n: usize, sent_us: u64) -> String {
    format!(
        r#"{{"id":"b-{n}-{sent_us}","type":"call.completed","tenant_id":"bench","occurred_at":"2026-11-22T10:00:00.000Z","call_id":"b-{n}-{sent_us}","data":{{"answered":true,"direction":"inbound","scope":"external","call_type":"incoming","started_at":"2026-11-22T09:58:00.000Z","answered_at":"2026-11-22T09:58:07.000Z","ended_at":"2026-11-22T10:00:00.000Z","ring_ms":7000,"talk_ms":113000,"caller":{{"number":"+441610000001","name":"Alice Example","country":"GB"}},"callee":{{"number":"+441610000002","name":"Support"}},"did":{{"number":"+441610000000","name":"Main line"}},"owner":{{"kind":"user","user_id":"u-17"}},"tags":{{"campaign":"winter"}},"recording_ids":["rec-1"],"rating":{{"rated":true,"cost":0.012,"band":"national"}}}}}}"#
    )
}

pub fn batch_body(first: usize, n: usize, sent_us: u64) -> String {
    if n == 1 {
        return cdr(first, sent_us);
    }
    let items: Vec<String> = (first..first + n).map(|i| cdr(i, sent_us)).collect();
    format!(r#"{{"events":[{}]}}"#, items.join(","))
}

async fn post(http: &reqwest::Client, base: &str, body: String) {
    let _ = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
}

/// Posts `events` as fast as `clients` concurrent clients can, the clients spread over the
/// nodes at `bases`; returns the seconds it took.
pub async fn flood(
    http: &reqwest::Client,
    bases: &[String],
    recv: &Arc<Receiver>,
    first: usize,
    events: usize,
    batch: usize,
    clients: usize,
) -> f64 {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = bases[c % bases.len()].clone();
        let (http, next, recv) = (http.clone(), next.clone(), recv.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let at = next.fetch_add(batch as u64, Ordering::Relaxed) as usize;
                if at >= events {
                    return;
                }
                let n = batch.min(events - at);
                post(&http, &base, batch_body(first + at, n, recv.now_us())).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    started.elapsed().as_secs_f64()
}

/// Posts `rate` events/s for `seconds`, in ticks taking turns over the nodes at `bases`;
/// returns how many were sent.
pub async fn steady(
    http: &reqwest::Client,
    bases: &[String],
    recv: &Arc<Receiver>,
    first: usize,
    rate: u64,
    seconds: u64,
) -> usize {
    let ticks = 100 * seconds as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let (mut sent, mut posts) = (0, 0);
    for t in 0..ticks {
        tick.tick().await;
        let n = due_in_tick(rate, t as u64);
        if n == 0 {
            continue;
        }
        let body = batch_body(first + sent, n, recv.now_us());
        let (http, base) = (http.clone(), bases[posts % bases.len()].clone());
        tokio::spawn(async move { post(&http, &base, body).await });
        sent += n;
        posts += 1;
    }
    sent
}

/// Events due in 10 ms tick `t` at `rate` per second: what brings the total sent to the rate
/// (rounding each tick's share up instead sent 100/s for any rate under 100).
fn due_in_tick(rate: u64, t: u64) -> usize {
    ((t + 1) * rate / 100 - t * rate / 100) as usize
}

/// The receiver's ceiling with the cheapest client there is: 64 bare HTTP/1.1 connections
/// (hyper's connection API: no pool, no redirects, no TLS layer), each posting the event body
/// in a loop for `secs`. What callhook's deliveries are read against.
pub async fn raw_ceiling(url: &str, secs: u64) -> f64 {
    let Ok(parsed) = url::Url::parse(url) else {
        return f64::NAN;
    };
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return f64::NAN;
    };
    let (addr, authority, path) = (
        format!("{host}:{port}"),
        format!("{host}:{port}"),
        parsed.path().to_string(),
    );
    let body = bytes::Bytes::from(cdr(0, 0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (addr, authority, path, body, done) = (
            addr.clone(),
            authority.clone(),
            path.clone(),
            body.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _ = raw_connection(&addr, &authority, &path, body, deadline, &done).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / secs.max(1) as f64
}

/// The receiver's ceiling measured by `wrk` (64 connections, 2 threads, the event body posted),
/// when `wrk` is installed: a C load generator, cheaper still than [`raw_ceiling`]. `None` when
/// it is not installed or its output has no rate.
pub async fn wrk_ceiling(url: &str, secs: u64, dir: &std::path::Path) -> Option<f64> {
    let script = dir.join("wrk-post.lua");
    let body = serde_json::to_string(&cdr(0, 0)).ok()?;
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = {body}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    );
    std::fs::write(&script, lua).ok()?;
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{}s", secs.max(1)), "-s"])
        .arg(&script)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    parse_wrk_rate(&String::from_utf8_lossy(&out.stdout))
}

/// Posts one event per request with `wrk` for `secs` over `connections` connections, each event
/// with an id of its own; returns how many requests were answered with a 2xx, and how many
/// not. The ids carry no send time, so the receiver times none of these deliveries.
pub async fn wrk_flood(
    base: &str,
    secs: u64,
    connections: usize,
    dir: &std::path::Path,
) -> anyhow::Result<(u64, u64)> {
    let template = cdr(0, 0).replace("b-0-0", "%s");
    anyhow::ensure!(
        !template.contains("]==]"),
        "the event does not fit a Lua long string"
    );
    let lua = format!(
        r#"local threads = {{}}
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
function init(args) counter = 0 end
local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {TOKEN}"}}
local template = [==[{template}]==]
request = function()
  counter = counter + 1
  local id = "w-" .. tid .. "-" .. counter
  return wrk.format("POST", "/v1/events", headers, string.format(template, id, id))
end
"#
    );
    let script = dir.join("wrk-ingest.lua");
    std::fs::write(&script, lua)?;
    let threads = connections.clamp(1, 2);
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", connections.max(threads)))
        .arg(format!("-d{}s", secs.max(1)))
        .arg("-s")
        .arg(&script)
        .arg(base)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!("--load wrk needs wrk installed (apt-get install wrk): {e}")
        })?;
    let report = String::from_utf8_lossy(&out.stdout);
    parse_wrk_counts(&report)
        .ok_or_else(|| anyhow::anyhow!("wrk's report has no request count: {report}"))
}

/// (answered with a 2xx, not) from wrk's report: `N requests in …` and `Non-2xx or 3xx
/// responses: M`.
fn parse_wrk_counts(report: &str) -> Option<(u64, u64)> {
    let total: u64 = report
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let failed: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some((total.saturating_sub(failed), failed))
}

/// `Requests/sec:  123456.78` from wrk's report.
fn parse_wrk_rate(report: &str) -> Option<f64> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One of [`raw_ceiling`]'s connections: requests one after another until `deadline`.
async fn raw_connection(
    addr: &str,
    authority: &str,
    path: &str,
    body: bytes::Bytes,
    deadline: Instant,
    done: &AtomicU64,
) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<bytes::Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await?;
    tokio::spawn(conn);
    while Instant::now() < deadline {
        sender.ready().await?;
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))?;
        let resp = sender.send_request(req).await?;
        resp.into_body().collect().await?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The receiver's ceiling with reqwest (callhook's own client): 64 requests in flight straight
/// at it, for `secs`. The second line; [`raw_ceiling`] is the one results are read against.
pub async fn loopback_ceiling(url: &str, secs: u64) -> f64 {
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
    done.load(Ordering::Relaxed) as f64 / secs.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::due_in_tick;

    #[test]
    fn wrks_rate_is_read_from_its_report() {
        let report = "Running 3s test @ http://127.0.0.1:1/h\n  2 threads and 64 connections\nRequests/sec: 118234.55\nTransfer/sec:     10.03MB\n";
        assert_eq!(super::parse_wrk_rate(report), Some(118234.55));
        assert_eq!(super::parse_wrk_rate("no rate"), None);
        let flood = "  2 threads and 64 connections\n  150000 requests in 10.00s, 30.1MB read\n  Non-2xx or 3xx responses: 12\nRequests/sec:  15000.00\n";
        assert_eq!(super::parse_wrk_counts(flood), Some((149988, 12)));
        assert_eq!(
            super::parse_wrk_counts("  9 requests in 1.00s, 1KB read\n"),
            Some((9, 0))
        );
    }

    #[test]
    fn steady_ticks_send_the_rate_asked_for() {
        for rate in [1, 7, 20, 99, 100, 150, 2000, 10_000] {
            let in_a_second: usize = (0..100).map(|t| due_in_tick(rate, t)).sum();
            assert_eq!(in_a_second, rate as usize, "rate {rate}");
        }
    }
}
