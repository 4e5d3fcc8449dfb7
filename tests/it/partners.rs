//! Partner feeds (seed 003): batch windows, late calls, analytics vs billing, reconciliation.

use std::collections::HashSet;

use callhook::time::{format_ms, now_ms};
use serde_json::{json, Value};

use crate::support::*;

const MIN: i64 = 60_000;

fn cdr(id: &str, tenant: &str, ended_ms_ago: i64, licence: Option<&str>) -> Value {
    let ended = format_ms(now_ms() - ended_ms_ago);
    let mut data = json!({"answered": true, "direction": "inbound", "scope": "external", "ended_at": ended,
        "started_at": ended, "caller": {"number": "+441610000001"}});
    if let Some(l) = licence {
        data["license"] = json!({"partner_id": l});
    }
    event(id, tenant, "call.completed", id, data)
}

pub(crate) async fn partner_admin(server: &TestServer, pid: &str) -> Api {
    let admin = server.admin();
    assert_eq!(
        admin
            .post("/v1/partners", json!({"id": pid, "name": pid}))
            .await
            .0,
        201
    );
    let (_, tok) = admin
        .post(
            "/v1/tokens",
            json!({"role": "partner_admin", "partner_id": pid, "name": "p"}),
        )
        .await;
    server.api(tok["token"].as_str().unwrap_or_default())
}

