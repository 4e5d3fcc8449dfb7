use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_with_the_right_status() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 64 * 1024).await;
    server.tenant("acme").await;
    let admin = server.admin();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/events", server.base);

    let resp = http.post(&url).json(&json!({})).send().await.expect("send");
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(&url)
        .bearer_auth("nope")
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "unauthorized");

    let resp = http
        .post(&url)
        .bearer_auth(ADMIN)
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "malformed_json");

    let resp = http
        .post(&url)
        .bearer_auth(ADMIN)
        .body(vec![b' '; 128 * 1024])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 413);
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "payload_too_large");

    let (st, v) = admin
        .post(
            "/v1/events",
            json!({"events": [
        event("ok", "acme", "ivr.input", "c", json!({"dtmf": "1"})),
        event("bad", "acme", "call.state", "c", json!({"seq": 1, "state": "ringing"}))]}),
        )
        .await;
    assert_eq!(st, 400);
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("events[1]") && msg.contains("ringing"),
        "{msg}"
    );
    let (st, v) = admin
        .post(
            "/v1/events",
            event("x", "nobody", "ivr.input", "c", json!({"dtmf": "1"})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("unknown_tenant"))
    );
    // Neither request stored anything: the valid event of the refused batch is still new.
    let (st, v) = admin
        .post(
            "/v1/events",
            event("ok", "acme", "ivr.input", "c", json!({"dtmf": "1"})),
        )
        .await;
    assert_eq!((st, v["accepted"].as_u64()), (202, Some(1)));

    assert_eq!(admin.get("/v1/nowhere").await.0, 404);
    let (st, v) = admin
        .post("/v1/tokens", json!({"role": "king", "name": "x"}))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_token_request"))
    );
    let (st, _) = admin
        .post("/v1/tenants", json!({"id": "bad id!", "name": "x"}))
        .await;
    assert_eq!(st, 422);
    assert_eq!(
        admin
            .post("/v1/tenants", json!({"id": "acme", "name": "again"}))
            .await
            .0,
        409
    );
    let (st, _) = admin.get("/healthz").await;
    assert_eq!(st, 200);
    assert_eq!(admin.get("/readyz").await.0, 200);
    server.stop().await;
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_ingest_attempts_latency_and_integrations_by_status() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let a = api
        .integration(
            "acme",
            json!({"name": "a", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    let b = api
        .integration(
            "acme",
            json!({"name": "b", "url": rx.url, "event_types": ["analysis.completed"]}),
        )
        .await;
    let bid = b["id"].as_str().unwrap_or_default();
    api.post(
        &format!("/v1/tenants/acme/integrations/{bid}/disable"),
        json!({}),
    )
    .await;
    server
        .ingest(event("m1", "acme", "ivr.input", "c", json!({"dtmf": "1"})))
        .await;
    rx.next(10).await;
    api.wait_for_deliveries("acme", a["id"].as_str().unwrap_or_default(), "succeeded", 1)
        .await;
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    assert_eq!(
        metric(&text, "callhook_integrations{status=\"active\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "callhook_integrations{status=\"disabled\"}"),
        1.0
    );
    assert!(metric(&text, "callhook_events_ingested_total{type=\"ivr.input\"}") >= 1.0);
    assert!(
        metric(
            &text,
            "callhook_attempts_total{outcome=\"succeeded\",error_class=\"none\"}"
        ) >= 1.0
    );
    assert!(metric(&text, "callhook_end_to_end_seconds_count") >= 1.0);
    assert!(
        metric(
            &text,
            "callhook_attempt_duration_seconds_bucket{le=\"+Inf\"}"
        ) >= 1.0
    );
    assert_eq!(metric(&text, "callhook_deliveries_pending"), 0.0);
    server.stop().await;
}

/// The OpenAPI document says `tls` and `custom_data` may be null; the server once answered 422
/// "must be an object" to exactly that (schemathesis found it). And an empty redelivery range
/// (`since` = `until`) is nothing to do, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_schema_allows_the_server_takes_null_optional_settings_and_an_empty_range() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "n", "url": rx.url, "event_types": ["call.completed"],
                   "tls": null, "custom_data": null}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert!(v.get("tls").is_none_or(serde_json::Value::is_null), "{v}");
    let iid = v["id"].as_str().unwrap_or_default();
    let (st, v) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/redeliver"),
            json!({"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((st, v["queued"].as_u64()), (202, Some(0)), "{v}");
    let (st, _) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/redeliver"),
            json!({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(st, 400);
    // Null stays refused where the setting is not optional.
    let (st, _) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "n", "url": rx.url, "event_types": ["call.completed"], "filters": null}),
        )
        .await;
    assert_eq!(st, 422);
    server.stop().await;
}
