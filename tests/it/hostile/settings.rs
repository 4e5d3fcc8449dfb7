//! Bad settings and bad data are refused with a clear error, never silently taken.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_values_are_write_only_like_the_secret() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let viewer = server.api(&super::token(&server, "tenant_viewer", "acme").await);
    let rx = Receiver::start().await;
    let key = "k3y-0123456789-abcdef";
    let i = acme
        .integration(
            "acme",
            json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"],
                   "headers": {"X-Api-Key": key, "X-Team": "ops"}}),
        )
        .await;
    let iid = i["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/tenants/acme/integrations/{iid}");
    for (who, api) in [("admin", &acme), ("viewer", &viewer)] {
        let (_, got) = api.get(&path).await;
        assert_eq!(
            got["headers"],
            json!({"X-Api-Key": "…cdef", "X-Team": "…"}),
            "{who}"
        );
        assert!(!got.to_string().contains(key), "{who}");
    }
    // The settings read back and sent whole keep the values their hints stand for.
    let (_, got) = acme.get(&path).await;
    let (st, v) = acme
        .patch(&path, json!({"headers": got["headers"], "name": "crm 2"}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = server
        .ingest(event("e1", "acme", "ivr.input", "c1", json!({"dtmf": "1"})))
        .await;
    assert_eq!(st, 202);
    let got = rx.next(10).await;
    assert_eq!(
        (
            got.header("x-api-key").as_str(),
            got.header("x-team").as_str()
        ),
        (key, "ops")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_in_translated_and_reserved_ranges_are_refused() {
    let server = TestServer::start_with(|c| c.allow_private_destinations = false).await;
    let acme = server.tenant("acme").await;
    for host in [
        "[::ffff:0:7f00:1]",
        "[::ffff:0:a00:1]",
        "[64:ff9b:1::a00:1]",
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
        "[100::1]",
        "[2001:10::1]",
        "192.0.2.10",
        "198.51.100.7",
        "203.0.113.200",
    ] {
        let (st, v) = acme
            .post(
                "/v1/tenants/acme/integrations",
                json!({"name": "n", "url": format!("https://{host}/hook"), "event_types": ["ivr.input"]}),
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_url")),
            "{host}: {v}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_are_stored_parsed_and_control_characters_port_0_and_huge_urls_are_refused() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let spec = |url: String| json!({"name": "n", "url": url, "event_types": ["ivr.input"]});
    for url in [
        format!("{}/a\r\nX-Injected: 1", rx.url),
        format!("{}/a\u{0}b", rx.url),
        format!("{}/a b", rx.url),
        "https://crm.example.com:0/hook".to_string(),
        format!("{}/{}", rx.url, "a".repeat(3000)),
    ] {
        let (st, v) = acme
            .post("/v1/tenants/acme/integrations", spec(url.clone()))
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_url")),
            "{url:?}: {v}"
        );
    }
    let shouted = format!("{}/./sub/..", rx.url.replacen("http://", "HTTP://", 1));
    let i = acme.integration("acme", spec(shouted)).await;
    assert_eq!(i["url"], format!("{}/", rx.url), "{i}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_meaning_changing_and_non_ascii_headers_are_refused() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let rx = Receiver::start().await;
    for (name, value) in [
        ("Upgrade", "websocket"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-Sum"),
        ("Expect", "100-continue"),
        ("Content-Encoding", "gzip"),
        ("Proxy-Authorization", "Basic eDp5"),
        ("Cookie", "session=1"),
        ("X-Name", "Zoë"),
    ] {
        let (st, v) = acme
            .post(
                "/v1/tenants/acme/integrations",
                json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"],
                       "headers": {name: value}}),
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_setting")),
            "{name}: {v}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_is_refused_not_silently_accepted() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let base = || json!({"name": "n", "url": rx.url, "event_types": ["call.completed"]});
    let with = |k: &str, v: Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    for (what, spec) in [
        ("options as a list", with("options", json!([]))),
        ("delivery as a list", with("delivery", json!([]))),
        (
            "a number field compared with text",
            with(
                "filters",
                json!({"conditions": [{"field": "talk_ms", "op": "gt", "value": "ten"}]}),
            ),
        ),
        (
            "an empty path part",
            with(
                "filters",
                json!({"conditions": [{"field": "tags.", "op": "exists"}]}),
            ),
        ),
        (
            "a name with a line break",
            with("name", json!("CRM\r\nsync")),
        ),
        ("a name with NUL", with("name", json!("CRM\u{0}"))),
    ] {
        let (st, v) = acme.post("/v1/tenants/acme/integrations", spec).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_setting")),
            "{what}: {v}"
        );
    }
    let (st, _) = server
        .admin()
        .post("/v1/tenants", json!({"id": "t2", "name": "a\nb"}))
        .await;
    assert_eq!(st, 422, "tenant name with a line break");

    for (what, body) in [
        (
            "talk_ms 2^63",
            event(
                "e1",
                "acme",
                "call.completed",
                "c1",
                json!({"talk_ms": 9223372036854775808u64}),
            ),
        ),
        ("year 0", {
            let mut e = event("e2", "acme", "ivr.input", "c2", json!({"dtmf": "1"}));
            e["occurred_at"] = json!("0000-01-01T00:00:00Z");
            e
        }),
        ("an event and a batch at once", {
            let mut e = event("e3", "acme", "ivr.input", "c3", json!({"dtmf": "1"}));
            e["events"] = json!([event("e4", "acme", "ivr.input", "c4", json!({"dtmf": "1"}))]);
            e
        }),
    ] {
        let (st, v) = server.ingest(body).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (400, Some("invalid_event")),
            "{what}: {v}"
        );
    }

    let i = acme.integration("acme", base()).await;
    let path = format!(
        "/v1/tenants/acme/integrations/{}",
        i["id"].as_str().unwrap_or_default()
    );
    for (action, body) in [
        ("disable", json!({"reson": "typo"})),
        ("test", json!({"event": "x"})),
    ] {
        let (st, v) = acme.post(&format!("{path}/{action}"), body).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_request")),
            "{action}: {v}"
        );
    }
    let (_, after) = acme.get(&path).await;
    assert_eq!(
        after["status"], "active",
        "a refused disable changed nothing"
    );
    let (st, v) = acme.get(&format!("{path}/deliveries?cursor=!!!")).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_cursor")),
        "{v}"
    );

    let (st, _) = server
        .admin()
        .post("/v1/partners", json!({"id": "p1", "name": "p"}))
        .await;
    assert_eq!(st, 201);
    let (st, v) = server
        .admin()
        .post(
            "/v1/tokens",
            json!({"role": "partner_admin", "partner_id": "p1", "tenant_id": "acme", "name": "x"}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_token_request")),
        "{v}"
    );
    server.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_at_rest_is_readable_by_the_service_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    server.tenant("acme").await;
    let ingest = super::ingest_token(&server, "acme").await;
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/recordings/f1", server.base))
        .bearer_auth(&ingest)
        .body(vec![1u8; 10])
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 201);
    let dir = server.data_dir();
    let mode = |p: std::path::PathBuf| {
        std::fs::metadata(&p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    assert_eq!(mode(dir.clone()), 0o700);
    assert_eq!(mode(dir.join("recordings/acme")), 0o700);
    assert_eq!(mode(dir.join("recordings/acme/f1")), 0o600);
    if std::env::var("CALLHOOK_TEST_BACKEND").as_deref() != Ok("postgres") {
        assert_eq!(mode(dir.join("callhook.db")), 0o600);
    }
    server.stop().await;
}
