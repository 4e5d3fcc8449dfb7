//! A recording file belongs to exactly one tenant, end to end.

use serde_json::{json, Value};

use super::ingest_token;
use crate::support::*;

async fn upload(server: &TestServer, token: &str, file_id: &str, bytes: &[u8]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/recordings/{file_id}", server.base))
        .bearer_auth(token)
        .header("content-type", "audio/wav")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn recording_event(id: &str, tenant: &str, file_id: &str) -> Value {
    event(
        id,
        tenant,
        "recording.completed",
        &format!("call-{id}"),
        json!({"recording_id": format!("rec-{id}"),
               "files": [{"file_id": file_id, "content_type": "audio/wav"}],
               "call": {"direction": "inbound"}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_get_a_link_to_another_tenants_recording() {
    let server = TestServer::start().await;
    let alpha = server.tenant("alpha").await;
    server.tenant("beta").await;
    let beta_ingest = ingest_token(&server, "beta").await;
    let (st, _) = upload(&server, &beta_ingest, "shared-id", b"beta's audio").await;
    assert_eq!(st, 201);

    // Alpha's admin mints its own ingest token and names beta's file: refused, nothing stored.
    let (st, tok) = alpha
        .post(
            "/v1/tokens",
            json!({"role": "ingest", "tenant_id": "alpha", "name": "mine"}),
        )
        .await;
    assert_eq!(st, 201);
    let alpha_ingest = server.api(tok["token"].as_str().unwrap_or_default());
    let rx = Receiver::start().await;
    alpha
        .integration(
            "alpha",
            json!({"name": "rec", "url": rx.url, "profile": "recording.v2",
                   "event_types": ["recording.completed"]}),
        )
        .await;
    for file in ["shared-id", "never-uploaded"] {
        let (st, v) = alpha_ingest
            .post("/v1/events", recording_event("e1", "alpha", file))
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("unknown_file")),
            "{v}"
        );
    }

    // The id is alpha's own too: a taken id in another tenant answers like a free one (no
    // existence oracle), and alpha's link opens alpha's bytes only.
    let (st, meta) = upload(
        &server,
        alpha_ingest.token.as_str(),
        "shared-id",
        b"alpha's audio",
    )
    .await;
    assert_eq!((st, meta["tenant_id"].as_str()), (201, Some("alpha")));
    let (st, _) = alpha_ingest
        .post("/v1/events", recording_event("e1", "alpha", "shared-id"))
        .await;
    assert_eq!(st, 202);
    let link = rx.next(10).await.json()["fileUrls"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(link.contains("tenant_id=alpha"), "{link}");
    let http = reqwest::Client::new();
    let got = http.get(&link).send().await.expect("download");
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.bytes().await.unwrap_or_default().as_ref(),
        b"alpha's audio"
    );

    // The signature binds the tenant: pointing alpha's link at beta's file is refused.
    let retargeted = link.replace("tenant_id=alpha", "tenant_id=beta");
    let resp = http.get(&retargeted).send().await.expect("download");
    assert_eq!(resp.status(), 403);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenants_files_are_removed_and_not_inherited_by_a_new_tenant_of_its_id() {
    let server = TestServer::start().await;
    server.tenant("gamma").await;
    let ingest = ingest_token(&server, "gamma").await;
    let (st, _) = upload(&server, &ingest, "call-audio", b"gamma's audio").await;
    assert_eq!(st, 201);
    let dir = server.data_dir().join("recordings").join("gamma");
    assert!(dir.join("call-audio").exists());

    let (st, _) = server.admin().delete("/v1/tenants/gamma").await;
    assert_eq!(st, 204);
    assert!(!dir.exists(), "the tenant's recording files are gone");

    // A new tenant of the same id starts empty: the old file id names nothing.
    server.tenant("gamma").await;
    let ingest = server.api(&ingest_token(&server, "gamma").await);
    let (st, v) = ingest
        .post("/v1/events", recording_event("e2", "gamma", "call-audio"))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("unknown_file")),
        "{v}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_tenant_with_a_taken_id_leaves_that_tenants_files_alone() {
    let server = TestServer::start().await;
    server.tenant("globex").await;
    let ingest = ingest_token(&server, "globex").await;
    let (st, _) = upload(&server, &ingest, "keep-me", b"globex's audio").await;
    assert_eq!(st, 201);
    let (st, _) = server
        .admin()
        .post("/v1/tenants", json!({"id": "globex", "name": "again"}))
        .await;
    assert_eq!(st, 409);
    let file = server.data_dir().join("recordings/globex/keep-me");
    assert!(file.exists(), "a refused create removed nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloaded_recording_is_never_rendered_and_arrives_byte_for_byte() {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let server = TestServer::start_with(|c| c.seal_key = Some(key)).await;
    server.tenant("acme").await;
    let ingest = ingest_token(&server, "acme").await;
    // HTML as its type, and bytes that imitate an HTTP answer: served as they are, as a file.
    let bytes = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n<script>alert(1)</script>";
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/recordings/page", server.base))
        .bearer_auth(&ingest)
        .header("content-type", "text/html")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 201);
    let link = callhook::security::links::Links::new(
        &server.base,
        callhook::security::seal::Sealer::from_key([9; 32]).derive_key("recording-urls"),
    )
    .url("acme", "page", callhook::time::now_ms());
    let http = reqwest::Client::new();
    for _ in 0..2 {
        // Twice on one kept-alive connection: the second answer is not the connection's first.
        let resp = http.get(&link).send().await.expect("download");
        assert_eq!(resp.status(), 200);
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(h("content-disposition"), "attachment");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert!(h("content-security-policy").starts_with("sandbox"));
        assert_eq!(resp.bytes().await.unwrap_or_default().as_ref(), bytes);
    }
    let part = http
        .get(&link)
        .header("range", "bytes=0-49")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.unwrap_or_default().as_ref(),
        &bytes[..50]
    );
    server.stop().await;
}
