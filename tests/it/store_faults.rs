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

/// Posts batches of 10 events (ids `{prefix}{n}`, one call each) until `stop`, counting the
/// acknowledged batches in `acked` (so the test waits for progress, not for time).
fn flood(
    api: Api,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    acked: tokio::sync::watch::Sender<usize>,
) -> tokio::task::JoinHandle<Flood> {
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
                acked.send_modify(|n| *n += 1);
            } else {
                seen.refused.push((st, v));
                // A client backs off a little when told the store is away.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        seen
    })
}

/// Waits until the receiver has had every id in `ids` (at least once, answered 2xx), moving the
/// clock so that retries come due — by at most 10 minutes of it, well inside a delivery's lease
/// (1 h): an outcome the outage kept from the store must be written when it returns, not left
/// for the lease to run out.
async fn all_delivered(rx: &Receiver, clock: &Clock, ids: &[String]) {
    let mut missing: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let until = clock.now_ms() + 600_000;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !missing.is_empty() {
        let budget = (until - clock.now_ms()).max(0) as u64;
        assert!(
            Instant::now() < deadline && budget > 0,
            "{} of {} acknowledged events not delivered within 10 min on the clock, e.g. {:?}",
            missing.len(),
            ids.len(),
            missing.iter().take(3).collect::<Vec<_>>()
        );
        for r in rx
            .take_advancing(
                clock,
                1,
                Duration::from_secs(1),
                Duration::from_millis(budget),
            )
            .await
        {
            if (200..300).contains(&r.status) {
                if let Some(id) = r.json()["id"].as_str() {
                    missing.remove(id);
                }
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
    let (acked, mut batches) = tokio::sync::watch::channel(0usize);
    let flooding = flood(server.admin(), "f", stop.clone(), acked);
    // Crashed mid-flood: once some batches are in.
    let _ = batches.wait_for(|n| *n >= 20).await;

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
    // The flood goes on after the recovery too.
    let after = *batches.borrow();
    let _ = batches.wait_for(|n| *n >= after + 20).await;
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

/// A small tmpfs of its own (root only: CI runs as root), unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("dir");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test fills a small tmpfs and must run as root (as CI does): mount said {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

/// Writes `path` until the file system is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    // The last partial block, byte by byte.
    while f.write_all(&[0]).is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_507_loses_nothing_acknowledged_and_resumes_when_space_returns(
) {
    let fs = Tmpfs::mount("8m");
    let data = fs.dir.path().to_path_buf();
    let db = data.join("callhook.db");
    let server = TestServer::start_with(|c| {
        c.data_dir = data.clone();
        c.database_url = Some(format!("sqlite://{}", db.display()));
    })
    .await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    api.integration(
        "acme",
        json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"],
               "delivery": {"retry": {"policy": "linear", "retries": 10}}}),
    )
    .await;
    // Acknowledged before the disk fills, and not delivered yet: the receiver is failing, so
    // their retries (and the writes recording them) fall in the full-disk time.
    rx.set_default(Reply::Status(503));
    let mut acked = Vec::new();
    for batch in 0..3 {
        let ids: Vec<String> = (0..100).map(|i| format!("b{batch}-{i}")).collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| event(id, "acme", "ivr.input", id, json!({"dtmf": "1"})))
            .collect();
        let (st, v) = server.ingest(json!({ "events": events })).await;
        assert_eq!(st, 202, "{v}");
        acked.extend(ids);
    }
    let filler = data.join("filler");
    fill(&filler);

    // Batches until the store refuses one: the database's files may have had room left when
    // the disk filled, so some may go in first.
    let mut refused = None;
    for batch in 0..2000 {
        let ids: Vec<String> = (0..100).map(|i| format!("d{batch}-{i}")).collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| event(id, "acme", "ivr.input", id, json!({"dtmf": "1"})))
            .collect();
        let (st, v) = server.ingest(json!({ "events": events })).await;
        match st {
            202 => acked.extend(ids),
            _ => {
                refused = Some((st, v));
                break;
            }
        }
    }
    let (st, v) = refused.expect("the full disk refused a batch");
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (507, Some("insufficient_storage")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("disk is full"),
        "{v}"
    );
    // Still full: refused again, and nothing half-stored.
    let (st, _) = server
        .ingest(event(
            "again",
            "acme",
            "ivr.input",
            "again",
            json!({"dtmf": "1"}),
        ))
        .await;
    assert_eq!(st, 507);
    // Single events until not even one fits: what room the files had left is used up, so
    // the outcomes of the attempts made now cannot be written either.
    for n in 0..100_000 {
        let id = format!("s{n}");
        let (st, _) = server
            .ingest(event(&id, "acme", "ivr.input", &id, json!({"dtmf": "1"})))
            .await;
        if st != 202 {
            assert_eq!(st, 507);
            break;
        }
        acked.push(id);
    }
    // Attempts go on meanwhile (the receiver still fails them) and their outcomes wait.
    rx.take_advancing(
        &server.clock,
        10,
        Duration::from_secs(1),
        Duration::from_secs(600),
    )
    .await;

    // Space returns: ingest resumes without a restart, and everything acknowledged arrives.
    std::fs::remove_file(&filler).expect("free the space");
    rx.set_default(Reply::Status(200));
    let (st, v) = server
        .ingest(event(
            "after",
            "acme",
            "ivr.input",
            "after",
            json!({"dtmf": "1"}),
        ))
        .await;
    assert_eq!(st, 202, "{v}");
    acked.push("after".into());
    all_delivered(&rx, &server.clock, &acked).await;
    server.stop().await;

    let conn = rusqlite::Connection::open(&db).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM events WHERE id = 'again'", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(stored, 0, "a refused event is not stored");
}
