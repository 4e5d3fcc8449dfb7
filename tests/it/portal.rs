//! Portal links: the platform asks for a single-use, short-lived link into the console for one
//! customer; opening it starts a session of exactly its scope, with no API token in the browser;
//! the platform lists and ends those sessions.

use std::time::Duration;

use serde_json::{json, Value};

use crate::console::Browser;
use crate::partners::partner_admin;
use crate::support::*;

/// A tenant `tid` of partner `p1` with two integrations, "alpha" and "bravo"; their ids.
async fn tenant_with_two(server: &TestServer, tid: &str) -> (String, String) {
    let (st, v) = server
        .admin()
        .post(
            "/v1/tenants",
            json!({"id": tid, "name": tid, "partner_id": "p1"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let rx = Receiver::start().await;
    let mut ids = Vec::new();
    for name in ["alpha", "bravo"] {
        let (st, i) = server
            .admin()
            .post(
                &format!("/v1/tenants/{tid}/integrations"),
                json!({"name": name, "url": rx.url, "event_types": ["ivr.input"], "verification": "none"}),
            )
            .await;
        assert_eq!(st, 201, "{i}");
        ids.push(i["id"].as_str().unwrap_or_default().to_string());
    }
    (ids[0].clone(), ids[1].clone())
}

/// The path of a link's URL on this server.
fn path_of(server: &TestServer, link: &Value) -> String {
    let url = link["url"].as_str().unwrap_or_default();
    assert!(url.starts_with(&server.base), "{url}");
    url[server.base.len()..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_link_opens_once_into_a_session_of_exactly_its_scope() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    let (alpha, bravo) = tenant_with_two(&server, "acme").await;
    let _ = tenant_with_two(&server, "globex").await;
    let links = "/v1/tenants/acme/portal-links";

    // The platform's side only: the tenant's own tokens cannot hand out links.
    let tenant = server.tenant("solo").await;
    let (st, _) = tenant
        .post(
            "/v1/tenants/solo/portal-links",
            json!({"role": "tenant_admin"}),
        )
        .await;
    assert_eq!(st, 403);
    // What a link may grant, and for how long.
    for (body, says) in [
        (json!({"role": "operator"}), "tenant_admin or tenant_viewer"),
        (
            json!({"role": "partner_admin"}),
            "tenant_admin or tenant_viewer",
        ),
        (json!({"role": "tenant_admin", "ttl_s": 3601}), "1–3600"),
        (json!({"role": "tenant_admin", "ttl_s": 0}), "1–3600"),
        (
            json!({"role": "tenant_admin", "integration_ids": []}),
            "1–100",
        ),
        (
            json!({"role": "tenant_admin", "scope": "all"}),
            "unknown field",
        ),
    ] {
        let (st, v) = partner.post(links, body.clone()).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_portal_link")),
            "{body}: {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{v}"
        );
    }
    // Another tenant's integration cannot be put in the scope.
    let (st, v) = partner
        .post(
            links,
            json!({"role": "tenant_admin", "integration_ids": [alpha.clone(), "int_01m8zzzzzzzzzzzzzzzzzzzzzz"]}),
        )
        .await;
    assert_eq!(st, 422, "{v}");

    // A viewer's link to alpha only (named by its trigger GUID, as the platform may know it).
    let guid = server
        .admin()
        .get(&format!("/v1/tenants/acme/integrations/{alpha}"))
        .await
        .1["trigger_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (st, link) = partner
        .post(
            links,
            json!({"role": "tenant_viewer", "ttl_s": 60, "integration_ids": [guid]}),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    assert!(link["expires_at"].as_str().is_some(), "{link}");
    let path = path_of(&server, &link);

    let mut browser = Browser::new(&server);
    let opened = browser.get(&path).await;
    assert_eq!(
        (opened.status, opened.location.as_str()),
        (303, "/console/t/acme")
    );
    let cookie = browser.cookie.clone().expect("a session cookie");
    assert!(!cookie.contains("chk_"), "no API token in the browser");
    let list = browser.get("/console/t/acme").await;
    assert_eq!(list.status, 200);
    assert!(!list.html.contains("chk_"));
    assert!(
        list.html.contains("alpha") && !list.html.contains("bravo"),
        "only its scope"
    );
    assert_eq!(
        browser
            .get(&format!("/console/t/acme/integrations/{alpha}"))
            .await
            .status,
        200
    );
    assert_eq!(
        browser
            .get(&format!("/console/t/acme/integrations/{bravo}"))
            .await
            .status,
        404
    );
    assert_eq!(browser.get("/console/t/globex").await.status, 404);

    // Single use: a second opening (another browser, or the same) is refused, and no session.
    let mut other = Browser::new(&server);
    let again = other.get(&path).await;
    assert_eq!(again.status, 410);
    assert!(again.html.contains("used or has expired"));
    assert!(other.cookie.is_none());

    // Short-lived: a link not opened within its ttl_s is refused.
    let (_, late) = partner
        .post(links, json!({"role": "tenant_admin", "ttl_s": 60}))
        .await;
    server.clock.advance(Duration::from_secs(61));
    assert_eq!(
        Browser::new(&server)
            .get(&path_of(&server, &late))
            .await
            .status,
        410
    );

    // The platform lists the sessions and ends one: its next page is the sign-in page.
    let (st, sessions) = partner.get("/v1/tenants/acme/portal-sessions").await;
    assert_eq!(st, 200, "{sessions}");
    let items = sessions["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{sessions}");
    assert_eq!(items[0]["role"], "tenant_viewer");
    assert_eq!(items[0]["integration_ids"], json!([alpha]));
    assert_eq!(items[0]["active"], true);
    let sid = items[0]["id"].as_str().unwrap_or_default();
    let (st, _) = server
        .tenant("other")
        .await
        .delete(&format!("/v1/tenants/acme/portal-sessions/{sid}"))
        .await;
    assert_eq!(st, 404, "another tenant's token does not see it");
    let (st, _) = partner
        .delete(&format!("/v1/tenants/acme/portal-sessions/{sid}"))
        .await;
    assert_eq!(st, 204);
    let ended = browser.get("/console/t/acme").await;
    assert_eq!(
        (ended.status, ended.location.as_str()),
        (303, "/console/login")
    );
    let (st, _) = partner
        .delete(&format!("/v1/tenants/acme/portal-sessions/{sid}"))
        .await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_admin_session_changes_its_integrations_but_creates_none_and_dies_with_its_tenant()
{
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    let (alpha, _) = tenant_with_two(&server, "acme").await;
    let (_, link) = partner
        .post(
            "/v1/tenants/acme/portal-links",
            json!({"role": "tenant_admin", "integration_ids": [alpha.clone()]}),
        )
        .await;
    let mut browser = Browser::new(&server);
    assert_eq!(browser.get(&path_of(&server, &link)).await.status, 303);
    let page = browser
        .get(&format!("/console/t/acme/integrations/{alpha}"))
        .await;
    assert_eq!(page.status, 200);
    // Creating is refused to a session limited to some integrations.
    let form = browser.get("/console/t/acme/integrations/new").await;
    let mut fields = crate::console::form_fields(&form.html);
    for (k, v) in fields.iter_mut() {
        match k.as_str() {
            "name" => *v = "new".into(),
            "url" => *v = "http://127.0.0.1:9/".into(),
            _ => {}
        }
    }
    fields.push(("verification".into(), "none".into()));
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let created = browser
        .post("/console/t/acme/integrations/new", &pairs)
        .await;
    // (The console shows the form again with the API's refusal.)
    assert!(
        created.status >= 400 && created.html.contains("limited to some of the tenant"),
        "{}",
        created.html
    );
    let (_, listed) = server.admin().get("/v1/tenants/acme/integrations").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));

    // A deleted tenant takes its sessions along: a new tenant of that id inherits none.
    let (st, _) = server.admin().delete("/v1/tenants/acme").await;
    assert_eq!(st, 204);
    let (st, _) = server
        .admin()
        .post(
            "/v1/tenants",
            json!({"id": "acme", "name": "acme", "partner_id": "p1"}),
        )
        .await;
    assert_eq!(st, 201);
    let gone = browser.get("/console/t/acme").await;
    assert_eq!(
        (gone.status, gone.location.as_str()),
        (303, "/console/login")
    );
}
