//! The per-endpoint rate limit (`delivery.max_per_second`): a burst of one second's worth, then
//! the rate, on the server's clock; bad values refused; the nodes' share of it.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_endpoint_gets_one_seconds_worth_at_once_then_the_rate() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    api.integration(
        "acme",
        json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"],
               "delivery": {"max_per_second": 2, "max_in_flight": 16}}),
    )
    .await;
    let start = server.clock.now_ms();
    let events = ivr_events("acme", 0..10);
    assert_eq!(server.ingest(json!({"events": events})).await.0, 202);
    let got = rx
        .take_advancing(
            &server.clock,
            10,
            Duration::from_millis(50),
            Duration::from_secs(30),
        )
        .await;
    // Sends up to a moment are at most the burst (2) plus the rate times the time since the
    // bucket began, which is after `start`; an arrival comes after its send.
    for (k, r) in got.iter().enumerate() {
        let allowed = 2.0 + 2.0 * (r.clock_ms - start) as f64 / 1000.0;
        assert!(
            (k + 1) as f64 <= allowed,
            "arrival {} at +{} ms: more than 2 at once + 2/s",
            k + 1,
            r.clock_ms - start
        );
    }
    // Ten at 2/s after a burst of two: the last is sent 4 s after the first, no sooner.
    let last = got.last().map_or(0, |r| r.clock_ms - start);
    assert!(last >= 4_000, "the tenth arrived at +{last} ms");
    // The eight that waited are counted (the counter is the process's: at least eight).
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let waited: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("callhook_rate_limited_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(waited >= 8, "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_does_not_give_a_rate_limited_endpoint_a_second_bucket() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    let i = api
        .integration(
            "acme",
            json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"],
                   "delivery": {"max_per_second": 1}}),
        )
        .await;
    let path = format!(
        "/v1/tenants/acme/integrations/{}",
        i["id"].as_str().unwrap_or_default()
    );
    let start = server.clock.now_ms();
    let first = ivr_events("acme", 0..4);
    assert_eq!(server.ingest(json!({"events": first})).await.0, 202);
    rx.take(1, 10).await;
    // An edit starts a new worker for what comes next while the old one drains its queue:
    // before they shared one bucket, the new worker's full bucket sent at once.
    for (n, name) in ["crm 2", "crm 3"].into_iter().enumerate() {
        let (st, v) = api.patch(&path, json!({"name": name})).await;
        assert_eq!(st, 200, "{v}");
        let after = event(
            &format!("after-{n}"),
            "acme",
            "ivr.input",
            &format!("call-after-{n}"),
            json!({"dtmf": "1"}),
        );
        assert_eq!(server.ingest(after).await.0, 202);
    }
    let got = rx
        .take_advancing(
            &server.clock,
            5,
            Duration::from_millis(50),
            Duration::from_secs(30),
        )
        .await;
    for (k, r) in got.iter().enumerate() {
        // The first arrival (taken above) used the burst of one; arrival k + 2 overall.
        let allowed = 1.0 + (r.clock_ms - start) as f64 / 1000.0;
        assert!(
            (k + 2) as f64 <= allowed,
            "arrival {} at +{} ms: more than 1 a second",
            k + 2,
            r.clock_ms - start
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_out_of_bounds_is_refused_and_a_good_one_is_kept() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    for bad in [
        json!(0),
        json!(0.05),
        json!(-1),
        json!(10_001),
        json!("fast"),
    ] {
        let (st, v) = api
            .post(
                "/v1/tenants/acme/integrations",
                json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"],
                       "delivery": {"max_per_second": bad}}),
            )
            .await;
        assert_eq!(st, 422, "{bad}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("max_per_second"), "{bad}: {v}");
    }
    let (_, list) = api.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"].as_array().map_or(0, Vec::len), 0, "{list}");

    let i = api
        .integration(
            "acme",
            json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"],
                   "delivery": {"max_per_second": 0.5}}),
        )
        .await;
    assert_eq!(i["delivery"]["max_per_second"], 0.5, "{i}");
    let path = format!(
        "/v1/tenants/acme/integrations/{}",
        i["id"].as_str().unwrap_or_default()
    );
    let (st, v) = api
        .patch(&path, json!({"delivery": {"max_per_second": 20}}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["delivery"]["max_per_second"], 20.0, "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_gives_deliveries_waiting_for_the_rate_back_to_the_store() {
    let (server, url, _dir) = TestServer::start_on_kept_store().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    api.integration(
        "acme",
        json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"],
               "delivery": {"max_per_second": 0.1}}),
    )
    .await;
    let events = ivr_events("acme", 0..10);
    assert_eq!(server.ingest(json!({"events": events})).await.0, 202);
    // One goes at once; the next would wait ten seconds, the rest queue here or in the store.
    rx.take(1, 10).await;
    server.stop().await;
    // Nothing is left leased to the stopped node: its queue went back before it stopped.
    let store = callhook::store::open(&url).await.expect("open the store");
    let left = leases_left(&store).await;
    assert_eq!(left, 0, "deliveries still leased to the stopped node");
}
