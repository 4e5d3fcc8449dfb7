//! Operational events for tenants: an integration failing, disabled, recovered, a delivery
//! exhausted — stored, delivered to the tenant's own integrations that subscribe to them (never
//! to the one they are about), retried like any delivery, and listed as notifications.

use std::time::Duration;

use callhook::render::sign::verify;
use serde_json::{json, Value};

use crate::support::*;

const STEP: Duration = Duration::from_millis(50);
const OPERATIONAL: [&str; 4] = [
    "integration.failing",
    "integration.disabled",
    "integration.recovered",
    "delivery.exhausted",
];

fn types(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|n| n["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_hears_of_its_integrations_failing_recovering_and_disabled_through_its_own_receiver(
) {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    // The tenant's alert receiver refuses the first alert: it is stored and retried.
    let alerts = server.receiver().await;
    alerts.script(vec![Reply::Status(503)], Reply::Status(200));
    let watcher = api
        .integration(
            "acme",
            json!({"name": "alerts", "url": alerts.url, "event_types": OPERATIONAL,
                   "delivery": {"retry": {"policy": "linear", "retries": 3}}}),
        )
        .await;
    let secret = watcher["signing_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // A flaky CRM that also subscribes to the alerts: it must never hear of itself.
    let crm = server.receiver().await;
    crm.set_default(Reply::Status(500));
    let flaky = api
        .integration(
            "acme",
            json!({"name": "crm", "url": crm.url, "event_types": ["ivr.input", "integration.failing",
                   "integration.recovered", "delivery.exhausted"],
                   "delivery": {"retry": {"policy": "linear", "retries": 1}}}),
        )
        .await;
    let fid = flaky["id"].as_str().unwrap_or_default().to_string();

    server
        .ingest(event("e1", "acme", "ivr.input", "c1", json!({"dtmf": "1"})))
        .await;
    // integration.failing (refused once, then again), delivery.exhausted after the CRM's retry;
    // the two retries are due at about the same time, so in either order.
    let mut got = alerts
        .take_advancing(&server.clock, 3, STEP, Duration::from_secs(120))
        .await;
    got.sort_by_key(|r| {
        (
            r.json()["type"].as_str().map(String::from),
            r.header("callhook-attempt"),
        )
    });
    let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    assert_eq!(
        types(&bodies),
        [
            "delivery.exhausted",
            "integration.failing",
            "integration.failing"
        ]
    );
    assert_eq!(got[1].header("webhook-id"), got[2].header("webhook-id"));
    assert_eq!(got[2].header("callhook-attempt"), "2");
    for r in &got {
        let ts = r.header("webhook-timestamp").parse().unwrap_or(0);
        assert!(verify(
            &secret,
            &r.header("webhook-id"),
            ts,
            &r.body,
            &r.header("webhook-signature")
        ));
    }
    let failing = &bodies[1];
    assert_eq!(failing["tenant_id"], "acme");
    assert!(failing.get("call_id").is_none(), "{failing}");
    assert_eq!(failing["data"]["integration_id"], fid);
    assert_eq!(failing["data"]["name"], "crm");
    assert_eq!(failing["data"]["last_error"], "HTTP 500");
    let exhausted = &bodies[0]["data"];
    assert_eq!(
        (
            exhausted["integration_id"].as_str(),
            exhausted["event_id"].as_str(),
            exhausted["event_type"].as_str(),
            exhausted["call_id"].as_str(),
            exhausted["attempts"].as_u64()
        ),
        (
            Some(fid.as_str()),
            Some("e1"),
            Some("ivr.input"),
            Some("c1"),
            Some(2)
        )
    );

    // The CRM comes back: recovered.
    crm.set_default(Reply::Status(200));
    server
        .ingest(event("e2", "acme", "ivr.input", "c2", json!({"dtmf": "2"})))
        .await;
    let recovered = alerts.next(10).await.json();
    assert_eq!(recovered["type"], "integration.recovered");
    assert!(recovered["data"]["last_error"].is_null());

    // Disabled by a person: told too.
    let (st, _) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{fid}/disable"),
            json!({"reason": "maintenance"}),
        )
        .await;
    assert_eq!(st, 200);
    let disabled = alerts.next(10).await.json();
    assert_eq!(disabled["type"], "integration.disabled");
    assert_eq!(disabled["data"]["status"], "disabled");
    assert!(disabled["data"]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("maintenance"));

    // Every notification is kept, newest first, readable by the tenant. The watcher's own
    // refusal of the first alert made it fail and recover too: those went to the CRM.
    let (st, page) = api.get("/v1/tenants/acme/notifications").await;
    assert_eq!(st, 200, "{page}");
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let about = |iid: &str| -> Vec<Value> {
        items
            .iter()
            .filter(|n| n["data"]["integration_id"] == iid)
            .cloned()
            .collect()
    };
    let wid = watcher["id"].as_str().unwrap_or_default();
    assert_eq!(
        types(&about(&fid)),
        [
            "integration.disabled",
            "integration.recovered",
            "delivery.exhausted",
            "integration.failing"
        ]
    );
    assert_eq!(about(&fid)[3]["id"], failing["id"]);
    // The watcher refused the first alert, but an attempt carrying an operational event tells
    // no tenant of its own health (no loop between integrations that hear of each other).
    assert!(about(wid).is_empty(), "{items:?}");
    assert_eq!(items.len(), 4);

    // The CRM got its calls and the watcher's alerts, never one about itself.
    let (_, log) = api
        .get(&format!("/v1/tenants/acme/integrations/{fid}/deliveries"))
        .await;
    let mut got: Vec<String> = log["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["event_id"].as_str().map(str::to_string))
        .collect();
    got.sort();
    assert_eq!(got, ["e1", "e2"]);
    // … a page at a time …
    let (_, first) = api.get("/v1/tenants/acme/notifications?limit=3").await;
    let cursor = first["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, rest) = api
        .get(&format!(
            "/v1/tenants/acme/notifications?limit=3&cursor={cursor}"
        ))
        .await;
    assert!(rest["next_cursor"].is_null());
    let rest = rest["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["id"], items[3]["id"]);
    for bad in ["limit=0", "limit=501", "cursor=abc", "cursor=-5"] {
        let (st, v) = api
            .get(&format!("/v1/tenants/acme/notifications?{bad}"))
            .await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
    // … and by nobody else.
    let other = server.tenant("globex").await;
    let (st, _) = other.get("/v1/tenants/acme/notifications").await;
    assert_eq!(st, 404);
    // The alert that was refused once is in the watcher's log with both attempts.
    let (_, log) = api
        .get(&format!("/v1/tenants/acme/integrations/{wid}/deliveries"))
        .await;
    let first_alert = log["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["event_id"] == failing["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            first_alert["status"].as_str(),
            first_alert["attempts"].as_u64()
        ),
        (Some("succeeded"), Some(2))
    );

    // The console shows them: to the tenant all four, to a portal session scoped to the
    // watcher none (they are all about the CRM).
    let mut browser = crate::console::Browser::new(&server);
    browser.sign_in(&api.token).await;
    let page = browser.get("/console/t/acme/notifications").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.html.matches("<tr>").count(), 1 + 4, "{}", page.html);
    assert!(page.html.contains("after 2 attempts: HTTP 500"));
    assert!(page.html.contains("maintenance"));
    let (st, link) = server
        .admin()
        .post(
            "/v1/tenants/acme/portal-links",
            json!({"role": "tenant_viewer", "integration_ids": [wid.to_string()]}),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let (mut scoped, _) = crate::portal::open(&server, link).await;
    let page = scoped.get("/console/t/acme/notifications").await;
    assert_eq!(page.status, 200);
    assert!(!page.html.contains("<tr>"), "{}", page.html);
    assert!(page.html.contains("No notifications"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_failing_integrations_that_hear_of_each_other_do_not_feed_each_other_for_ever() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let (a_rx, b_rx) = (server.receiver().await, server.receiver().await);
    a_rx.set_default(Reply::Status(500));
    b_rx.set_default(Reply::Status(500));
    let spec = |name: &str, url: &str| {
        json!({"name": name, "url": url, "event_types": ["ivr.input", "integration.failing", "delivery.exhausted"],
               "delivery": {"retry": {"policy": "linear", "retries": 0}}})
    };
    let a = api.integration("acme", spec("a", &a_rx.url)).await;
    let b = api.integration("acme", spec("b", &b_rx.url)).await;
    let (aid, bid) = (
        a["id"].as_str().unwrap_or_default(),
        b["id"].as_str().unwrap_or_default(),
    );
    server
        .ingest(event("e1", "acme", "ivr.input", "c1", json!({"dtmf": "1"})))
        .await;
    // e1 fails at both: each starts failing and exhausts e1; each hears the other's two alerts
    // and fails them too — which makes no further alert.
    api.wait_for_deliveries("acme", aid, "failed", 3).await;
    api.wait_for_deliveries("acme", bid, "failed", 3).await;
    // A sentinel: one more exhausted call at `a`, queued after anything the above could make
    // (a minute later: `delivery.exhausted` comes at most once a minute per integration).
    server.clock.advance(Duration::from_secs(61));
    server
        .ingest(event("e2", "acme", "ivr.input", "c2", json!({"dtmf": "2"})))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let items = loop {
        let (_, page) = api.get("/v1/tenants/acme/notifications?limit=500").await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items
            .iter()
            .filter(|n| n["data"]["event_id"] == "e2")
            .count()
            == 2
        {
            break items;
        }
        assert!(std::time::Instant::now() < deadline, "{items:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let mut seen: Vec<String> = items
        .iter()
        .map(|n| {
            format!(
                "{} {} {}",
                n["type"].as_str().unwrap_or_default(),
                if n["data"]["integration_id"] == aid {
                    "a"
                } else {
                    "b"
                },
                n["data"]["event_id"].as_str().unwrap_or("-")
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "delivery.exhausted a e1",
            "delivery.exhausted a e2",
            "delivery.exhausted b e1",
            "delivery.exhausted b e2",
            "integration.failing a -",
            "integration.failing b -"
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_callhook_makes_operational_events_and_only_the_canonical_profile_carries_them() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let (st, v) = server
        .ingest(event("x", "acme", "integration.failing", "c", json!({})))
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "n", "url": "https://crm.example.com/", "profile": "cdr",
                   "event_types": ["delivery.exhausted"]}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("cannot render `delivery.exhausted`"));
    server.stop().await;
}

/// Two integrations that hear of each other's failures and recoveries, both flapping: the
/// attempts that carry operational events make none themselves, so one call event makes a
/// bounded number of notifications (the review found the loop: fail, recover, fail …).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_integrations_that_hear_of_each_other_make_no_notifications_about_themselves() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let (a_rx, b_rx) = (server.receiver().await, server.receiver().await);
    a_rx.script(vec![Reply::Status(500)], Reply::Status(200));
    b_rx.script(vec![Reply::Status(500)], Reply::Status(200));
    let spec = |name: &str, url: &str, calls: bool| {
        let mut types = vec!["integration.failing", "integration.recovered"];
        if calls {
            types.push("ivr.input");
        }
        json!({"name": name, "url": url, "event_types": types,
               "delivery": {"retry": {"policy": "linear", "retries": 3}}})
    };
    let a = api.integration("acme", spec("a", &a_rx.url, true)).await;
    let b = api.integration("acme", spec("b", &b_rx.url, false)).await;
    let (aid, bid) = (
        a["id"].as_str().unwrap_or_default(),
        b["id"].as_str().unwrap_or_default(),
    );
    server
        .ingest(event("e1", "acme", "ivr.input", "c1", json!({"dtmf": "1"})))
        .await;
    // a: 500 then 200 (failing, recovered, both to b); b: 500 then 200 on the first of them.
    a_rx.take_advancing(&server.clock, 2, STEP, Duration::from_secs(60))
        .await;
    b_rx.take_advancing(&server.clock, 3, STEP, Duration::from_secs(60))
        .await;
    api.wait_for_deliveries("acme", bid, "succeeded", 2).await;
    let (_, page) = api.get("/v1/tenants/acme/notifications").await;
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let about: Vec<&str> = items
        .iter()
        .filter_map(|n| n["data"]["integration_id"].as_str())
        .collect();
    assert_eq!(about, [aid, aid], "{items:?}");
    assert_eq!(
        types(&items),
        ["integration.recovered", "integration.failing"]
    );
    // a heard nothing of b's flap.
    let (_, log) = api
        .get(&format!("/v1/tenants/acme/integrations/{aid}/deliveries"))
        .await;
    assert_eq!(log["items"].as_array().map(Vec::len), Some(1), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_makes_one_delivery_exhausted_a_minute_counting_the_others() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let down = server.receiver().await;
    down.set_default(Reply::Status(500));
    let i = api
        .integration(
            "acme",
            json!({"name": "down", "url": down.url, "event_types": ["ivr.input"],
                   "delivery": {"retry": {"policy": "linear", "retries": 0}}}),
        )
        .await;
    let iid = i["id"].as_str().unwrap_or_default();
    let events: Vec<Value> = (0..5)
        .map(|n| {
            event(
                &format!("e{n}"),
                "acme",
                "ivr.input",
                "c",
                json!({"dtmf": "1"}),
            )
        })
        .collect();
    server.ingest(json!({"events": events})).await;
    api.wait_for_deliveries("acme", iid, "failed", 5).await;
    server.clock.advance(Duration::from_secs(61));
    server
        .ingest(event(
            "late",
            "acme",
            "ivr.input",
            "c",
            json!({"dtmf": "1"}),
        ))
        .await;
    api.wait_for_deliveries("acme", iid, "failed", 6).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exhausted = loop {
        let (_, page) = api.get("/v1/tenants/acme/notifications").await;
        let found: Vec<Value> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["type"] == "delivery.exhausted")
            .cloned()
            .collect();
        if found.len() == 2 {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "{found:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(exhausted[0]["data"]["event_id"], "late");
    assert_eq!(exhausted[0]["data"]["also_exhausted"], 4);
    assert_eq!(exhausted[1]["data"]["also_exhausted"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_a_scoped_session_nor_a_partner_feed_may_subscribe_to_operational_events() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    let mine = api
        .integration(
            "acme",
            json!({"name": "mine", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    let iid = mine["id"].as_str().unwrap_or_default();
    let (st, link) = server
        .admin()
        .post(
            "/v1/tenants/acme/portal-links",
            json!({"role": "tenant_admin", "integration_ids": [iid]}),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let (mut scoped, _) = crate::portal::open(&server, link).await;
    // Through its console form: the same handler refuses it.
    let page = scoped
        .get(&format!("/console/t/acme/integrations/{iid}/edit"))
        .await;
    let mut form: Vec<(String, String)> = crate::console::form_fields(&page.html)
        .into_iter()
        .filter(|(k, _)| k != "event_types")
        .collect();
    form.push(("event_types".into(), "ivr.input".into()));
    form.push(("event_types".into(), "integration.failing".into()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = scoped
        .post(&format!("/console/t/acme/integrations/{iid}/edit"), &pairs)
        .await;
    assert!(
        res.html.contains("limited to some integrations"),
        "{}",
        res.html
    );
    let (_, now) = api
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(now["event_types"], json!(["ivr.input"]));
    // A partner feed carries calls only.
    let partner = crate::partners::partner_admin(&server, "p1").await;
    let (st, v) = partner
        .post(
            "/v1/partners/p1/integrations",
            json!({"name": "feed", "url": rx.url, "event_types": ["call.completed", "integration.failing"]}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_disabled_by_the_last_attempt_before_a_stop_is_still_notified() {
    let (server, url, _dir) = TestServer::start_on_kept_store().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    // 410 Gone disables at once; it comes after the node has begun to stop.
    rx.script(vec![Reply::Delay(300, 410)], Reply::Status(200));
    api.integration(
        "acme",
        json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"]}),
    )
    .await;
    // The tenant's own endpoint for notifications: its delivery is stored while the node
    // stops, and must not stay leased to the stopped node.
    let ops = Receiver::start().await;
    api.integration(
        "acme",
        json!({"name": "ops", "url": ops.url, "event_types": ["integration.disabled"]}),
    )
    .await;
    server
        .ingest(event("e1", "acme", "ivr.input", "c1", json!({"dtmf": "1"})))
        .await;
    rx.next(10).await;
    server.stop().await;
    // The attempt finished within the stop's grace, and the event it made was stored before
    // the node stopped (it used to be dropped with the queue).
    let store = callhook::store::open(&url).await.expect("open the store");
    let items = store
        .list_notifications("acme", None, 10)
        .await
        .expect("notifications");
    assert!(
        items
            .iter()
            .any(|(_, body)| body.contains("\"integration.disabled\"")),
        "{items:?}"
    );
    let left = leases_left(&store).await;
    assert_eq!(
        left, 0,
        "a delivery stored while stopping is leased to the stopped node"
    );
}
