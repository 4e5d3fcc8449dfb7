//! A store written by an earlier release opens, migrates and serves: integrations, their sealed
//! secrets and signing keys, and held deliveries survive the upgrade.
//!
//! `tests/fixtures/upgrade/<commit>/` holds a store that release wrote (made by running its
//! `callhook serve`, creating a disabled integration with a receiver secret and a custom header,
//! and ingesting three calls), its sealing key, and what the test expects of it.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_written_by_the_previous_release_opens_migrates_and_delivers_what_it_held() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade/f2ca52e");
    let expect: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("expect.json")).expect("expect.json"),
    )
    .expect("expect.json");
    let dir = tempfile::tempdir().expect("dir");
    for file in ["callhook.db", "seal.key"] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).expect("copy fixture");
    }
    let mut config = dev_config(dir.path());
    config.database_url = Some(format!(
        "sqlite://{}",
        dir.path().join("callhook.db").display()
    ));
    config.admin_token = expect["admin_token"].as_str().map(String::from);
    let running = callhook::app::start(config)
        .await
        .expect("the old store opens");
    let api = Api {
        base: format!("http://{}", running.addr),
        token: expect["admin_token"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        http: reqwest::Client::new(),
    };
    let iid = expect["integration_id"].as_str().unwrap_or_default();
    let (st, i) = api
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(st, 200, "{i}");
    assert_eq!(
        (
            i["status"].as_str(),
            i["secret_hint"].as_str(),
            i["headers"]["X-Api-Key"].as_str()
        ),
        (Some("disabled"), Some("…1234"), Some("…5678")),
        "{i}"
    );
    // Settings that did not exist then read as their defaults.
    assert_eq!(i["secret_use"], "bearer");
    assert_eq!(i["delivery"]["retry"]["policy"], "linear");
    assert!(i["delivery"].get("egress").is_none());
    assert!(i["trigger_id"].as_str().is_some_and(|g| g.len() == 36));
    api.wait_for_deliveries(
        "acme",
        iid,
        "held",
        expect["held"].as_u64().unwrap_or(3) as usize,
    )
    .await;

    // Pointed at a live receiver and enabled with its secret, it sends what it held, signed with
    // the signing key of the old release and carrying the secret it sealed.
    let rx = Receiver::start().await;
    let (st, v) = api
        .patch(
            &format!("/v1/tenants/acme/integrations/{iid}"),
            json!({"url": rx.url}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let secret = expect["receiver_secret"].as_str().unwrap_or_default();
    let (st, v) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/enable"),
            json!({"secret": secret}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let got = rx.take(3, 10).await;
    let wh = standardwebhooks::Webhook::new(expect["signing_secret"].as_str().unwrap_or_default())
        .expect("signing secret");
    for r in &got {
        assert!(
            wh.verify(&r.body, &r.headers).is_ok(),
            "signed with the old key"
        );
        assert_eq!(r.header("authorization"), format!("Bearer {secret}"));
        assert_eq!(r.header("x-api-key"), "k-123456789012345678");
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_a_newer_release_migrated_stops_an_older_binary_with_a_message() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = dev_config(dir.path());
    let db = dir.path().join("callhook.db");
    config.database_url = Some(format!("sqlite://{}", db.display()));
    callhook::app::start(config.clone())
        .await
        .expect("a new store")
        .shutdown()
        .await;
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.pragma_update(None, "user_version", 9999)
        .expect("bump the schema");
    drop(conn);
    let err = match callhook::app::start(config).await {
        Ok(_) => panic!("a store of a newer schema must not open"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("newer than this build"), "{err}");
}
