//! The console in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver) against the real server on 127.0.0.1.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/install-test-deps` installs
//! them; `CALLHOOK_CHROMIUM` / `CALLHOOK_CHROMEDRIVER` point elsewhere). Each console page is
//! saved as a PNG under `target/console-screenshots/`.

#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

#[path = "common/process_group.rs"]
mod process_group;

#[path = "common/browser.rs"]
mod chromium;

use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::json;

use chromium::*;
use support::{event, ChallengeReply, Receiver, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let refusing = Receiver::start().await;
    refusing.challenge(ChallengeReply::Wrong);
    let receiver = Receiver::start().await;
    let driver = start_driver().await;
    let c = browser(&driver).await;
    let base = server.base.clone();

    // Sign in.
    c.goto(&format!("{base}/console")).await.expect("goto");
    assert!(c
        .current_url()
        .await
        .expect("url")
        .path()
        .ends_with("/console/login"));
    shot(&c, "01-sign-in").await;
    fill(&c, "token", &tenant.token).await;
    click(&c, "sign-in").await;
    assert!(text_of(&c, "h1")
        .await
        .contains("Integrations of tenant acme"));
    shot(&c, "02-integrations-empty").await;

    // Create an integration whose challenge fails, and see why.
    click(&c, "new-integration").await;
    fill(&c, "name", "CRM").await;
    fill(&c, "url", &refusing.url).await;
    c.find(Locator::Id("profile"))
        .await
        .expect("profile")
        .select_by_value("cdr")
        .await
        .expect("select");
    fill(&c, "headers", "X-Team: support").await;
    shot(&c, "03-new-integration").await;
    click(&c, "save").await;
    let error = text_of(&c, "#error").await;
    assert!(
        error.contains("challenge"),
        "challenge error shown: {error}"
    );
    shot(&c, "04-challenge-failed").await;

    // Fix the URL; the form kept everything else.
    assert_eq!(
        c.find(Locator::Id("headers"))
            .await
            .expect("headers")
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some("X-Team: support")
    );
    fill(&c, "url", &receiver.url).await;
    click(&c, "save").await;
    let secret = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("shown-secret"))
        .await
        .expect("the signing secret")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(secret.starts_with("whsec_"), "{secret}");
    shot(&c, "05-created").await;
    click(&c, "continue").await;
    let integration_url = c.current_url().await.expect("url").to_string();
    assert_eq!(text_of(&c, "#integration-status").await, "active");

    // A call ends; its delivery shows in the log.
    let (st, _) = server
        .ingest(event(
            "ev-browser-1",
            "acme",
            "call.completed",
            "call-1",
            json!({"answered": true, "direction": "inbound", "talk_ms": 42000,
                       "caller": {"number": "+441610000002"},
                       "callee": {"number": "+441610000001"}}),
        ))
        .await;
    assert_eq!(st, 202);
    let first = receiver.next(10).await;
    assert_eq!(first.header("x-team"), "support");
    reload_until(&c, &integration_url, "#delivery-log tbody", "succeeded").await;
    shot(&c, "06-integration-and-log").await;

    // Open the delivery, then redeliver it.
    follow(&c, Locator::Css("#delivery-log tbody a")).await;
    assert_eq!(text_of(&c, "#delivery-status").await, "succeeded");
    let delivery_url = c.current_url().await.expect("url").to_string();
    shot(&c, "07-delivery").await;
    click(&c, "redeliver").await;
    let again = receiver.next(10).await;
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
    reload_until(&c, &delivery_url, "#attempt-2", "Attempt 2").await;
    let request = text_of(&c, "details[open] .request-head").await;
    for line in ["webhook-signature: v1,", "X-Team: …", "callhook-attempt: 2"] {
        assert!(
            request.contains(line),
            "request view lacks `{line}`: {request}"
        );
    }
    // Custom header values are write-only, here too (the receiver got the value, above).
    assert!(!request.contains("support"), "{request}");
    shot(&c, "08-redelivered").await;

    // The other actions: test send, rotate, disable, re-enable, edit, delete.
    c.goto(&integration_url).await.expect("goto");
    click(&c, "test-send").await;
    assert_eq!(text_of(&c, "h1").await, "Test event delivered");
    shot(&c, "09-test-send").await;
    c.goto(&integration_url).await.expect("goto");
    click(&c, "rotate").await;
    assert!(text_of(&c, "h1").await.contains("rotated"));
    shot(&c, "10-rotated").await;
    c.goto(&integration_url).await.expect("goto");
    click(&c, "disable").await;
    assert_eq!(text_of(&c, "#integration-status").await, "disabled");
    shot(&c, "11-disabled").await;
    click(&c, "enable").await;
    assert_eq!(text_of(&c, "#integration-status").await, "active");
    click(&c, "edit").await;
    shot(&c, "12-edit").await;
    fill(&c, "name", "CRM (main)").await;
    click(&c, "save").await;
    assert!(text_of(&c, "h1").await.contains("CRM (main)"));
    c.set_window_size(390, 844).await.expect("phone size");
    c.goto(&format!("{base}/console/t/acme"))
        .await
        .expect("goto");
    shot(&c, "13-integrations-phone").await;
    // The integration's charts on a phone: drawn, within the screen, saying what they show.
    c.goto(&integration_url).await.expect("goto");
    let width = c
        .execute(
            "const r = document.getElementById('chart-deliveries').getBoundingClientRect(); \
             return [r.width, document.documentElement.clientWidth];",
            vec![],
        )
        .await
        .expect("chart size");
    let (chart, screen) = (
        width[0].as_f64().unwrap_or(0.0),
        width[1].as_f64().unwrap_or(0.0),
    );
    assert!(
        chart > 200.0 && chart <= screen,
        "chart {chart} px on a {screen} px screen"
    );
    let title = c
        .execute(
            "return document.querySelector('#chart-deliveries title').textContent",
            vec![],
        )
        .await
        .expect("chart title");
    assert!(
        title.as_str().unwrap_or_default().contains("2 succeeded"),
        "{title}"
    );
    c.execute(
        "document.getElementById('chart-deliveries').scrollIntoView()",
        vec![],
    )
    .await
    .expect("scroll");
    shot(&c, "13b-integration-charts-phone").await;
    // The disable above is among the tenant's notifications.
    reload_until(
        &c,
        &format!("{base}/console/t/acme/notifications"),
        "#notifications tbody",
        "integration.disabled",
    )
    .await;
    shot(&c, "13c-notifications-phone").await;
    c.set_window_size(1280, 1000).await.expect("desktop size");
    c.goto(&integration_url).await.expect("goto");
    click(&c, "delete").await;
    shot(&c, "14-confirm-delete").await;
    click(&c, "confirm-delete").await;
    assert!(text_of(&c, "main").await.contains("No integrations yet"));

    c.close().await.expect("close the session");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_reconciliation_in_headless_chromium() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (st, _) = admin
        .post("/v1/partners", json!({"id": "resell", "name": "Reseller"}))
        .await;
    assert_eq!(st, 201);
    let (st, token) = admin
        .post(
            "/v1/tokens",
            json!({"role": "partner_admin", "partner_id": "resell", "name": "p"}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = admin
        .post(
            "/v1/tenants",
            json!({"id": "shop-1", "name": "Shop", "partner_id": "resell"}),
        )
        .await;
    assert_eq!(st, 201);
    // Two hours ago, on the hour: the whole hour lies inside the 48 h – 5 min window.
    let hour = chrono::Utc::now() - chrono::Duration::hours(2);
    let value = hour.format("%Y-%m-%dT%H:00").to_string();
    let ended = format!("{value}:00.000Z").replace(":00:00.000Z", ":10:00.000Z");
    let (st, _) = admin
        .post(
            "/v1/events",
            event(
                "ev-recon-1",
                "shop-1",
                "call.completed",
                "recon-1",
                json!({"answered": true, "direction": "inbound", "scope": "external",
                       "started_at": ended, "ended_at": ended,
                       "caller": {"number": "+441610000001"}}),
            ),
        )
        .await;
    assert_eq!(st, 202);
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(&format!("{}/console/login", server.base))
        .await
        .expect("goto");
    fill(&c, "token", token["token"].as_str().unwrap_or_default()).await;
    click(&c, "sign-in").await;
    assert!(text_of(&c, "h1").await.contains("partner resell"));
    c.goto(&format!("{}/console/p/resell/reconciliation", server.base))
        .await
        .expect("goto");
    // datetime-local inputs take keyboard input per field; set the value directly instead.
    c.execute(
        "document.getElementById('hour').value = arguments[0];",
        vec![json!(value)],
    )
    .await
    .expect("set hour");
    follow(&c, Locator::Css("form.filters button")).await;
    let counts = text_of(&c, "#counts").await;
    assert!(
        counts.contains("shop-1\t1") || counts.contains("shop-1 1"),
        "{counts}"
    );
    shot(&c, "15-reconciliation").await;
    c.close().await.expect("close the session");
    server.stop().await;
}

/// Runs `js` in the current frame and waits for the page it leads to.
async fn frame_navigate(c: &Client, js: &str) {
    c.execute(
        "document.documentElement.setAttribute('data-left', '1')",
        vec![],
    )
    .await
    .expect("mark the page");
    c.execute(js, vec![]).await.expect("navigate");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("html:not([data-left])"))
        .await
        .expect("the next page loads");
}

