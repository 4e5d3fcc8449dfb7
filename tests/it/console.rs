//! The web console over plain HTTP: sign-in, session cookie, CSRF, and that its forms go
//! through the same rules as the API. (The browser test drives the same pages in Chromium.)

use reqwest::redirect::Policy;
use serde_json::json;

use crate::support::{ChallengeReply, Receiver, TestServer};

/// A browser-like client: keeps the session cookie, does not follow redirects.
pub(crate) struct Browser {
    base: String,
    http: reqwest::Client,
    pub(crate) cookie: Option<String>,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: String,
    pub(crate) html: String,
}

impl Browser {
    pub(crate) fn new(server: &TestServer) -> Browser {
        Browser {
            base: server.base.clone(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", format!("callhook_session={c}")),
            None => req,
        };
        let res = req.send().await.expect("console request");
        if let Some(set) = res.headers().get("set-cookie") {
            let set = set.to_str().unwrap_or_default().to_string();
            let value = set
                .split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            self.cookie = (!value.is_empty()).then_some(value);
        }
        Page {
            status: res.status().as_u16(),
            location: res
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            html: res.text().await.unwrap_or_default(),
        }
    }

    /// A page's Content-Security-Policy and X-Frame-Options.
    pub(crate) async fn get_raw(&mut self, path: &str) -> (String, Option<String>) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("callhook_session={c}"));
        }
        let res = req.send().await.expect("console request");
        let h = |n: &str| {
            res.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        (
            h("content-security-policy").unwrap_or_default(),
            h("x-frame-options"),
        )
    }

    /// A navigation a person makes with a click, as a browser says it does (`Sec-Fetch-*`).
    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("sec-fetch-dest", "document")
            .header("sec-fetch-user", "?1");
        self.send(req).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    pub(crate) async fn sign_in(&mut self, token: &str) -> Page {
        self.post("/console/login", &[("token", token)]).await
    }
}

pub(crate) fn csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_session_and_refuses_bad_tokens() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let mut b = Browser::new(&server);

    let page = b.get("/console/t/acme").await;
    assert_eq!(
        (page.status, page.location.as_str()),
        (303, "/console/login")
    );

    let page = b.sign_in("chk_not_a_token").await;
    assert_eq!(page.status, 401);
    assert!(
        page.html.contains("that token is not valid"),
        "{}",
        page.html
    );
    assert!(b.cookie.is_none());

    let res = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/console/login", server.base))
        .form(&[("token", tenant.token.as_str())])
        .send()
        .await
        .expect("login");
    let set = res.headers()["set-cookie"].to_str().unwrap_or_default();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(attr), "cookie lacks {attr}: {set}");
    }
    assert!(
        !set.contains(&tenant.token),
        "the token must be sealed, not stored in clear"
    );

    let page = b.sign_in(&tenant.token).await;
    assert_eq!(page.status, 303);
    let page = b.get("/console").await;
    assert_eq!(page.location, "/console/t/acme");
    let page = b.get("/console/t/acme").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("Integrations of tenant acme"));
    assert!(page.html.contains("tenant_admin of tenant acme"));

    // Another tenant's pages do not exist for this session.
    server.tenant("other").await;
    let page = b.get("/console/t/other").await;
    assert_eq!(page.status, 404);

    // Signing out ends the session.
    let token = csrf(&b.get("/console/t/acme").await.html);
    let page = b.post("/console/logout", &[("csrf", token.as_str())]).await;
    assert_eq!(page.location, "/console/login");
    let page = b.get("/console/t/acme").await;
    assert_eq!(page.status, 303);
    server.stop().await;
}

#[tokio::test]
async fn forms_need_the_session_csrf_token_and_the_same_origin() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let receiver = Receiver::start().await;
    let i = tenant
        .integration(
            "acme",
            json!({"name": "crm", "url": receiver.url, "event_types": ["call.completed"]}),
        )
        .await;
    let iid = i["id"].as_str().unwrap_or_default().to_string();
    let mut b = Browser::new(&server);
    b.sign_in(&tenant.token).await;
    let path = format!("/console/t/acme/integrations/{iid}/disable");

    let page = b.post(&path, &[("csrf", "forged")]).await;
    assert_eq!(page.status, 403);
    assert!(page.html.contains("reload the page"), "{}", page.html);

    let page = b.get(&format!("/console/t/acme/integrations/{iid}")).await;
    let token = csrf(&page.html);
    let cross = b
        .http
        .post(format!("{}{path}", b.base))
        .header("origin", "https://evil.example")
        .form(&[("csrf", token.as_str())]);
    let page = b.send(cross).await;
    assert_eq!(page.status, 403);
    let (_, now) = tenant
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(now["status"], "active", "refused forms change nothing");

    let page = b
        .post(
            &path,
            &[("csrf", token.as_str()), ("reason", "maintenance")],
        )
        .await;
    assert_eq!(page.status, 303);
    let (_, now) = tenant
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(now["status"], "disabled");
    assert_eq!(
        now["disabled_reason"],
        "disabled by an administrator: maintenance"
    );
    let list = b.get("/console/t/acme").await;
    assert!(
        list.html
            .contains("is disabled: disabled by an administrator: maintenance"),
        "the list says what needs attention: {}",
        list.html
    );
    server.stop().await;
}

