use std::time::{Duration, Instant};

use callhook::render::sign::verify;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_with_standard_webhooks_and_carry_the_contract_headers() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let integ = api
        .integration(
            "acme",
            json!({"name": "CRM", "url": rx.url, "event_types": ["call.completed"],
            "secret": "123ExampleCustomer321", "headers": {"X-Api-Key": "k"}}),
        )
        .await;
    let signing = integ["signing_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(signing.starts_with("whsec_"));
    assert_eq!(integ["secret_hint"], "…r321");
    assert!(
        integ.get("secret").is_none(),
        "the secret is never returned"
    );

    let (st, v) = api
        .post(
            "/v1/events",
            json!(event(
                "pbx7-1",
                "acme",
                "call.completed",
                "c-1",
                json!({"answered": true})
            )),
        )
        .await;
    assert_eq!(st, 403, "a tenant_admin token does not ingest: {v}");
    let (st, v) = server
        .ingest(event(
            "pbx7-1",
            "acme",
            "call.completed",
            "c-1",
            json!({"answered": true}),
        ))
        .await;
    assert_eq!((st, v), (202, json!({"accepted": 1, "duplicates": 0})));

    let got = rx.next(10).await;
    let body = got.json();
    let id = got.header("webhook-id");
    let ts: i64 = got.header("webhook-timestamp").parse().unwrap_or_default();
    assert!(verify(
        &signing,
        &id,
        ts,
        &got.body,
        &got.header("webhook-signature")
    ));
    assert_eq!(body["delivery_id"], json!(id));
    assert_eq!(body["id"], "pbx7-1");
    assert_eq!(body["data"], json!({"answered": true}));
    assert_eq!(got.header("authorization"), "Bearer 123ExampleCustomer321");
    assert_eq!(got.header("x-api-key"), "k");
    assert_eq!(
        got.header("content-type"),
        "application/json; charset=utf-8"
    );
    assert!(got.header("user-agent").starts_with("callhook/"));
    assert_eq!(got.header("callhook-event-type"), "call.completed");
    assert_eq!(got.header("callhook-attempt"), "1");

    let iid = integ["id"].as_str().unwrap_or_default();
    let done = api.wait_for_deliveries("acme", iid, "succeeded", 1).await;
    let (st, d) = api
        .get(&format!(
            "/v1/tenants/acme/integrations/{iid}/deliveries/{id}"
        ))
        .await;
    assert_eq!(st, 200);
    assert_eq!(done[0]["id"], json!(id));
    assert_eq!(d["attempts_log"][0]["status_code"], 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reingesting_an_event_id_is_a_no_op() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let integ = api
        .integration(
            "acme",
            json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    let ev = event("e-1", "acme", "ivr.input", "c-1", json!({"dtmf": "12"}));
    let admin = server.admin();
    assert_eq!(
        admin.post("/v1/events", ev.clone()).await,
        (202, json!({"accepted": 1, "duplicates": 0}))
    );
    assert_eq!(
        admin.post("/v1/events", ev.clone()).await,
        (202, json!({"accepted": 0, "duplicates": 1}))
    );
    let batch =
        json!({"events": [ev, event("e-2", "acme", "ivr.input", "c-1", json!({"dtmf": "3"}))]});
    assert_eq!(
        admin.post("/v1/events", batch).await,
        (202, json!({"accepted": 1, "duplicates": 1}))
    );
    let got = rx.take(2, 10).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["e-1", "e-2"]);
    let iid = integ["id"].as_str().unwrap_or_default();
    let (_, all) = api
        .get(&format!("/v1/tenants/acme/integrations/{iid}/deliveries"))
        .await;
    assert_eq!(
        all["items"].as_array().map(Vec::len),
        Some(2),
        "one delivery per distinct event"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_applies_types_owner_filters_and_conditions() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    api.integration(
        "acme",
        json!({"name": "missed external", "url": rx.url, "event_types": ["call.unanswered"],
        "filters": {"users": {"mode": "specific", "ids": ["u1"]}, "answer_groups": {"mode": "none"},
                    "conditions": [{"field": "scope", "op": "eq", "value": "external"}]}}),
    )
    .await;
    let cdr = |id: &str, answered: bool, user: &str, scope: &str| {
        event(
            id,
            "acme",
            "call.completed",
            id,
            json!({"answered": answered, "scope": scope,
            "owner": {"kind": "user", "user_id": user}}),
        )
    };
    let batch = json!({"events": [
        cdr("answered", true, "u1", "external"),
        cdr("other-user", false, "u2", "external"),
        cdr("internal", false, "u1", "internal"),
        cdr("match", false, "u1", "external"),
    ]});
    assert_eq!(server.ingest(batch).await.0, 202);
    let got = rx.next(10).await;
    assert_eq!(got.json()["id"], "match");
    assert_eq!(got.header("callhook-event-type"), "call.unanswered");
    // A later event proves nothing else was queued before it.
    assert_eq!(
        server.ingest(cdr("later", false, "u1", "external")).await.0,
        202
    );
    assert_eq!(rx.next(10).await.json()["id"], "later");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_delay_a_healthy_one() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let hanging = Receiver::start().await;
    hanging.set_default(Reply::Hang);
    let healthy = Receiver::start().await;
    api.integration(
        "acme",
        json!({"name": "hangs", "url": hanging.url, "event_types": ["ivr.input"],
        "delivery": {"timeout_ms": 10000, "max_in_flight": 4}}),
    )
    .await;
    api.integration(
        "acme",
        json!({"name": "fine", "url": healthy.url, "event_types": ["ivr.input"]}),
    )
    .await;
    let events = ivr_events("acme", 0..200);
    let start = Instant::now();
    assert_eq!(server.ingest(json!({"events": events})).await.0, 202);
    let got = healthy.take(200, 10).await;
    let slowest = got
        .iter()
        .map(|r| r.at.duration_since(start))
        .max()
        .unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(3),
        "healthy endpoint waited {slowest:?} behind a hanging one"
    );
    server.stop().await;
}

/// The in-flight limit counts requests at the endpoint: it is reached, never passed, and a slot
/// is not kept while the outcome waits for its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_never_has_more_requests_in_flight_than_its_limit() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let slow = Receiver::start().await;
    slow.set_default(Reply::Delay(40, 200));
    api.integration(
        "acme",
        json!({"name": "slow", "url": slow.url, "event_types": ["ivr.input"],
        "delivery": {"max_in_flight": 3}}),
    )
    .await;
    let events = ivr_events("acme", 0..30);
    assert_eq!(server.ingest(json!({"events": events})).await.0, 202);
    slow.take(30, 10).await;
    let most = slow
        .concurrency
        .most
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, 3, "at most 3 requests at once, and all 3 used");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_backlog_does_not_starve_another_tenant() {
    let server = TestServer::start().await;
    let busy = server.tenant("busy").await;
    let quiet = server.tenant("quiet").await;
    let slow = Receiver::start().await;
    slow.set_default(Reply::Delay(100, 200));
    let fast = Receiver::start().await;
    busy.integration(
        "busy",
        json!({"name": "slow", "url": slow.url, "event_types": ["ivr.input"],
        "delivery": {"max_in_flight": 2}}),
    )
    .await;
    quiet
        .integration(
            "quiet",
            json!({"name": "fast", "url": fast.url, "event_types": ["ivr.input"]}),
        )
        .await;
    let backlog: Vec<_> = (0..3000)
        .map(|i| {
            event(
                &format!("b{i}"),
                "busy",
                "ivr.input",
                &format!("c{i}"),
                json!({"dtmf": "1"}),
            )
        })
        .collect();
    assert_eq!(server.ingest(json!({"events": backlog})).await.0, 202);
    slow.next(10).await; // the backlog is being worked on
    let start = Instant::now();
    assert_eq!(
        server
            .ingest(event("q1", "quiet", "ivr.input", "c", json!({"dtmf": "1"})))
            .await
            .0,
        202
    );
    let got = fast.next(10).await;
    let waited = got.at.duration_since(start);
    assert!(
        waited < Duration::from_secs(1),
        "the quiet tenant waited {waited:?} behind the busy one"
    );
    server.stop().await;
}
