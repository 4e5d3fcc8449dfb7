//! Sources that speak in call states: out-of-order and repeated states, and call records built
//! from the states when the source sends none.

use serde_json::{json, Value};

use crate::support::{event, Api, Receiver, TestServer};

fn state(id: &str, call: &str, state: &str, seq: u64, at: &str) -> Value {
    let mut data = json!({"seq": seq, "state": state, "direction": "inbound",
        "local": {"user_id": "u-7", "number": "+441610000001", "device_type": "soft"},
        "remote": {"number": "+441610000002"}});
    if state == "terminated" {
        data["termination_reason"] = json!("hangup");
    }
    let mut e = event(id, "acme", "call.state", call, data);
    e["occurred_at"] = json!(at);
    e
}

async fn states_receiver(tenant: &Api) -> (Receiver, String) {
    let r = Receiver::start().await;
    let i = tenant
        .integration(
            "acme",
            json!({"name": "states", "url": r.url, "profile": "call-state", "event_types": ["call.state"]}),
        )
        .await;
    (r, i["id"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn shuffled_states_of_a_call_are_delivered_in_order() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let (r, _) = states_receiver(&tenant).await;
    let (st, _) = server
        .ingest(json!({"events": [
            state("s3", "c1", "terminated", 3, "2026-11-22T10:01:00Z"),
            state("s1", "c1", "early", 1, "2026-11-22T10:00:00Z"),
            state("s2", "c1", "confirmed", 2, "2026-11-22T10:00:05Z"),
        ]}))
        .await;
    assert_eq!(st, 202);
    let got: Vec<String> = r
        .take(3, 10)
        .await
        .iter()
        .map(|d| d.json()["state"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got, ["EARLY", "CONFIRMED", "TERMINATED"]);
    server.stop().await;
}

#[tokio::test]
async fn a_state_behind_the_call_is_stored_but_not_sent() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let (r, iid) = states_receiver(&tenant).await;
    // The 200 overtook the 180, and the BYE was reported twice.
    for e in [
        state("s2", "c2", "confirmed", 2, "2026-11-22T10:00:05Z"),
        state("s1", "c2", "early", 1, "2026-11-22T10:00:00Z"),
        state("s3", "c2", "terminated", 3, "2026-11-22T10:01:00Z"),
        state("s3-again", "c2", "terminated", 3, "2026-11-22T10:01:00Z"),
    ] {
        let (st, body) = server.ingest(e).await;
        assert_eq!((st, body["accepted"].as_u64()), (202, Some(1)));
    }
    let got: Vec<String> = r
        .take(2, 10)
        .await
        .iter()
        .map(|d| d.json()["state"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got, ["CONFIRMED", "TERMINATED"]);
    let (_, log) = tenant
        .get(&format!("/v1/tenants/acme/integrations/{iid}/deliveries"))
        .await;
    assert_eq!(
        log["items"].as_array().map(Vec::len),
        Some(2),
        "the late early state and the repeat made no delivery: {log}"
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("callhook_call_states_stale_total"),
        "{metrics}"
    );
    server.stop().await;
}

async fn record_receivers(tenant: &Api) -> (Receiver, String, Receiver) {
    let cdr = Receiver::start().await;
    let i = tenant
        .integration(
            "acme",
            json!({"name": "crm", "url": cdr.url, "profile": "cdr", "event_types": ["call.completed"]}),
        )
        .await;
    let missed = Receiver::start().await;
    tenant
        .integration(
            "acme",
            json!({"name": "missed", "url": missed.url, "profile": "call-history",
                   "event_types": ["call.unanswered"]}),
        )
        .await;
    (
        cdr,
        i["id"].as_str().unwrap_or_default().to_string(),
        missed,
    )
}

#[tokio::test]
async fn calls_reported_only_as_states_get_their_records_built() {
    let server = TestServer::start_with(|c| c.derived_cdr_grace_ms = 200).await;
    let tenant = server.tenant("acme").await;
    let (cdr, _, missed) = record_receivers(&tenant).await;
    // Answered: rang 10 s, talked 60 s.
    let (st, _) = server
        .ingest(json!({"events": [
            state("a1", "c-answered-77", "early", 1, "2026-11-22T10:00:00Z"),
            state("a2", "c-answered-77", "confirmed", 2, "2026-11-22T10:00:10Z"),
            state("a3", "c-answered-77", "terminated", 3, "2026-11-22T10:01:10Z"),
        ]}))
        .await;
    assert_eq!(st, 202);
    let record = cdr.next(10).await.json();
    let text = record.to_string();
    assert!(text.contains("c-answered-77"), "{text}");
    assert!(text.contains("+441610000002"), "the caller: {text}");
    // Missed: rang 30 s, then the caller gave up.
    let (st, _) = server
        .ingest(json!({"events": [
            state("m1", "c-missed-88", "early", 1, "2026-11-22T11:00:00Z"),
            state("m2", "c-missed-88", "terminated", 2, "2026-11-22T11:00:30Z"),
        ]}))
        .await;
    assert_eq!(st, 202);
    let unanswered = missed.next(10).await.json();
    assert!(
        unanswered.to_string().contains("c-missed-88"),
        "the missed call reaches the missed-call integration: {unanswered}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_record_from_the_source_wins_over_the_built_one() {
    let server = TestServer::start_with(|c| c.derived_cdr_grace_ms = 60_000).await;
    let tenant = server.tenant("acme").await;
    let (cdr, iid, _) = record_receivers(&tenant).await;
    let (st, _) = server
        .ingest(json!({"events": [
            state("b1", "both", "confirmed", 1, "2026-11-22T10:00:00Z"),
            state("b2", "both", "terminated", 2, "2026-11-22T10:00:40Z"),
        ]}))
        .await;
    assert_eq!(st, 202);
    // The source's own record arrives within the grace period.
    let own = event(
        "pbx-cdr-1",
        "acme",
        "call.completed",
        "both",
        json!({"answered": true, "direction": "inbound", "talk_ms": 40000,
               "ended_at": "2026-11-22T10:00:40Z", "caller": {"number": "+441610000002"}}),
    );
    assert_eq!(server.ingest(own).await.0, 202);
    let got = cdr.next(10).await.json();
    assert!(got.to_string().contains("both"), "{got}");
    tenant
        .wait_for_deliveries("acme", &iid, "succeeded", 1)
        .await;
    let (_, log) = tenant
        .get(&format!("/v1/tenants/acme/integrations/{iid}/deliveries"))
        .await;
    let mut statuses: Vec<String> = log["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["event_id"].as_str().unwrap_or_default(),
                d["status"].as_str().unwrap_or_default()
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        ["derived-cdr:both cancelled", "pbx-cdr-1 succeeded"],
        "one record reaches the receiver"
    );

    // A source that sends its record first gets none built at all.
    assert_eq!(
        server
            .ingest(event(
                "pbx-cdr-2",
                "acme",
                "call.completed",
                "first",
                json!({"answered": false, "ended_at": "2026-11-22T10:05:00Z"})
            ))
            .await
            .0,
        202
    );
    assert_eq!(
        server
            .ingest(state(
                "f1",
                "first",
                "terminated",
                1,
                "2026-11-22T10:05:00Z"
            ))
            .await
            .0,
        202
    );
    let (_, log) = tenant
        .get(&format!("/v1/tenants/acme/integrations/{iid}/deliveries"))
        .await;
    let derived_for_first = log["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|d| d["event_id"] == "derived-cdr:first")
        .count();
    assert_eq!(derived_for_first, 0);
    server.stop().await;
}

#[tokio::test]
async fn freeswitch_json_cdr_posts_become_call_records() {
    let server = TestServer::start().await;
    let tenant = server.tenant("acme").await;
    let (cdr, iid, missed) = record_receivers(&tenant).await;
    let (_, ingest) = server
        .admin()
        .post(
            "/v1/tokens",
            json!({"role": "ingest", "tenant_id": "acme", "name": "fs1"}),
        )
        .await;
    let token = ingest["token"].as_str().unwrap_or_default().to_string();
    let fixture = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/freeswitch/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    };
    let http = reqwest::Client::new();
    let url = format!("{}/v1/sources/freeswitch/cdr", server.base);
    // encode=true: form-encoded, credentials as HTTP Basic (mod_json_cdr's `cred`).
    let res = http
        .post(&url)
        .basic_auth("freeswitch", Some(&token))
        .form(&[("cdr", fixture("answered"))])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 202);
    let record = cdr.next(10).await.json().to_string();
    assert!(
        record.contains("6f4bd1f2-8d3a-4a53-9a57-2c1e0c7e8a11"),
        "{record}"
    );
    // encode=false: the JSON itself.
    let res = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(fixture("missed"))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 202);
    let unanswered = missed.next(10).await.json().to_string();
    assert!(unanswered.contains("a1d3c0e2"), "{unanswered}");
    // Posted again (mod_json_cdr retries on errors): acknowledged, not delivered twice.
    let res = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(fixture("missed"))
        .send()
        .await
        .expect("post");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body, json!({"accepted": 0, "duplicates": 1}));
    // Not a CDR: a clear 400.
    let res = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"hello\": 1}")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.expect("json");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("mod_json_cdr"),
        "{err}"
    );
    let (_, log) = tenant
        .get(&format!("/v1/tenants/acme/integrations/{iid}/deliveries"))
        .await;
    assert_eq!(log["items"].as_array().map(Vec::len), Some(2), "{log}");
    server.stop().await;
}