/// The platform's own admin page, on another site than the console, embedding it in an iframe;
/// the customer signs in with a portal link, creates an integration and sees its delivery, all
/// inside the frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_embedded_in_a_platforms_page_through_a_portal_link() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (st, _) = admin
        .post("/v1/partners", json!({"id": "pbx", "name": "Example PBX"}))
        .await;
    assert_eq!(st, 201);
    let (st, _) = admin
        .post(
            "/v1/tenants",
            json!({"id": "acme", "name": "Acme", "partner_id": "pbx"}),
        )
        .await;
    assert_eq!(st, 201);
    let receiver = Receiver::start().await;

    // The platform's page: 127.0.0.1 on a port of its own; the console is framed as
    // http://localhost:<port>, another site.
    let page = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let platform = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let served = page.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let html = served.lock().clone();
                async move { axum::response::Html(html) }
            }),
        );
        let _ = axum::serve(listener, app).await;
    });
    let (st, v) = admin
        .patch(
            "/v1/partners/pbx",
            json!({"frame_ancestors": [platform],
                   "brand": {"name": "Example PBX Webhooks", "accent": "#0a7d5a"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, link) = admin
        .post(
            "/v1/tenants/acme/portal-links",
            json!({"role": "tenant_admin", "ttl_s": 300}),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let url = link["url"]
        .as_str()
        .unwrap_or_default()
        .replace("127.0.0.1", "localhost");
    *page.lock() = format!(
        "<!doctype html><title>Example PBX admin</title><h1>Example PBX — webhooks</h1>\
         <iframe id=\"portal\" src=\"{url}\" style=\"width:1200px;height:850px;border:1px solid #888\"></iframe>"
    );

    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(&format!("{platform}/")).await.expect("goto");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("portal"))
        .await
        .expect("the frame")
        .enter_frame()
        .await
        .expect("into the frame");
    assert!(text_of(&c, "h1")
        .await
        .contains("Integrations of tenant acme"));
    assert_eq!(text_of(&c, "#brand").await, "Example PBX Webhooks");
    shot(&c, "20-embedded-signed-in").await;

    click(&c, "new-integration").await;
    fill(&c, "name", "CRM").await;
    fill(&c, "url", &receiver.url).await;
    click(&c, "save").await;
    let secret = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("shown-secret"))
        .await
        .expect("the signing secret, inside the frame")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(secret.starts_with("whsec_"), "{secret}");
    shot(&c, "21-embedded-created").await;
    click(&c, "continue").await;
    assert_eq!(text_of(&c, "#integration-status").await, "active");

    let (st, _) = server
        .ingest(event(
            "ev-embedded-1",
            "acme",
            "call.completed",
            "call-emb-1",
            json!({"answered": true, "direction": "inbound", "talk_ms": 1000,
                   "caller": {"number": "+441610000002"}}),
        ))
        .await;
    assert_eq!(st, 202);
    receiver.next(10).await;
    let mut seen = false;
    for _ in 0..50 {
        frame_navigate(&c, "location.reload()").await;
        if let Ok(e) = c.find(Locator::Css("#delivery-log tbody")).await {
            if e.text().await.unwrap_or_default().contains("succeeded") {
                seen = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the delivery shows in the frame");
    c.enter_parent_frame()
        .await
        .expect("back to the platform's page");
    assert_eq!(text_of(&c, "h1").await, "Example PBX — webhooks");
    c.execute("window.scrollTo(0, 0)", vec![])
        .await
        .expect("scroll");
    shot(&c, "22-embedded-delivery").await;
    c.close().await.expect("close the session");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_is_written_with_a_live_preview_in_headless_chromium() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let receiver = Receiver::start().await;
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(&format!("{}/console/login", server.base))
        .await
        .expect("goto");
    fill(&c, "token", &tenant.token).await;
    click(&c, "sign-in").await;
    click(&c, "new-integration").await;
    fill(&c, "name", "HubSpot").await;
    fill(&c, "url", &receiver.url).await;
    // The template box appears with the profile, filled with a starter that previews at once.
    c.find(Locator::Id("profile"))
        .await
        .expect("profile")
        .select_by_value("template")
        .await
        .expect("select");
    wait_for_text(&c, "#template-preview", "\"call_id\": \"session-2\"").await;
    // A mistake shows where it is as it is typed.
    fill(
        &c,
        "template",
        r#"{"from": "{{ data.caller.number | shout }}"}"#,
    )
    .await;
    let error = wait_for_text(&c, "#template-preview.failed", "no filter `shout`").await;
    assert!(error.contains("line 1, column 35"), "{error}");
    show(&c, "template-box").await;
    shot(&c, "16-template-error").await;
    // Fixed, it shows the body; a privacy rule changes the preview (the example call is
    // outbound: its caller is the local party).
    fill(
        &c,
        "template",
        r#"{"properties": {"from": "{{ data.caller.number }}", "secs": "{{ data.talk_ms | div(1000) | round }}"}}"#,
    )
    .await;
    wait_for_text(&c, "#template-preview", "\"from\": \"+441610000001\"").await;
    c.find(Locator::Id("privacy_local_number"))
        .await
        .expect("privacy")
        .select_by_value("remove")
        .await
        .expect("select");
    let shown = wait_for_text(&c, "#template-preview", "\"from\": null").await;
    assert!(shown.contains("\"secs\": 121"), "{shown}");
    show(&c, "template-box").await;
    shot(&c, "17-template-preview").await;
    c.find(Locator::Id("privacy_local_number"))
        .await
        .expect("privacy")
        .select_by_value("keep")
        .await
        .expect("select");
    click(&c, "save").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("shown-secret"))
        .await
        .expect("created");
    // A real call is delivered in the template's shape.
    let (st, _) = server
        .ingest(event(
            "ev-template-1",
            "acme",
            "call.completed",
            "call-t1",
            json!({"answered": true, "direction": "inbound", "talk_ms": 42000,
                   "caller": {"number": "+441610000002"}}),
        ))
        .await;
    assert_eq!(st, 202);
    let got = receiver.next(10).await;
    assert_eq!(
        got.json(),
        json!({"properties": {"from": "+441610000002", "secs": 42}})
    );
    c.close().await.expect("close the session");
    server.stop().await;
}
