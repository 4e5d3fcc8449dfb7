//! Delivery statistics and charts: per-minute counts by outcome and latency percentiles, kept
//! with the outcomes; the API's numbers and the console's SVG agree with what was delivered.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

pub(crate) fn totals(stats: &Value) -> (u64, u64, u64) {
    stats["minutes"]
        .as_array()
        .into_iter()
        .flatten()
        .fold((0, 0, 0), |(s, r, f), m| {
            (
                s + m["succeeded"].as_u64().unwrap_or(0),
                r + m["retried"].as_u64().unwrap_or(0),
                f + m["failed"].as_u64().unwrap_or(0),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_integration_and_its_tenant_chart_deliveries_by_outcome_and_latency() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let good = server.receiver().await;
    let bad = server.receiver().await;
    bad.set_default(Reply::Status(500));
    let g = api
        .integration(
            "acme",
            json!({"name": "good", "url": good.url, "event_types": ["ivr.input"]}),
        )
        .await;
    let b = api
        .integration(
            "acme",
            json!({"name": "bad", "url": bad.url, "event_types": ["analysis.completed"],
                   "delivery": {"retry": {"policy": "linear", "retries": 1}}}),
        )
        .await;
    let (gid, bid) = (
        g["id"].as_str().unwrap_or_default(),
        b["id"].as_str().unwrap_or_default(),
    );
    for n in 0..3 {
        server
            .ingest(event(
                &format!("i{n}"),
                "acme",
                "ivr.input",
                "c",
                json!({"dtmf": "1"}),
            ))
            .await;
    }
    server
        .ingest(event(
            "a1",
            "acme",
            "analysis.completed",
            "c",
            json!({"score": 1}),
        ))
        .await;
    good.take(3, 10).await;
    bad.take_advancing(
        &server.clock,
        2,
        Duration::from_millis(50),
        Duration::from_secs(60),
    )
    .await;
    api.wait_for_deliveries("acme", bid, "failed", 1).await;

    let (st, gs) = api
        .get(&format!("/v1/tenants/acme/integrations/{gid}/stats"))
        .await;
    assert_eq!(st, 200, "{gs}");
    assert_eq!(totals(&gs), (3, 0, 0));
    // Delivered at once: latencies in the low buckets (how low depends on the machine's load;
    // a bucket bound either way).
    let m = &gs["minutes"][0];
    let (p50, p99) = (
        m["p50_ms"].as_i64().unwrap_or(-1),
        m["p99_ms"].as_i64().unwrap_or(-1),
    );
    assert!(
        callhook::model::stats::LATENCY_BOUNDS_MS.contains(&p50) && p50 <= p99 && p99 <= 5_000,
        "{m}"
    );
    let (_, bs) = api
        .get(&format!("/v1/tenants/acme/integrations/{bid}/stats"))
        .await;
    assert_eq!(totals(&bs), (0, 1, 1));
    assert!(bs["minutes"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|m| m["p50_ms"].is_null()));
    let (_, ts) = api.get("/v1/tenants/acme/stats?hours=2").await;
    assert_eq!(totals(&ts), (3, 1, 1));

    // The console draws them.
    let mut browser = crate::console::Browser::new(&server);
    browser.sign_in(&api.token).await;
    let page = browser.get("/console/t/acme").await;
    assert_eq!(page.status, 200);
    assert!(
        page.html.contains("3 succeeded, 1 retried, 1 failed"),
        "{}",
        page.html
    );
    let page = browser
        .get(&format!("/console/t/acme/integrations/{gid}"))
        .await;
    assert!(page
        .html
        .contains(r#"<svg class="chart" id="chart-deliveries""#));
    assert!(page.html.contains("3 succeeded, 0 retried, 0 failed"));
    let said = match p99 {
        ..1_000 => format!("p99 was at most {p99} ms"),
        _ => format!("p99 was at most {} s", p99 / 1_000),
    };
    assert!(page.html.contains(&said), "{}", page.html);

    // Bad input, and other tenants.
    for bad in ["hours=0", "hours=49", "hours=x"] {
        let (st, v) = api.get(&format!("/v1/tenants/acme/stats?{bad}")).await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
    let other = server.tenant("globex").await;
    let (st, _) = other.get("/v1/tenants/acme/stats").await;
    assert_eq!(st, 404);
    let (st, _) = other
        .get(&format!("/v1/tenants/acme/integrations/{gid}/stats"))
        .await;
    assert_eq!(st, 404);
    server.stop().await;
}