fn item_ids(batch: &Value) -> Vec<String> {
    let mut ids: Vec<String> = batch["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_hold_exactly_their_windows_calls_and_late_calls_go_in_the_next() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    let admin = server.admin();
    admin
        .post(
            "/v1/tenants",
            json!({"id": "t1", "name": "t1", "partner_id": "p1"}),
        )
        .await;
    admin
        .post("/v1/tenants", json!({"id": "other", "name": "other"}))
        .await;
    let rx = Receiver::start().await;
    let (st, integ) = partner
        .post(
            "/v1/partners/p1/integrations",
            json!({"name": "feed", "url": rx.url, "profile": "cdr-batch",
        "delivery": {"interval_s": 1, "delay_s": 0}}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    assert_eq!(
        (
            integ["profile"].as_str(),
            integ["feed"].as_str(),
            integ["delivery"]["mode"].as_str()
        ),
        (Some("cdr-batch"), Some("analytics"), Some("batch"))
    );
    let (st, v) = partner
        .post(
            "/v1/partners/p1/integrations",
            json!({"name": "again", "url": rx.url}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("partner_integration_exists"))
    );

    let events = json!({"events": [
        cdr("a", "t1", 10 * MIN, None),
        cdr("not-ours", "other", 10 * MIN, None),
        cdr("future", "t1", -60 * MIN, None),
    ]});
    assert_eq!(admin.post("/v1/events", events).await.0, 202);
    let got = rx.next(10).await;
    let batch = got.json();
    assert_eq!(got.header("callhook-event-type"), "cdr.batch");
    assert_eq!(batch["feed"], "analytics");
    assert_eq!(
        (batch["part"].as_u64(), batch["parts"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(item_ids(&batch), ["a"]);
    assert_eq!(batch["items"][0]["orgId"], "t1");
    assert_eq!(batch["items"][0]["dType"], "CloudSessionCdr");
    let start =
        callhook::time::parse_rfc3339_ms(batch["window"]["start"].as_str().unwrap_or_default())
            .unwrap_or(1);
    let end = callhook::time::parse_rfc3339_ms(batch["window"]["end"].as_str().unwrap_or_default())
        .unwrap_or(0);
    assert_eq!(
        (end % 1000, end - start),
        (0, 1000),
        "windows are aligned to the interval"
    );

    // A call that ended long ago but arrives now is not dropped: it rides the next batch.
    admin
        .post("/v1/events", cdr("late", "t1", 20 * MIN, None))
        .await;
    let next = rx.next(10).await.json();
    assert_eq!(item_ids(&next), ["late"]);
    let iid = integ["id"].as_str().unwrap_or_default();
    let (st, log) = partner
        .get(&format!("/v1/partners/p1/integrations/{iid}/deliveries"))
        .await;
    assert_eq!(st, 200);
    assert!(
        log["items"].as_array().map(Vec::len).unwrap_or(0) >= 2,
        "batches are logged like any delivery: {log}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_feed_sends_every_five_minutes_the_calls_that_ended_ten_to_five_minutes_before() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    server
        .admin()
        .post(
            "/v1/tenants",
            json!({"id": "t1", "name": "t1", "partner_id": "p1"}),
        )
        .await;
    let rx = server.receiver().await;
    let (st, integ) = partner
        .post(
            "/v1/partners/p1/integrations",
            json!({"name": "feed", "url": rx.url, "profile": "cdr-batch"}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    assert_eq!(
        (
            integ["delivery"]["interval_s"].as_u64(),
            integ["delivery"]["delay_s"].as_u64()
        ),
        (Some(300), Some(300)),
        "seed 003's schedule is the default"
    );
    // The next boundary T on the server's clock: its batch holds the calls that ended in
    // [T − 10 min, T − 5 min).
    let now = server.clock.now_ms();
    let t = now - now % (5 * MIN) + 5 * MIN;
    let ended_at = |id: &str, at: i64| {
        let mut e = cdr(id, "t1", 0, None);
        e["data"]["ended_at"] = json!(format_ms(at));
        e["data"]["started_at"] = json!(format_ms(at));
        e
    };
    let events = json!({"events": [
        ended_at("in-window", t - 7 * MIN),
        ended_at("too-recent", t - 2 * MIN),
    ]});
    assert_eq!(server.admin().post("/v1/events", events).await.0, 202);
    server
        .clock
        .advance(std::time::Duration::from_millis((t - now) as u64));
    let got = rx.next(10).await;
    let batch = got.json();
    assert_eq!(item_ids(&batch), ["in-window"]);
    assert_eq!(
        (
            batch["window"]["start"].as_str(),
            batch["window"]["end"].as_str()
        ),
        (
            Some(format_ms(t - 10 * MIN).as_str()),
            Some(format_ms(t - 5 * MIN).as_str())
        )
    );
    assert!(got.clock_ms >= t, "not sent before its boundary");
    // Five minutes later on the clock, the other call's window closes.
    server.clock.advance(std::time::Duration::from_secs(300));
    let next = rx.next(10).await;
    assert_eq!(item_ids(&next.json()), ["too-recent"]);
    assert!(next.clock_ms >= t + 5 * MIN);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_feeds_carry_calls_under_the_partners_licence_and_large_batches_come_in_parts() {
    let server = TestServer::start().await;
    let seller = partner_admin(&server, "seller").await;
    let admin = server.admin();
    admin
        .post("/v1/partners", json!({"id": "owner", "name": "owner"}))
        .await;
    admin
        .post(
            "/v1/tenants",
            json!({"id": "t-owned", "name": "x", "partner_id": "owner"}),
        )
        .await;
    admin
        .post("/v1/tenants", json!({"id": "t-direct", "name": "y"}))
        .await;
    let rx = Receiver::start().await;
    let (st, _) = seller
        .post(
            "/v1/partners/seller/integrations",
            json!({"name": "billing", "url": rx.url, "feed": "billing", "profile": "cdr-batch",
        "delivery": {"mode": "batch", "interval_s": 1, "delay_s": 0}}),
        )
        .await;
    assert_eq!(st, 201);
    let mut events = vec![
        cdr("lic-owned", "t-owned", 10 * MIN, Some("seller")),
        cdr("lic-direct", "t-direct", 10 * MIN, Some("seller")),
        cdr("no-lic", "t-owned", 10 * MIN, None),
        cdr("other-lic", "t-direct", 10 * MIN, Some("owner")),
    ];
    for i in 0..1000 {
        events.push(cdr(
            &format!("bulk-{i}"),
            "t-direct",
            12 * MIN,
            Some("seller"),
        ));
    }
    assert_eq!(
        admin.post("/v1/events", json!({"events": events})).await.0,
        202
    );
    let parts = rx.take(2, 10).await;
    let mut seen = HashSet::new();
    let mut part_numbers = Vec::new();
    for p in &parts {
        let b = p.json();
        assert_eq!(
            (b["feed"].as_str(), b["parts"].as_u64()),
            (Some("billing"), Some(2))
        );
        part_numbers.push(b["part"].as_u64().unwrap_or(0));
        seen.extend(item_ids(&b));
    }
    part_numbers.sort();
    assert_eq!(part_numbers, [1, 2]);
    assert_eq!(seen.len(), 1002);
    assert!(seen.contains("lic-owned") && seen.contains("lic-direct"));
    assert!(!seen.contains("no-lic") && !seen.contains("other-lic"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_counts_page_over_201_orgs_and_records_page_by_cursor() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "big").await;
    let admin = server.admin();
    let mut events = Vec::new();
    for i in 0..201 {
        let tid = format!("org-{i:03}");
        assert_eq!(
            admin
                .post(
                    "/v1/tenants",
                    json!({"id": tid, "name": tid, "partner_id": "big"})
                )
                .await
                .0,
            201
        );
        events.push(cdr(&format!("c-{i}"), &tid, 30 * MIN, None));
    }
    events.push(cdr("second", "org-000", 31 * MIN, None));
    events.push(cdr("outside", "org-000", 3 * 60 * MIN, None));
    assert_eq!(
        admin.post("/v1/events", json!({"events": events})).await.0,
        202
    );

    let start = format_ms(now_ms() - 60 * MIN);
    let end = format_ms(now_ms() - 10 * MIN);
    let http = reqwest::Client::new();
    let url = |page: u32| {
        format!(
            "{}/v1/partners/big/reconciliation/counts?startTime={start}&endTime={end}&page={page}",
            server.base
        )
    };
    let r1 = http
        .get(url(1))
        .bearer_auth(&partner.token)
        .send()
        .await
        .expect("counts");
    let header = |r: &reqwest::Response, h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        (
            header(&r1, "x-total-pages"),
            header(&r1, "x-total-orgs"),
            header(&r1, "x-current-page")
        ),
        ("2".into(), "201".into(), "1".into())
    );
    let b1: Value = r1.json().await.unwrap_or_default();
    let page1 = b1["cdr_counts"].as_array().cloned().unwrap_or_default();
    assert_eq!(page1.len(), 200);
    assert_eq!(page1[0], json!({"orgId": "org-000", "count": 2}));
    let r2 = http
        .get(url(2))
        .bearer_auth(&partner.token)
        .send()
        .await
        .expect("counts");
    assert_eq!(header(&r2, "x-current-page"), "2");
    let b2: Value = r2.json().await.unwrap_or_default();
    assert_eq!(b2["cdr_counts"], json!([{"orgId": "org-200", "count": 1}]));

    // Records of one org, one per page.
    let (st, p) = partner.get(&format!("/v1/partners/big/reconciliation/records?orgId=org-000&startTime={start}&endTime={end}&limit=1&profile=cdr-batch")).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["items"][0]["id"], "second", "oldest end first");
    let cursor = p["next_cursor"].as_str().unwrap_or_default().to_string();
    let (_, p2) = partner.get(&format!("/v1/partners/big/reconciliation/records?orgId=org-000&startTime={start}&endTime={end}&limit=1&profile=cdr-batch&cursor={cursor}")).await;
    assert_eq!(
        p2["next_cursor"],
        Value::Null,
        "the last page names no next one"
    );
    assert_eq!(
        (
            p2["items"][0]["id"].as_str(),
            p2["items"][0]["orgId"].as_str()
        ),
        (Some("c-0"), Some("org-000"))
    );
    let (_, t) = admin
        .get(&format!(
            "/v1/tenants/org-007/reconciliation/records?startTime={start}&endTime={end}"
        ))
        .await;
    assert_eq!(t["items"].as_array().map(Vec::len), Some(1));

    // Each window rule, refused with its own code.
    let at = |ms: i64| format_ms(now_ms() - ms);
    for (s, e, code) in [
        (at(30 * MIN), at(40 * MIN), "window_order"),
        (at(130 * MIN), at(60 * MIN), "window_too_long"),
        (
            at(49 * 60 * MIN),
            at(48 * 60 * MIN + 30 * MIN),
            "window_too_old",
        ),
        (at(30 * MIN), at(MIN), "window_too_recent"),
        (
            "2026-11-22T10:00:00Z".to_string(),
            at(10 * MIN),
            "invalid_time",
        ),
    ] {
        let (st, v) = partner
            .get(&format!(
                "/v1/partners/big/reconciliation/counts?startTime={s}&endTime={e}"
            ))
            .await;
        assert_eq!((st, v["error"]["code"].as_str()), (400, Some(code)), "{v}");
    }
    // Another partner sees none of it.
    let other = partner_admin(&server, "small").await;
    let (st, _) = other
        .get(&format!(
            "/v1/partners/big/reconciliation/counts?startTime={start}&endTime={end}"
        ))
        .await;
    assert_eq!(st, 404);
    let (st, _) = other.get("/v1/partners/big/integrations").await;
    assert_eq!(st, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_belong_to_partners_and_can_be_changed() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p9").await;
    let tenant = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let (st, v) = tenant
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "n", "url": rx.url,
        "event_types": ["call.completed"], "feed": "billing"}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let t = tenant
        .integration(
            "acme",
            json!({"name": "n", "url": rx.url, "event_types": ["call.completed"]}),
        )
        .await;
    let (st, _) = tenant
        .patch(
            &format!(
                "/v1/tenants/acme/integrations/{}",
                t["id"].as_str().unwrap_or_default()
            ),
            json!({"feed": "billing"}),
        )
        .await;
    assert_eq!(st, 422, "a tenant integration cannot become a feed");
    let (_, f) = partner
        .post(
            "/v1/partners/p9/integrations",
            json!({"name": "feed", "url": rx.url}),
        )
        .await;
    let path = format!(
        "/v1/partners/p9/integrations/{}",
        f["id"].as_str().unwrap_or_default()
    );
    let (st, v) = partner
        .patch(
            &path,
            json!({"feed": "billing", "delivery": {"interval_s": 60}}),
        )
        .await;
    assert_eq!(
        (st, v["feed"].as_str(), v["delivery"]["interval_s"].as_u64()),
        (200, Some("billing"), Some(60))
    );
    let (st, _) = partner.patch(&path, json!({"feed": null})).await;
    assert_eq!(st, 422);
    assert_eq!(
        tenant.get(&path).await.0,
        404,
        "a tenant token does not see partner feeds"
    );
    assert_eq!(partner.delete(&path).await.0, 204);
    let (st, _) = partner
        .post(
            "/v1/partners/p9/integrations",
            json!({"name": "again", "url": rx.url}),
        )
        .await;
    assert_eq!(
        st, 201,
        "after deleting, the partner may create its feed again"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_page_too_far_to_count_is_a_400_not_a_dropped_connection() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p").await;
    let start = format_ms(now_ms() - 60 * MIN);
    let end = format_ms(now_ms() - 10 * MIN);
    // Page 2^31 once made the offset overflow: the handler panicked and the connection closed.
    for page in ["2147483648", "1000001", "0"] {
        let (st, v) = partner
            .get(&format!(
                "/v1/partners/p/reconciliation/counts?startTime={start}&endTime={end}&page={page}"
            ))
            .await;
        assert_eq!(st, 400, "page {page}: {v}");
        assert_eq!(v["error"]["code"], "invalid_page");
    }
    let (st, _) = partner
        .get(&format!(
            "/v1/partners/p/reconciliation/counts?startTime={start}&endTime={end}&page=1000000"
        ))
        .await;
    assert_eq!(st, 200);
    server.stop().await;
}

/// A test send to a `cdr-batch` feed once sent the sample call's bare data — a shape the feed
/// never sends. It is a window now: `{feed, window, part, parts, items}` with one item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_to_a_batch_feed_is_a_window_of_one_call() {
    let server = TestServer::start().await;
    let partner = partner_admin(&server, "p1").await;
    let rx = server.receiver().await;
    let (st, integ) = partner
        .post(
            "/v1/partners/p1/integrations",
            json!({"name": "feed", "url": rx.url, "profile": "cdr-batch"}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let iid = integ["id"].as_str().unwrap_or_default();
    let (st, report) = partner
        .post(
            &format!("/v1/partners/p1/integrations/{iid}/test"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{report}");
    let body = rx.next(10).await.json();
    let keys: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["feed", "window", "part", "parts", "items"], "{body}");
    assert_eq!(body["feed"], "analytics");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["items"][0]["dType"], "CloudSessionCdr", "{body}");
    server.stop().await;
}
