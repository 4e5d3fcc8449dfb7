//! Profile `template`: the customer's JSON shape, filled from the canonical event after its
//! privacy rules; refused at save with the line and column when it is wrong; a render that
//! fails on a real event fails that delivery at once, sending nothing.

use callhook::render::sign::verify;
use serde_json::{json, Value};

use crate::support::*;

const HUBSPOT: &str = r#"{
  "properties": {
    "hs_timestamp": "{{ occurred_at | epoch_ms }}",
    "hs_call_direction": "{{ data.direction | upper | default('UNKNOWN') }}",
    "hs_call_title": "Call from {{ data.caller.number }}",
    "hs_call_duration": "{{ data.talk_ms | default(0) }}",
    "callhook_delivery": "{{ delivery_id }}"
  }
}"#;

fn spec(url: &str, template: &str) -> Value {
    json!({"name": "crm", "url": url, "event_types": ["call.completed"],
           "profile": "template", "template": template,
           "privacy": {"remote_number": {"action": "mask", "digits": 4}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_shapes_the_body_after_the_privacy_rules_and_the_signature_covers_it() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    let integ = api.integration("acme", spec(&rx.url, HUBSPOT)).await;
    assert_eq!(integ["profile"], "template");
    assert_eq!(
        integ["template"], HUBSPOT,
        "the template reads back as saved"
    );
    let signing = integ["signing_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let data = json!({"answered": true, "direction": "inbound", "talk_ms": 61000,
                      "caller": {"number": "+441610000002"}, "callee": {"number": "+441610000001"}});
    let (st, v) = server
        .ingest(event("e-1", "acme", "call.completed", "c-1", data))
        .await;
    assert_eq!(st, 202, "{v}");
    let got = rx.next(10).await;
    assert_eq!(
        got.json(),
        json!({"properties": {
            "hs_timestamp": 1_795_341_600_123_i64,
            "hs_call_direction": "INBOUND",
            // The caller of an inbound call is the remote party: masked before the template ran.
            "hs_call_title": "Call from +44161000XXXX",
            "hs_call_duration": 61000,
            "callhook_delivery": got.header("webhook-id"),
        }})
    );
    assert_eq!(
        got.header("content-type"),
        "application/json; charset=utf-8"
    );
    let ts: i64 = got.header("webhook-timestamp").parse().unwrap_or_default();
    assert!(verify(
        &signing,
        &got.header("webhook-id"),
        ts,
        &got.body,
        &got.header("webhook-signature")
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_template_is_refused_with_its_line_and_column_and_nothing_is_saved() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    let cases = [
        // A filter that does not exist.
        (
            "{\n  \"a\": \"{{ data.caller.number | shout }}\"\n}".to_string(),
            "line 2, column 33",
        ),
        // Not JSON: a trailing comma.
        ("{\"a\": 1,}".to_string(), "line 1, column 9"),
        // Compiles, but fails on the example call: `number` of a time.
        (
            "{\n\"at\": \"{{ occurred_at | number }}\"}".to_string(),
            "call.completed example event: line 2, column 25",
        ),
        // Past the size limit: refused before it is parsed.
        (format!("[\"{}\"]", "x".repeat(16 * 1024)), "at most 16384"),
    ];
    for (template, says) in cases {
        let (st, v) = api
            .post("/v1/tenants/acme/integrations", spec(&rx.url, &template))
            .await;
        assert_eq!(st, 422, "{v}");
        assert_eq!(v["error"]["code"], "invalid_template", "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{says}: {message}");
    }
    // Settings that do not go with a template.
    let mut no_template = spec(&rx.url, HUBSPOT);
    no_template.as_object_mut().map(|m| m.remove("template"));
    let mut other_profile = spec(&rx.url, HUBSPOT);
    other_profile["profile"] = json!("canonical");
    let mut form = spec(&rx.url, HUBSPOT);
    form["format"] = json!("form");
    let mut get = spec(&rx.url, HUBSPOT);
    get["method"] = json!("GET");
    for (bad, says) in [
        (no_template, "needs `template`"),
        (other_profile, "profile `template` only"),
        (form, "format json"),
        (get, "method POST or PUT"),
    ] {
        let (st, v) = api.post("/v1/tenants/acme/integrations", bad).await;
        assert_eq!(st, 422, "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{says}: {message}");
    }
    let (_, list) = api.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"], json!([]), "nothing was saved");
    // A PATCH that breaks a saved template changes nothing either.
    let integ = api.integration("acme", spec(&rx.url, HUBSPOT)).await;
    let path = format!(
        "/v1/tenants/acme/integrations/{}",
        integ["id"].as_str().unwrap_or_default()
    );
    let (st, v) = api
        .patch(&path, json!({"template": "{\"a\": \"{{ x\"}"}))
        .await;
    assert_eq!(st, 422, "{v}");
    let (_, now) = api.get(&path).await;
    assert_eq!(now["template"], HUBSPOT);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_fails_on_a_real_event_fails_that_delivery_at_once_and_sends_nothing() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    // The examples have no `data.queue`, so the template saves; this source sends a number.
    let template = "{\"queue\": \"{{ data.queue | upper }}\", \"call\": \"{{ call_id }}\"}";
    let mut s = spec(&rx.url, template);
    s["delivery"] = json!({"retry": {"policy": "linear", "retries": 3}});
    let integ = api.integration("acme", s).await;
    let iid = integ["id"].as_str().unwrap_or_default();
    let bad = event(
        "e-bad",
        "acme",
        "call.completed",
        "c-bad",
        json!({"answered": true, "queue": 7}),
    );
    let good = event(
        "e-good",
        "acme",
        "call.completed",
        "c-good",
        json!({"answered": true, "queue": "sales"}),
    );
    assert_eq!(server.ingest(json!({"events": [bad, good]})).await.0, 202);
    let got = rx.next(10).await;
    assert_eq!(got.json(), json!({"queue": "SALES", "call": "c-good"}));
    let failed = api.wait_for_deliveries("acme", iid, "failed", 1).await;
    let (_, detail) = api
        .get(&format!(
            "/v1/tenants/acme/integrations/{iid}/deliveries/{}",
            failed[0]["id"].as_str().unwrap_or_default()
        ))
        .await;
    let log = detail["attempts_log"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(log.len(), 1, "one attempt, no retry: {detail}");
    assert_eq!(log[0]["error_class"], "render", "{detail}");
    let error = log[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("line 1, column 28") && error.contains("`upper` takes text"),
        "{error}"
    );
    // Nothing more reached the receiver.
    rx.none_until(
        &server.clock,
        server.clock.now_ms() + 5_000,
        std::time::Duration::from_millis(100),
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_previews_over_each_types_example_with_privacy_rules_and_stores_nothing() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let template = r#"{"from": "{{ data.caller.number }}", "type": "{{ type }}"}"#;
    let (st, v) = api
        .post(
            "/v1/templates/preview",
            json!({"template": template, "event_type": "call.completed",
                   "privacy": {"local_number": {"action": "mask", "digits": 3}}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // The example call is outbound: its caller is the local party.
    assert_eq!(v["event"]["data"]["caller"]["number"], "+441610000001");
    assert_eq!(
        v["payload"],
        json!({"from": "+441610000XXX", "type": "call.completed"})
    );
    // Every subscribable type has an example.
    for kind in [
        "call.state",
        "call.unanswered",
        "recording.completed",
        "analysis.completed",
        "ivr.input",
        "integration.disabled",
    ] {
        let (st, v) = api
            .post(
                "/v1/templates/preview",
                json!({"template": "{\"t\": \"{{ type }}\", \"id\": \"{{ id }}\"}", "event_type": kind}),
            )
            .await;
        assert_eq!(st, 200, "{kind}: {v}");
        assert!(v["payload"]["id"].is_string(), "{kind}: {v}");
    }
    let (st, v) = api
        .post(
            "/v1/templates/preview",
            json!({"template": "{\"a\": \"{{ data.x | nope }}\"}", "event_type": "ivr.input"}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_template");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1, column 20")),
        "{v}"
    );
    for bad in [
        json!({"template": "{}", "event_type": "cdr.batch"}),
        json!({"template": "{}", "event_type": "call.nope"}),
        json!({"template": "{}"}),
        json!({"template": "{}", "event_type": "ivr.input", "extra": 1}),
    ] {
        let (st, v) = api.post("/v1/templates/preview", bad.clone()).await;
        assert_eq!(st, 422, "{bad}: {v}");
    }
    let (st, _) = server
        .api("not-a-token")
        .post(
            "/v1/templates/preview",
            json!({"template": "{}", "event_type": "ivr.input"}),
        )
        .await;
    assert_eq!(st, 401);
    // The console's preview: signed in, with the form's CSRF token, like every console POST.
    let mut b = crate::console::Browser::new(&server);
    let page = b
        .post(
            "/console/template-preview",
            &[("template", "{}"), ("event_type", "ivr.input")],
        )
        .await;
    assert_eq!(
        (page.status, page.location.as_str()),
        (303, "/console/login")
    );
    b.sign_in(&api.token).await;
    let form = b.get("/console/t/acme/integrations/new").await;
    let token = crate::console::csrf(&form.html);
    let form = [
        ("template", template),
        ("event_type", "call.completed"),
        ("privacy_local_number", "remove"),
    ];
    let page = b.post("/console/template-preview", &form).await;
    assert_eq!(page.status, 403, "{}", page.html);
    let mut with_token = form.to_vec();
    with_token.push(("csrf", token.as_str()));
    let page = b.post("/console/template-preview", &with_token).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let v: Value = serde_json::from_str(&page.html).unwrap_or(Value::Null);
    assert_eq!(
        v["payload"],
        json!({"from": null, "type": "call.completed"})
    );
    let (_, list) = api.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"], json!([]));
    server.stop().await;
}

/// The README's HubSpot, Salesforce and Zendesk templates save as they are and render a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_template_examples_save_and_render_a_call() {
    let readme = include_str!("../../README.md");
    let block = |after: &str| -> String {
        let start = readme.find(after).unwrap_or_else(|| panic!("{after}"));
        let rest = &readme[start..];
        let open = rest.find("```json\n").unwrap_or_else(|| panic!("{after}")) + 8;
        let close = rest[open..]
            .find("```")
            .unwrap_or_else(|| panic!("{after}"));
        rest[open..open + close].to_string()
    };
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    for (name, kind) in [
        ("HubSpot — a call engagement", "call.completed"),
        ("Salesforce — a completed Task", "call.completed"),
        ("Zendesk — a ticket for each missed call", "call.unanswered"),
    ] {
        api.integration(
            "acme",
            json!({"name": name, "url": rx.url, "event_types": [kind],
                   "profile": "template", "template": block(name)}),
        )
        .await;
    }
    let call = json!({"answered": false, "direction": "inbound", "talk_ms": 0,
                      "started_at": "2026-11-22T09:59:50.000Z",
                      "caller": {"number": "+441610000002", "name": "Ann"},
                      "callee": {"number": "+441610000001"}});
    assert_eq!(
        server
            .ingest(event("e-1", "acme", "call.completed", "c-1", call))
            .await
            .0,
        202
    );
    let mut bodies: Vec<Value> = rx.take(3, 10).await.iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b.to_string());
    assert_eq!(
        bodies,
        [
            json!({"CallDurationInSeconds": 0, "CallObject": "c-1", "CallType": "Inbound",
                   "Subject": "Call +441610000002 → +441610000001", "Status": "Completed",
                   "TaskSubtype": "Call", "ActivityDate": "2026-11-22",
                   "Description": "Missed call, tags: none"}),
            json!({"properties": {"hs_timestamp": 1_795_341_600_123_i64,
                   "hs_call_title": "Inbound call +441610000002",
                   "hs_call_direction": "INBOUND", "hs_call_from_number": "+441610000002",
                   "hs_call_to_number": "+441610000001", "hs_call_duration": 0,
                   "hs_call_status": "NO_ANSWER", "hs_call_body": "Call c-1"}}),
            json!({"ticket": {"subject": "Missed call from +441610000002",
                   "comment": {"body": "Ann called +441610000001 at 2026-11-22T10:00:00.123Z and was not answered."},
                   "priority": "normal", "tags": ["callhook", "missed-call"], "external_id": "c-1"}}),
        ]
    );
    server.stop().await;
}

/// An IVR's number is the number the caller dialled, and a call's line is the tenant's side:
/// number rules reach them in the canonical payload a template reads (they did not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_rules_reach_the_ivr_number_and_the_calls_line() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let template = r#"{"ivr": "{{ data.ivr_number }}", "line": "{{ data.call.circuit.number }}"}"#;
    let (st, v) = api
        .post(
            "/v1/templates/preview",
            json!({"template": template, "event_type": "ivr.input"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["payload"]["ivr"].is_string() && v["payload"]["line"].is_string(),
        "the example has both: {v}"
    );
    let (st, v) = api
        .post(
            "/v1/templates/preview",
            json!({"template": template, "event_type": "ivr.input",
                   "privacy": {"local_number": {"action": "remove"},
                               "remote_number": {"action": "remove"}}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["payload"], json!({"ivr": null, "line": null}));
    server.stop().await;
}

/// The test send sends the example a template was checked against when saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_integrations_test_send_renders_the_example_it_was_checked_against() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = server.receiver().await;
    let template =
        r#"{"who": "{{ data.caller.name }}", "secs": "{{ data.talk_ms | div(1000) | round }}"}"#;
    let integ = api.integration("acme", spec(&rx.url, template)).await;
    let iid = integ["id"].as_str().unwrap_or_default();
    let (st, report) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/test"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["success"], true, "{report}");
    let got = rx.next(10).await;
    assert_eq!(got.json(), json!({"who": "Alice", "secs": 121}));
    server.stop().await;
}
