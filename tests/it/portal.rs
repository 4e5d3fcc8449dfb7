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
async fn a_link_fetched_by_a_chat_preview_or_mail_scanner_is_not_used_up() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    let _ = tenant_with_two(&server, "acme").await;
    let (_, link) = partner
        .post(
            "/v1/tenants/acme/portal-links",
            json!({"role": "tenant_viewer"}),
        )
        .await;
    let path = path_of(&server, &link);
    // Bots fetch it: a preview (no Sec-Fetch headers), a scanner's real browser (a document,
    // but no click), a prefetch. Each gets a page with a button, no session, and the link stays
    // unused.
    let bot = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let scanner = [
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
    ];
    let prefetch = [("sec-fetch-dest", "document"), ("sec-fetch-user", "?1")];
    for (headers, purpose) in [
        (&[][..], None),
        (&scanner[..], None),
        (&prefetch[..], Some("prefetch;prerender")),
    ] {
        let mut req = bot.get(link["url"].as_str().unwrap_or_default());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(p) = purpose {
            req = req.header("sec-purpose", p);
        }
        let res = req.send().await.expect("preview");
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("set-cookie").is_none());
        let html = res.text().await.unwrap_or_default();
        // (The template escapes `/` in attributes as `&#x2f;`, which browsers read back.)
        let html = html.replace("&#x2f;", "/");
        assert!(html.contains(&format!("action=\"{path}\"")), "{html}");
    }
    // The person then opens it (the button posts from the console's own page): a session.
    let mut person = Browser::new(&server);
    let opened = person.post(&path, &[]).await;
    assert_eq!(
        (opened.status, opened.location.as_str()),
        (303, "/console/t/acme")
    );
    assert_eq!(person.get("/console/t/acme").await.status, 200);
    // Once: neither the button nor a navigation opens it again.
    assert_eq!(Browser::new(&server).post(&path, &[]).await.status, 410);
    assert_eq!(Browser::new(&server).get(&path).await.status, 410);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_lets_its_own_admin_ui_frame_its_tenants_console_and_no_one_else() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    let (alpha, _) = tenant_with_two(&server, "acme").await;
    let other = partner_admin(&server, "p2").await;
    for (list, says) in [
        (json!(["http://admin.example-pbx.com"]), "must be https"),
        (
            json!(["https://admin.example-pbx.com/embed"]),
            "a scheme, a host and a port only",
        ),
        (
            json!(["https://user@admin.example-pbx.com"]),
            "a scheme, a host and a port only",
        ),
        (json!(["*"]), "not an origin"),
        // What the URL parser lets through but a CSP must not get.
        (json!(["https://*"]), "a scheme, a host and a port only"),
        (
            json!(["https://x;sandbox"]),
            "a scheme, a host and a port only",
        ),
        (
            json!(["https://a'b.example"]),
            "a scheme, a host and a port only",
        ),
    ] {
        let (st, v) = partner
            .patch("/v1/partners/p1", json!({"frame_ancestors": list}))
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_partner")),
            "{v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{v}"
        );
    }
    let (st, _) = other
        .patch(
            "/v1/partners/p1",
            json!({"frame_ancestors": ["https://evil.example"]}),
        )
        .await;
    assert_eq!(
        st, 404,
        "one partner cannot open another's tenants to framing"
    );
    let (st, _) = partner
        .patch("/v1/partners/p1", json!({"name": "renamed"}))
        .await;
    assert_eq!(st, 403, "only operators rename partners");

    // Not yet allowed: the console refuses every frame, and the session cookie stays strict.
    let new_link = || async {
        partner
            .post(
                "/v1/tenants/acme/portal-links",
                json!({"role": "tenant_admin", "integration_ids": [alpha.clone()]}),
            )
            .await
            .1
    };
    let (mut b, cookie) = open(&server, new_link().await).await;
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let page = b.get_raw("/console/t/acme").await;
    assert!(page.0.contains("frame-ancestors 'none'"), "{}", page.0);
    assert_eq!(page.1.as_deref(), Some("DENY"));

    let (st, v) = partner
        .patch(
            "/v1/partners/p1",
            json!({"frame_ancestors": ["https://admin.example-pbx.com", "http://127.0.0.1:8443"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["frame_ancestors"],
        json!(["https://admin.example-pbx.com", "http://127.0.0.1:8443"])
    );
    let (mut b, cookie) = open(&server, new_link().await).await;
    assert!(
        cookie.contains("SameSite=None")
            && cookie.contains("Secure")
            && cookie.contains("Partitioned"),
        "{cookie}"
    );
    let (csp, xfo) = b.get_raw("/console/t/acme").await;
    assert!(
        csp.contains("frame-ancestors https://admin.example-pbx.com http://127.0.0.1:8443"),
        "{csp}"
    );
    assert_eq!(xfo, None);
    // The sign-in page stays unframeable, and a page the session may not see (another tenant
    // of the same partner, one that does not exist) tells nothing of the partner's origins.
    let (csp, _) = b.get_raw("/console/login").await;
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let _ = tenant_with_two(&server, "globex").await;
    for path in ["/console/t/globex", "/console/t/nobody"] {
        let (csp, _) = b.get_raw(path).await;
        assert!(!csp.contains("example-pbx"), "{path}: {csp}");
    }
}

/// Opens a portal link in a new browser: the browser, and the Set-Cookie it got.
pub(crate) async fn open(server: &TestServer, link: Value) -> (Browser, String) {
    let mut b = Browser::new(server);
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(link["url"].as_str().unwrap_or_default())
        .header("sec-fetch-dest", "document")
        .header("sec-fetch-user", "?1")
        .send()
        .await
        .expect("open");
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    b.cookie = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string());
    (b, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_brand_is_what_its_tenants_see_and_only_images_it_can_vouch_for_are_logos() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    let (alpha, _) = tenant_with_two(&server, "acme").await;
    for (brand, says) in [
        (json!({"accent": "blue"}), "#1f5fbf"),
        (json!({"name": ""}), "brand.name"),
        (json!({"name": "x", "logo": "y"}), "unknown field"),
    ] {
        let (st, v) = partner
            .patch("/v1/partners/p1", json!({"brand": brand}))
            .await;
        assert_eq!(st, 422, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{v}"
        );
    }
    let (st, v) = partner
        .patch(
            "/v1/partners/p1",
            json!({"brand": {"name": "Example PBX Webhooks", "accent": "#0A7D5A"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["brand"],
        json!({"name": "Example PBX Webhooks", "accent": "#0a7d5a"})
    );

    // Logos: the bytes decide, not the client's word; SVG (script) and oversize are refused.
    let put = |token: String, body: Vec<u8>| {
        let base = server.base.clone();
        async move {
            let res = reqwest::Client::new()
                .put(format!("{base}/v1/partners/p1/logo"))
                .bearer_auth(token)
                .header("content-type", "image/png")
                .body(body)
                .send()
                .await
                .expect("put");
            (
                res.status().as_u16(),
                res.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[0u8; 200]);
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    assert_eq!(put(partner.token.clone(), svg).await.0, 415);
    let mut huge = png.clone();
    huge.resize(65 * 1024, 0);
    assert_eq!(put(partner.token.clone(), huge).await.0, 413);
    let tenant = server.tenant("solo").await;
    assert_eq!(put(tenant.token.clone(), png.clone()).await.0, 404);
    let (st, v) = put(partner.token.clone(), png.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["logo_url"], "/console/brand/p1/logo");
    // Changing the brand's words keeps the logo (it is written only with the logo).
    let (_, v) = partner
        .patch(
            "/v1/partners/p1",
            json!({"brand": {"name": "Example PBX Webhooks", "accent": "#0a7d5a"}}),
        )
        .await;
    assert_eq!(v["logo_url"], "/console/brand/p1/logo", "{v}");
    let logo = reqwest::get(format!("{}/console/brand/p1/logo", server.base))
        .await
        .expect("logo");
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert_eq!(logo.headers()["x-content-type-options"], "nosniff");
    assert_eq!(logo.bytes().await.expect("bytes").to_vec(), png);

    // The tenant's console (here through a portal session) wears it; another tenant's does not.
    let (_, link) = partner
        .post(
            "/v1/tenants/acme/portal-links",
            json!({"role": "tenant_viewer", "integration_ids": [alpha]}),
        )
        .await;
    let (mut b, _) = open(&server, link).await;
    let page = b.get("/console/t/acme").await;
    assert!(page.html.contains("Example PBX Webhooks"), "{}", page.html);
    assert!(page.html.contains("--accent: #0a7d5a"));
    // (minijinja escapes `/` in attributes)
    assert!(
        page.html
            .replace("&#x2f;", "/")
            .contains("src=\"/console/brand/p1/logo\""),
        "{}",
        page.html
    );
    let mut plain = crate::console::Browser::new(&server);
    plain.sign_in(&tenant.token).await;
    let page = plain.get("/console/t/solo").await;
    assert!(!page.html.contains("Example PBX"), "{}", page.html);
    assert_eq!(
        reqwest::get(format!("{}/console/brand/solo/logo", server.base))
            .await
            .expect("get")
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_access_ends_when_the_tenant_changes_partner_or_the_token_that_made_it_is_revoked() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    let _ = partner_admin(&server, "p2").await;
    let _ = tenant_with_two(&server, "acme").await;
    let link = || async {
        partner
            .post(
                "/v1/tenants/acme/portal-links",
                json!({"role": "tenant_admin"}),
            )
            .await
            .1
    };
    // Moved to another partner: the old partner's sessions and unopened links end.
    let (mut opened, _) = open(&server, link().await).await;
    assert_eq!(opened.get("/console/t/acme").await.status, 200);
    let unopened = link().await;
    let (st, v) = server
        .admin()
        .patch("/v1/tenants/acme", json!({"partner_id": "p2"}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        opened.get("/console/t/acme").await.location,
        "/console/login"
    );
    assert_eq!(
        open(&server, unopened).await.1,
        "",
        "the link opens nothing"
    );

    // Back with p1; then p1's admin token is revoked: what it handed out ends with it.
    let (st, _) = server
        .admin()
        .patch("/v1/tenants/acme", json!({"partner_id": "p1"}))
        .await;
    assert_eq!(st, 200);
    let (mut opened, _) = open(&server, link().await).await;
    let unopened = link().await;
    assert_eq!(opened.get("/console/t/acme").await.status, 200);
    let (_, tokens) = server.admin().get("/v1/tokens").await;
    let id = tokens["items"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["partner_id"] == "p1"))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let (st, _) = server.admin().delete(&format!("/v1/tokens/{id}")).await;
    assert_eq!(st, 204);
    assert_eq!(
        opened.get("/console/t/acme").await.location,
        "/console/login"
    );
    assert_eq!(open(&server, unopened).await.1, "");
}