#[tokio::test]
async fn creating_shows_the_challenge_error_and_saves_nothing_until_it_passes() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.challenge(ChallengeReply::Wrong);
    let mut b = Browser::new(&server);
    b.sign_in(&tenant.token).await;
    let form_page = b.get("/console/t/acme/integrations/new").await;
    assert_eq!(form_page.status, 200);
    let token = csrf(&form_page.html);
    let form = [
        ("csrf", token.as_str()),
        ("name", "CRM <main>"),
        ("url", receiver.url.as_str()),
        ("method", "POST"),
        ("format", "json"),
        ("verification", "challenge"),
        ("profile", "cdr"),
        ("event_types", "call.completed"),
        ("event_types", "call.unanswered"),
        ("headers", "X-Team: support"),
        ("privacy_remote_number", "mask"),
        ("privacy_remote_number_digits", "4"),
        ("retry_policy", "exponential"),
        ("delivery_mode", "realtime"),
    ];
    let page = b.post("/console/t/acme/integrations/new", &form).await;
    assert_eq!(page.status, 422);
    assert!(page.html.contains("challenge"), "{}", page.html);
    assert!(
        page.html.contains("value=\"CRM &lt;main&gt;\""),
        "the form comes back as typed, escaped"
    );
    let (_, list) = tenant.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"], json!([]));

    receiver.challenge(ChallengeReply::Echo);
    let page = b.post("/console/t/acme/integrations/new", &form).await;
    assert_eq!(page.status, 201, "{}", page.html);
    assert!(
        page.html.contains("whsec_"),
        "the signing secret is shown once"
    );
    let (_, list) = tenant.get("/v1/tenants/acme/integrations").await;
    let created = &list["items"][0];
    assert_eq!(created["name"], "CRM <main>");
    assert_eq!(created["profile"], "cdr");
    // Header values are write-only: the API shows a hint (nothing of a short value).
    assert_eq!(created["headers"], json!({"X-Team": "…"}));
    assert_eq!(
        created["privacy"],
        json!({"remote_number": {"action": "mask", "digits": 4}})
    );
    assert_eq!(created["delivery"]["retry"]["policy"], "exponential");

    // Saving the edit form untouched changes no setting.
    let iid = created["id"].as_str().unwrap_or_default().to_string();
    let edit = b
        .get(&format!("/console/t/acme/integrations/{iid}/edit"))
        .await;
    assert_eq!(edit.status, 200);
    assert!(edit.html.contains("X-Team: …"), "the form shows the hint");
    assert!(!edit.html.contains("support"), "never the value");
    let resubmit = form_fields(&edit.html);
    let pairs: Vec<(&str, &str)> = resubmit
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page = b
        .post(&format!("/console/t/acme/integrations/{iid}/edit"), &pairs)
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    let (_, after) = tenant
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    let strip = |mut v: serde_json::Value| {
        v.as_object_mut().map(|m| m.remove("updated_at"));
        v
    };
    assert_eq!(strip(after), strip(created.clone()));
    server.stop().await;
}

