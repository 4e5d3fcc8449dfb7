//! The store failing under a running node: PostgreSQL crashing in the middle of a flood, SQLite's
//! disk filling up. Ingest says so with 503 / 507 (never 500, never a hang), nothing acknowledged
//! is lost, and the node carries on by itself once the store is back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// What a flood of batches saw: the ids acknowledged (202) and every other answer.
#[derive(Default)]
struct Flood {
    acked: Vec<String>,
    refused: Vec<(u16, Value)>,
    slowest: Duration,
}

/// Posts batches of 10 events (ids `{prefix}{n}`, one call each) until `stop`.
fn flood(api: Api, prefix: &'static str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Flood> {
    tokio::spawn(async move {
        let mut seen = Flood::default();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let ids: Vec<String> = (n..n + 10).map(|i| format!("{prefix}{i}")).collect();
            n += 10;
            let events: Vec<Value> = ids
                .iter()
                .map(|id| event(id, "acme", "ivr.input", id, json!({"dtmf": "1"})))
                .collect();
            let started = Instant::now();
            let (st, v) = api.post("/v1/events", json!({ "events": events })).await;
            seen.slowest = seen.slowest.max(started.elapsed());
            if st == 202 {
                seen.acked.extend(ids);
            } else {
                seen.refused.push((st, v));
                // A client backs off a little when told the store is away.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        seen
    })
}

/// Waits until the receiver has had every id in `ids` (at least once), moving the clock so
/// that retries of attempts the outage interrupted come due.
async fn all_delivered(rx: &Receiver, clock: &Clock, ids: &[String]) {
    let mut missing: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !missing.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged events never delivered, e.g. {:?}",
            missing.len(),
            ids.len(),
            missing.iter().take(3).collect::<Vec<_>>()
        );
        for r in rx
            .take_advancing(clock, 1, Duration::from_secs(5), Duration::from_secs(3600))
            .await
        {
            if let Some(id) = r.json()["id"].as_str() {
                missing.remove(id);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashing_mid_flood_answers_503_while_down_and_delivers_every_acknowledged_event()
{
    let pg = Arc::new(Postgres::private());
    let url = fresh_database(&pg.admin_url).await;
    let server = TestServer::start_with(|c| c.database_url = Some(url)).await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    api.integration(
        "acme",
        json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"]}),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = flood(server.admin(), "f", stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.crash())
        .await
        .expect("crash");
    // While it is down: a quick 503 with the envelope, saying what to do.
    for _ in 0..3 {
        let started = Instant::now();
        let (st, v) = server
            .ingest(event(
                "down",
                "acme",
                "ivr.input",
                "down",
                json!({"dtmf": "1"}),
            ))
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (503, Some("store_unavailable")),
            "{v}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
    let (st, _) = server.admin().get("/readyz").await;
    assert_eq!(st, 503, "not ready while the store is away");

    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.resume())
        .await
        .expect("resume");
    // Recovered without a restart: the flood is acknowledged again.
    let (st, v) = loop {
        let (st, v) = server
            .ingest(event("up", "acme", "ivr.input", "up", json!({"dtmf": "1"})))
            .await;
        if st != 503 {
            break (st, v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(st, 202, "{v}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = flooding.await.expect("flood");
    assert!(
        seen.refused.iter().all(|(st, _)| *st == 503),
        "only 503 while the store is away: {:?}",
        seen.refused
    );
    assert!(
        seen.slowest < Duration::from_secs(15),
        "a request hung {:?}",
        seen.slowest
    );
    let mut acked = seen.acked;
    acked.push("up".into());
    all_delivered(&rx, &server.clock, &acked).await;
    let (st, _) = server.admin().get("/readyz").await;
    assert_eq!(st, 200);
    server.stop().await;
}
