//! A tenant admin cannot make routing expensive for everyone.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_cannot_make_routing_cpu_bound() {
    let server = TestServer::start_with(|c| c.default_max_integrations = 3).await;
    let acme = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let with = |conditions: Value| {
        json!({"name": "n", "url": rx.url, "event_types": ["call.completed"],
               "filters": {"conditions": conditions}})
    };
    let cond = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"field": "talk_ms", "op": "gte", "value": i}))
            .collect()
    };
    let long_list: Vec<Value> = (0..1001).map(|i| json!(format!("+44{i}"))).collect();
    for (what, spec) in [
        ("33 conditions", with(json!(cond(33)))),
        (
            "an in-list of 1001 values",
            with(json!([{"field": "caller.number", "op": "in", "value": long_list}])),
        ),
        (
            "a 2 KiB needle",
            with(json!([{"field": "caller.number", "op": "contains", "value": "9".repeat(2048)}])),
        ),
        (
            "1001 user ids",
            json!({"name": "n", "url": rx.url, "event_types": ["call.completed"],
                   "filters": {"users": {"mode": "specific",
                       "ids": (0..1001).map(|i| format!("u{i}")).collect::<Vec<_>>()}}}),
        ),
    ] {
        let (st, v) = acme.post("/v1/tenants/acme/integrations", spec).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_setting")),
            "{what}: {v}"
        );
    }
    // The most that is allowed is accepted, up to the default number of integrations.
    let list: Vec<Value> = (0..1000).map(|i| json!(i * 1000)).collect();
    let heavy = with(json!((0..32)
        .map(|_| json!({"field": "talk_ms", "op": "in", "value": list}))
        .collect::<Vec<_>>()));
    for _ in 0..3 {
        acme.integration("acme", heavy.clone()).await;
    }
    let (st, v) = acme.post("/v1/tenants/acme/integrations", heavy).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("integration_limit")),
        "{v}"
    );
    // Events are routed through all of them (each matching one set lookup per condition).
    let events: Vec<Value> = (0..1000)
        .map(|i| {
            event(
                &format!("e{i}"),
                "acme",
                "call.completed",
                &format!("c{i}"),
                json!({"talk_ms": (i % 10) * 1000}),
            )
        })
        .collect();
    let (st, v) = server.ingest(json!({"events": events})).await;
    assert_eq!((st, v["accepted"].as_u64()), (202, Some(1000)), "{v}");
    // A tenant's limit is bounded too.
    let (st, _) = server
        .admin()
        .patch("/v1/tenants/acme", json!({"max_integrations": 0}))
        .await;
    assert_eq!(st, 422);
    server.stop().await;
}
