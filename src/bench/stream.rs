//! The `stream` scenario: `--readers` WebSocket clients read one stream integration while events
//! are posted at `--rate` per second for `--seconds`; each reader times every event from the
//! send time in its id to its arrival. The loopback ceiling of the other scenarios does not
//! apply (nothing is delivered over HTTP); the figure is the latency.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::env::Env;
use super::load::{self, TOKEN};
use super::measure::percentiles;
use super::receiver::{sent_us, Receiver};
use super::BenchArgs;

pub(super) async fn run(env: &mut Env, args: &BenchArgs) -> anyhow::Result<Value> {
    let spec = json!({"name": "desks", "destination": {"type": "stream"},
                      "event_types": ["call.completed"], "profile": env.profile});
    let iid = env.api("/v1/tenants/bench/integrations", spec).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = format!(
        "{}/v1/tenants/bench/integrations/{iid}/stream",
        env.base.replacen("http", "ws", 1)
    );
    let readers = args.readers.max(1);
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let mut req = url.as_str().into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        // The first message says the stream is live.
        ws.next().await;
        let recv = env.recv.clone();
        tasks.push(tokio::spawn(read(ws, recv)));
    }
    env.recv.count.store(0, Ordering::Relaxed);
    env.recv.take_latencies();
    let sent = load::steady(
        &env.http,
        &env.bases,
        &env.recv,
        env.next_event,
        args.rate,
        args.seconds,
    )
    .await;
    env.next_event += sent;
    let want = (sent * readers) as u64;
    let kept_up = env.wait_for(want, Duration::from_secs(10)).await;
    for t in &tasks {
        t.abort();
    }
    let lat = env.recv.take_latencies();
    Ok(json!({
        "readers": readers,
        "events_per_s": args.rate,
        "seconds": args.seconds,
        "messages": env.recv.count(),
        "kept_up": kept_up,
        "latency_ms": percentiles(&lat),
    }))
}

async fn read<S>(mut ws: S, recv: Arc<Receiver>)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(text) = msg {
            if let Some(sent) = sent_us(text.as_bytes()) {
                let lat = recv.now_us().saturating_sub(sent);
                recv.latencies_us.lock().push(lat);
                recv.count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
