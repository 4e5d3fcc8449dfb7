//! Tokens can be listed (never their secrets) and revoked; signing out ends a session for good.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_without_secrets_within_scope_and_revoked_at_once() {
    let server = TestServer::start().await;
    let alpha = server.tenant("alpha").await;
    let beta = server.tenant("beta").await;
    let (_, viewer) = alpha
        .post(
            "/v1/tokens",
            json!({"role": "tenant_viewer", "tenant_id": "alpha", "name": "wallboard"}),
        )
        .await;
    let viewer_id = viewer["id"].as_str().unwrap_or_default().to_string();
    let viewer = server.api(viewer["token"].as_str().unwrap_or_default());
    let (st, _) = viewer.get("/v1/tenants/alpha/integrations").await;
    assert_eq!(st, 200);

    let (st, list) = alpha.get("/v1/tokens").await;
    assert_eq!(st, 200);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "alpha's admin and viewer only: {list}");
    assert!(items.iter().all(|t| t["tenant_id"] == "alpha"));
    assert!(items
        .iter()
        .all(|t| t.get("token").is_none() && t.get("hash").is_none()));
    let (_, all) = server.admin().get("/v1/tokens").await;
    assert_eq!(all["items"].as_array().map_or(0, Vec::len), 3, "{all}");

    // Another tenant's token is not there to revoke; a viewer cannot list or revoke.
    let (st, _) = beta.delete(&format!("/v1/tokens/{viewer_id}")).await;
    assert_eq!(st, 404);
    let (st, _) = viewer.get("/v1/tokens").await;
    assert_eq!(st, 403);

    let (st, _) = alpha.delete(&format!("/v1/tokens/{viewer_id}")).await;
    assert_eq!(st, 204);
    let (st, v) = viewer.get("/v1/tenants/alpha/integrations").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (st, _) = alpha.delete(&format!("/v1/tokens/{viewer_id}")).await;
    assert_eq!(st, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_for_every_copy_of_the_cookie() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = http
        .post(format!("{}/console/login", server.base))
        .form(&[("token", acme.token.as_str())])
        .send()
        .await
        .expect("sign in");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    assert!(cookie.starts_with("callhook_session="), "{cookie}");
    let page = |c: String| {
        let http = http.clone();
        let url = format!("{}/console/t/acme", server.base);
        async move {
            let resp = http
                .get(url)
                .header("cookie", c)
                .send()
                .await
                .expect("page");
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };
    let (st, html) = page(cookie.clone()).await;
    assert_eq!(st, 200);
    let marker = "name=\"csrf\" value=\"";
    let csrf: String = html
        .split_once(marker)
        .map(|(_, rest)| rest.chars().take_while(|c| *c != '"').collect())
        .unwrap_or_default();
    let resp = http
        .post(format!("{}/console/logout", server.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sign out");
    assert_eq!(resp.status(), 303);
    // A copy of the cookie kept elsewhere no longer opens anything.
    let (st, _) = page(cookie).await;
    assert_eq!(st, 303, "redirected to sign in");
    server.stop().await;
}
