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

/// The receiver's ceiling: 64 requests in flight straight at it, for `secs`.
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
    fn steady_ticks_send_the_rate_asked_for() {
        for rate in [1, 7, 20, 99, 100, 150, 2000, 10_000] {
            let in_a_second: usize = (0..100).map(|t| due_in_tick(rate, t)).sum();
            assert_eq!(in_a_second, rate as usize, "rate {rate}");
        }
    }
}
