use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_token_never_sees_another_tenants_objects() {
    let server = TestServer::start().await;
    let a = server.tenant("alpha").await;
    let b = server.tenant("beta").await;
    let rx = Receiver::start().await;
    let bi = b
        .integration(
            "beta",
            json!({"name": "b", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    let biid = bi["id"].as_str().unwrap_or_default();
    for path in [
        "/v1/tenants/beta".to_string(),
        "/v1/tenants/beta/integrations".to_string(),
        format!("/v1/tenants/beta/integrations/{biid}"),
        format!("/v1/tenants/alpha/integrations/{biid}"),
        format!("/v1/tenants/beta/integrations/{biid}/deliveries"),
    ] {
        let (st, v) = a.get(&path).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (st, _) = a
        .delete(&format!("/v1/tenants/alpha/integrations/{biid}"))
        .await;
    assert_eq!(st, 404);
    let (st, _) = a
        .post(
            "/v1/tokens",
            json!({"role": "tenant_admin", "tenant_id": "beta", "name": "x"}),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = a
        .post("/v1/tenants", json!({"id": "gamma", "name": "g"}))
        .await;
    assert_eq!(st, 403);

    // An ingest token for alpha cannot post beta's events.
    let (_, tok) = server
        .admin()
        .post(
            "/v1/tokens",
            json!({"role": "ingest", "tenant_id": "alpha", "name": "pbx"}),
        )
        .await;
    let ingest = server.api(tok["token"].as_str().unwrap_or_default());
    let (st, _) = ingest
        .post(
            "/v1/events",
            event("x", "beta", "ivr.input", "c", json!({"dtmf": "1"})),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = ingest
        .post(
            "/v1/events",
            event("x", "alpha", "ivr.input", "c", json!({"dtmf": "1"})),
        )
        .await;
    assert_eq!(st, 202);
    assert_eq!(
        ingest.get("/v1/tenants/alpha").await.0,
        404,
        "ingest tokens read nothing"
    );

    // A viewer reads but cannot change.
    let (_, tok) = a
        .post(
            "/v1/tokens",
            json!({"role": "tenant_viewer", "tenant_id": "alpha", "name": "v"}),
        )
        .await;
    let viewer = server.api(tok["token"].as_str().unwrap_or_default());
    assert_eq!(viewer.get("/v1/tenants/alpha/integrations").await.0, 200);
    let (st, _) = viewer
        .post(
            "/v1/tenants/alpha/integrations",
            json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    assert_eq!(st, 403);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_admins_manage_only_their_partners_tenants() {
    let server = TestServer::start().await;
    let admin = server.admin();
    assert_eq!(
        admin
            .post("/v1/partners", json!({"id": "p1", "name": "Reseller"}))
            .await
            .0,
        201
    );
    assert_eq!(
        admin
            .post("/v1/partners", json!({"id": "p1", "name": "Again"}))
            .await
            .0,
        409
    );
    let (_, tok) = admin
        .post(
            "/v1/tokens",
            json!({"role": "partner_admin", "partner_id": "p1", "name": "p"}),
        )
        .await;
    let partner = server.api(tok["token"].as_str().unwrap_or_default());
    let (st, t) = partner
        .post("/v1/tenants", json!({"id": "pt", "name": "Partner tenant"}))
        .await;
    assert_eq!((st, t["partner_id"].as_str()), (201, Some("p1")));
    admin
        .post("/v1/tenants", json!({"id": "direct", "name": "Direct"}))
        .await;
    assert_eq!(partner.get("/v1/tenants/pt").await.0, 200);
    assert_eq!(partner.get("/v1/tenants/direct").await.0, 404);
    assert_eq!(partner.get("/v1/partners/p1").await.0, 200);
    server.stop().await;
}
