use std::time::Duration;

use callhook::render::sign::verify;
use serde_json::json;

use crate::support::*;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// How far the test moves the server's clock each time nothing has arrived.
const STEP: Duration = Duration::from_millis(50);

/// The time between two arrivals, on the server's clock.
fn clock_gap(a: &Received, b: &Received) -> Duration {
    Duration::from_millis((b.clock_ms - a.clock_ms).max(0) as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linear_retries_wait_two_then_four_seconds() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    rx.script(
        vec![Reply::Status(500), Reply::Status(503)],
        Reply::Status(200),
    );
    let integ = api
        .integration(
            "acme",
            json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"],
        "delivery": {"retry": {"policy": "linear", "retries": 2}}}),
        )
        .await;
    server
        .ingest(event("e1", "acme", "ivr.input", "c", json!({"dtmf": "1"})))
        .await;
    // The server's clock is moved forward while nothing arrives: the waits pass in
    // milliseconds, and the gaps are measured on the clock the server schedules with.
    let got = rx
        .take_advancing(&server.clock, 3, STEP, Duration::from_secs(15))
        .await;
    let (g1, g2) = (clock_gap(&got[0], &got[1]), clock_gap(&got[1], &got[2]));
    assert!((1.9..3.0).contains(&secs(g1)), "first gap {g1:?}");
    assert!((3.9..5.0).contains(&secs(g2)), "second gap {g2:?}");
    let attempts: Vec<String> = got.iter().map(|r| r.header("callhook-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let ids: Vec<String> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|i| i == &ids[0]),
        "webhook-id is stable across retries"
    );
    let iid = integ["id"].as_str().unwrap_or_default();
    let d = api.wait_for_deliveries("acme", iid, "succeeded", 1).await;
    let (_, detail) = api
        .get(&format!(
            "/v1/tenants/acme/integrations/{iid}/deliveries/{}",
            d[0]["id"].as_str().unwrap_or_default()
        ))
        .await;
    let codes: Vec<_> = detail["attempts_log"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(503), json!(200)]);
    assert_eq!(detail["attempts_log"][0]["error_class"], "http_status");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exponential_retries_honour_retry_after() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    // The schedule's first wait is about 5 s; the receiver asks for 7.
    rx.script(vec![Reply::RetryAfter(503, 7)], Reply::Status(200));
    api.integration(
        "acme",
        json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"],
        "delivery": {"retry": {"policy": "exponential"}}}),
    )
    .await;
    server
        .ingest(event("e1", "acme", "ivr.input", "c", json!({"dtmf": "1"})))
        .await;
    let got = rx
        .take_advancing(&server.clock, 2, STEP, Duration::from_secs(15))
        .await;
    let gap = clock_gap(&got[0], &got[1]);
    assert!(
        (6.9..8.5).contains(&secs(gap)),
        "gap {gap:?} should follow Retry-After: 7"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_calls_states_arrive_in_order_even_when_one_is_retried() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    rx.script(vec![Reply::Status(500)], Reply::Status(200));
    let integ = api
        .integration(
            "acme",
            json!({"name": "states", "url": rx.url, "event_types": ["call.state"],
        "delivery": {"retry": {"policy": "linear", "retries": 3}, "max_in_flight": 16}}),
        )
        .await;
    assert_eq!(
        integ["delivery"]["ordered"], true,
        "call.state integrations are ordered by default"
    );
    let state = |seq: u64, st: &str| {
        event(
            &format!("s{seq}"),
            "acme",
            "call.state",
            "call-1",
            json!({"seq": seq, "state": st, "local": {"user_id": "u1"}}),
        )
    };
    let batch = json!({"events": [state(1, "trying"), state(2, "early"), state(3, "confirmed"), state(4, "terminated")]});
    server.ingest(batch).await;
    let got = rx
        .take_advancing(&server.clock, 5, STEP, Duration::from_secs(15))
        .await;
    let seqs: Vec<u64> = got
        .iter()
        .map(|r| r.json()["data"]["seq"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(
        seqs,
        [1, 1, 2, 3, 4],
        "the failed first state is retried before the next is sent"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_integration_is_disabled_and_reenabled_only_with_its_secret() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(500));
    let integ = api.integration("acme", json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"],
        "secret": "s3cret-value", "delivery": {"retry": {"retries": 0}, "disable_after_failures": 2}})).await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/tenants/acme/integrations/{iid}");
    let ev = |i: u32| {
        event(
            &format!("e{i}"),
            "acme",
            "ivr.input",
            &format!("c{i}"),
            json!({"dtmf": "1"}),
        )
    };
    let admin = server.admin();
    admin.post("/v1/events", ev(1)).await;
    rx.next(10).await;
    admin.post("/v1/events", ev(2)).await;
    rx.next(10).await;
    api.wait_for_deliveries("acme", &iid, "failed", 2).await;
    let (_, v) = api.get(&path).await;
    assert_eq!(v["status"], "disabled");
    assert!(
        v["disabled_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("2 consecutive failed attempts"),
        "{v}"
    );

    // Recorded, not sent.
    admin.post("/v1/events", ev(3)).await;
    api.wait_for_deliveries("acme", &iid, "held", 1).await;

    let (st, e) = api.post(&format!("{path}/enable"), json!({})).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (422, Some("secret_required"))
    );
    let (st, e) = api
        .post(&format!("{path}/enable"), json!({"secret": "wrong-secret"}))
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("secret_mismatch"))
    );
    assert_eq!(
        api.get(&path).await.1["status"],
        "disabled",
        "a refused enable changes nothing"
    );

    rx.set_default(Reply::Status(200));
    let (st, v) = api
        .post(&format!("{path}/enable"), json!({"secret": "s3cret-value"}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["resent"].as_u64()),
        (Some("active"), Some(3))
    );
    let mut ids: Vec<String> = rx
        .take(3, 10)
        .await
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["e1", "e2", "e3"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_at_once_and_enable_can_skip_the_resend() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.script(vec![Reply::Status(410)], Reply::Status(200));
    let integ = api
        .integration(
            "acme",
            json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"],
        "delivery": {"retry": {"policy": "exponential"}}}),
        )
        .await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/tenants/acme/integrations/{iid}");
    server
        .ingest(event("e1", "acme", "ivr.input", "c", json!({"dtmf": "1"})))
        .await;
    rx.next(10).await;
    api.wait_for_deliveries("acme", &iid, "failed", 1).await;
    let (_, v) = api.get(&path).await;
    assert_eq!(v["status"], "disabled");
    assert!(v["disabled_reason"]
        .as_str()
        .unwrap_or_default()
        .contains("410"));
    let (st, v) = api
        .post(&format!("{path}/enable"), json!({"resend": false}))
        .await;
    assert_eq!((st, v["resent"].as_u64()), (200, Some(0)));
    server
        .ingest(event("e2", "acme", "ivr.input", "c", json!({"dtmf": "2"})))
        .await;
    assert_eq!(
        rx.next(10).await.json()["id"],
        "e2",
        "the first delivery was not resent"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_can_be_redelivered_one_or_by_range() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(500));
    let integ = api
        .integration(
            "acme",
            json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"],
        "delivery": {"retry": {"retries": 0}}}),
        )
        .await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let evs = ivr_events("acme", 1..4);
    server.ingest(json!({"events": evs})).await;
    rx.take(3, 10).await;
    let failed = api.wait_for_deliveries("acme", &iid, "failed", 3).await;
    rx.set_default(Reply::Status(200));

    let one = failed[0]["id"].as_str().unwrap_or_default();
    let (st, _) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/deliveries/{one}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(st, 202);
    let got = rx.next(10).await;
    assert_eq!(got.header("webhook-id"), one);
    assert_eq!(got.header("callhook-attempt"), "2");

    let (st, v) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/redeliver"),
            json!({"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((st, v["queued"].as_u64()), (202, Some(2)));
    rx.take(2, 10).await;
    api.wait_for_deliveries("acme", &iid, "succeeded", 3).await;
    let (st, _) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/redeliver"),
            json!({"since": "2100-01-01T00:00:00Z", "until": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(st, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_is_told_when_an_integration_fails_recovers_and_is_disabled() {
    let ops = Receiver::start().await;
    let secret = callhook::render::sign::generate_secret();
    let (url, s2) = (ops.url.clone(), secret.clone());
    let server = TestServer::start_with(move |c| {
        c.notify_url = Some(url);
        c.notify_secret = Some(s2);
    })
    .await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.script(vec![Reply::Status(500)], Reply::Status(200));
    let flaky = api
        .integration(
            "acme",
            json!({"name": "flaky", "url": rx.url, "event_types": ["ivr.input"],
        "delivery": {"retry": {"policy": "linear", "retries": 1}}}),
        )
        .await;
    server
        .ingest(event("e1", "acme", "ivr.input", "c", json!({"dtmf": "1"})))
        .await;
    let failing = ops.next(10).await;
    let ts = failing.header("webhook-timestamp").parse().unwrap_or(0);
    assert!(verify(
        &secret,
        &failing.header("webhook-id"),
        ts,
        &failing.body,
        &failing.header("webhook-signature")
    ));
    let f = failing.json();
    assert_eq!(
        (f["type"].as_str(), f["data"]["integration_id"].as_str()),
        (Some("integration.failing"), flaky["id"].as_str())
    );
    assert_eq!(f["data"]["last_error"], "HTTP 500");
    // The retry (2 s later on the server's clock) succeeds.
    let recovered = ops
        .take_advancing(&server.clock, 1, STEP, Duration::from_secs(10))
        .await
        .remove(0)
        .json();
    assert_eq!(recovered["type"], "integration.recovered");

    let gone = Receiver::start().await;
    gone.set_default(Reply::Status(410));
    let g = api
        .integration(
            "acme",
            json!({"name": "gone", "url": gone.url, "event_types": ["analysis.completed"]}),
        )
        .await;
    server
        .ingest(event(
            "e2",
            "acme",
            "analysis.completed",
            "c",
            json!({"score": 1}),
        ))
        .await;
    let disabled = ops.next(10).await.json();
    assert_eq!(
        (
            disabled["type"].as_str(),
            disabled["data"]["integration_id"].as_str()
        ),
        (Some("integration.disabled"), g["id"].as_str())
    );
    assert!(disabled["data"]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("410"));
    assert_eq!(disabled["data"]["status"], "disabled");
    server.stop().await;
}
