//! A misconfigured node never acknowledges what it cannot route.

use base64::Engine;
use serde_json::json;

use crate::support::*;

fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

async fn start(
    dir: &std::path::Path,
    url: &str,
    seal: u8,
) -> anyhow::Result<callhook::app::Running> {
    let mut config = dev_config(dir);
    config.database_url = Some(url.to_string());
    config.seal_key = Some(key(seal));
    callhook::app::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_seal_key_refuses_to_start() {
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let url = store_url(a_dir.path()).await;
    let a = start(a_dir.path(), &url, 1)
        .await
        .expect("first node starts");
    let b = start(b_dir.path(), &url, 2).await;
    let err = b.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("CALLHOOK_SEAL_KEY"), "{err}");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_open_an_integration_is_not_ready_and_refuses_events() {
    let dir = tempfile::tempdir().expect("dir");
    let url = store_url(dir.path()).await;
    let a = start(dir.path(), &url, 1).await.expect("starts");
    let base = format!("http://{}", a.addr);
    let admin = Api {
        base: base.clone(),
        token: ADMIN.into(),
        http: reqwest::Client::new(),
    };
    let rx = Receiver::start().await;
    let (st, _) = admin
        .post("/v1/tenants", json!({"id": "acme", "name": "a"}))
        .await;
    assert_eq!(st, 201);
    admin
        .integration(
            "acme",
            json!({"name": "i", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    a.shutdown().await;

    // The integration's sealed keys become unreadable (as if sealed with another key).
    {
        let store = callhook::store::open(&url).await.expect("store");
        let mut rec = store.load_integrations().await.expect("load").remove(0);
        rec.signing_sealed = vec![0; 40];
        store.update_integration(rec).await.expect("update");
    }

    let b = start(dir.path(), &url, 1).await.expect("starts");
    let base = format!("http://{}", b.addr);
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let resp = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(ADMIN)
        .json(&event(
            "e1",
            "acme",
            "ivr.input",
            "c1",
            json!({"dtmf": "1"}),
        ))
        .send()
        .await
        .expect("ingest");
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "not_ready", "{v}");
    b.shutdown().await;
}