/// The fields a browser would submit from the form as rendered (inputs with their values,
/// selected options, checked boxes, textareas).
pub(crate) fn form_fields(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let start = tag.find(&key)? + key.len();
        Some(tag[start..].split('"').next()?.to_string())
    };
    let unescape = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&#x2f;", "/")
            .replace("&amp;", "&")
    };
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(pos) = rest.find('<') {
        rest = &rest[pos + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        if tag.starts_with("input") {
            let (Some(name), kind) = (attr(tag, "name"), attr(tag, "type").unwrap_or_default())
            else {
                continue;
            };
            if kind == "checkbox" && !tag.contains(" checked") {
                continue;
            }
            if kind == "password" {
                continue;
            }
            out.push((name, unescape(&attr(tag, "value").unwrap_or_default())));
        } else if tag.starts_with("textarea") {
            let name = attr(tag, "name").unwrap_or_default();
            let body = &rest[end + 1..];
            let text = body.split("</textarea>").next().unwrap_or_default();
            out.push((name, unescape(text)));
        } else if tag.starts_with("select") {
            let name = attr(tag, "name").unwrap_or_default();
            let body = rest[end + 1..]
                .split("</select>")
                .next()
                .unwrap_or_default();
            let chosen = body
                .split("<option")
                .skip(1)
                .find(|o| o.contains(" selected"))
                .or_else(|| body.split("<option").nth(1))
                .and_then(|o| attr(o, "value"))
                .unwrap_or_default();
            out.push((name, unescape(&chosen)));
        }
    }
    out
}

#[tokio::test]
async fn viewers_see_but_cannot_change() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let receiver = Receiver::start().await;
    let i = tenant
        .integration(
            "acme",
            json!({"name": "crm", "url": receiver.url, "event_types": ["call.completed"]}),
        )
        .await;
    let iid = i["id"].as_str().unwrap_or_default().to_string();
    let (_, viewer) = server
        .admin()
        .post(
            "/v1/tokens",
            json!({"role": "tenant_viewer", "tenant_id": "acme", "name": "v"}),
        )
        .await;
    let mut b = Browser::new(&server);
    b.sign_in(viewer["token"].as_str().unwrap_or_default())
        .await;
    let page = b.get(&format!("/console/t/acme/integrations/{iid}")).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.html.contains("id=\"edit\""),
        "no edit action for viewers"
    );
    // Seed 002's trigger id: the GUID form `cdr` payloads carry, and which names the page too.
    let guid = i["trigger_id"].as_str().unwrap_or_default();
    assert!(
        page.html
            .contains(&format!("<dd id=\"trigger-id\">{guid}</dd>")),
        "the trigger id is shown"
    );
    let by_guid = b.get(&format!("/console/t/acme/integrations/{guid}")).await;
    assert_eq!(by_guid.status, 200);
    let token = csrf(&page.html);
    let page = b
        .post(
            &format!("/console/t/acme/integrations/{iid}/delete"),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(page.status, 403);
    let (st, _) = tenant
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(st, 200, "still there");
    server.stop().await;
}

#[tokio::test]
async fn a_partner_admin_sets_up_its_batch_feed_from_the_console() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin
        .post("/v1/partners", json!({"id": "resell", "name": "Reseller"}))
        .await;
    let (_, token) = admin
        .post(
            "/v1/tokens",
            json!({"role": "partner_admin", "partner_id": "resell", "name": "p"}),
        )
        .await;
    let receiver = Receiver::start().await;
    let mut b = Browser::new(&server);
    b.sign_in(token["token"].as_str().unwrap_or_default()).await;
    assert_eq!(b.get("/console").await.location, "/console/p/resell");
    let form = b.get("/console/p/resell/integrations/new").await;
    assert!(
        form.html.contains("name=\"feed\""),
        "partners choose a feed"
    );
    // The form comes with the feed's defaults: Webex records signed the Webex way, batch mode
    // every 300 s after 300 s.
    let mut fields = form_fields(&form.html);
    for (k, v) in fields.iter_mut() {
        match k.as_str() {
            "name" => *v = "Analytics feed".into(),
            "url" => *v = receiver.url.clone(),
            "feed" => *v = "billing".into(),
            _ => {}
        }
    }
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page = b.post("/console/p/resell/integrations/new", &pairs).await;
    assert_eq!(page.status, 201, "{}", page.html);
    let (_, list) = admin.get("/v1/partners/resell/integrations").await;
    let feed = &list["items"][0];
    assert_eq!(feed["feed"], "billing");
    assert_eq!(feed["profile"], "webex-cdr");
    assert_eq!(feed["secret_use"], "webex-signature");
    assert_eq!(feed["delivery"]["mode"], "batch");
    assert_eq!(feed["delivery"]["interval_s"], json!(300));
    // Its reconciliation page is there too.
    let recon = b.get("/console/p/resell/reconciliation").await;
    assert_eq!(recon.status, 200);
    assert!(recon.html.contains("Reconciliation counts"));
    // A tenant's page is not a partner admin's business unless the tenant is its own.
    server.tenant("elsewhere").await;
    assert_eq!(b.get("/console/t/elsewhere").await.status, 404);
    server.stop().await;
}
