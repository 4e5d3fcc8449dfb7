//! The bench's receiver: answers `/h/…` at once and times each arrival against the send time
//! carried in the event id; `/fail` answers 500; `/hang` never answers (until the client's
//! timeout). Counts and latencies are for healthy endpoints only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use parking_lot::Mutex;

pub struct Receiver {
    pub count: AtomicU64,
    pub latencies_us: Mutex<Vec<u64>>,
    pub epoch: Instant,
}

impl Receiver {
    pub fn new() -> Arc<Receiver> {
        Arc::new(Receiver {
            count: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::new()),
            epoch: Instant::now(),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn take_latencies(&self) -> Vec<u64> {
        let mut v = std::mem::take(&mut *self.latencies_us.lock());
        v.sort_unstable();
        v
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// The send time is the event id's last segment (`b-<n>-<micros>`), found without parsing.
pub(super) fn sent_us(body: &[u8]) -> Option<u64> {
    let key = b"\"id\":\"b-";
    let start = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[start..];
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&rest[..end])
        .ok()?
        .rsplit('-')
        .next()?
        .parse()
        .ok()
}

pub async fn start(state: Arc<Receiver>) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let state = state.clone();
        async move {
            match uri.path() {
                "/hang" => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    StatusCode::OK
                }
                "/fail" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => {
                    if let Some(sent) = sent_us(&body) {
                        let lat = state.now_us().saturating_sub(sent);
                        state.latencies_us.lock().push(lat);
                    }
                    state.count.fetch_add(1, Ordering::Relaxed);
                    StatusCode::OK
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_time_is_read_from_the_event_id() {
        assert_eq!(
            sent_us(br#"{"delivery_id":"d","id":"b-12-3456","type":"x"}"#),
            Some(3456)
        );
        assert_eq!(sent_us(b"{}"), None);
    }
}
