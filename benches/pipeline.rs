//! Micro-benchmarks of the pure hot-path stages: parsing an event, routing, rendering each
//! profile, and signing. `cargo bench` runs them.

use std::hint::black_box;

use callhook::model::event::{parse_event, StoredEvent};
use callhook::model::integration::{IntegrationSpec, ValidSpec};
use callhook::model::settings::validate;
use callhook::render::{render, sign, RenderContext};
use callhook::route::route;
use callhook::security::ssrf::DestinationPolicy;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

fn cdr() -> Value {
    json!({"id": "b-1", "type": "call.completed", "tenant_id": "bench", "occurred_at": "2026-11-22T10:00:00.000Z",
        "call_id": "call-1", "data": {"answered": true, "direction": "inbound", "scope": "external", "call_type": "incoming",
        "started_at": "2026-11-22T09:58:00.000Z", "answered_at": "2026-11-22T09:58:07.000Z", "ended_at": "2026-11-22T10:00:00.000Z",
        "ring_ms": 7000, "talk_ms": 113000, "caller": {"number": "+441610000001", "name": "Alice Example", "country": "GB"},
        "callee": {"number": "+441610000002", "name": "Support"}, "did": {"number": "+441610000000", "name": "Main line"},
        "owner": {"kind": "user", "user_id": "u-17"}, "tags": {"campaign": "winter"}, "recording_ids": ["rec-1"],
        "rating": {"rated": true, "cost": 0.012, "band": "national"}}})
}

/// The README's HubSpot example.
const HUBSPOT: &str = r#"{"properties": {
    "hs_timestamp": "{{ occurred_at | epoch_ms }}",
    "hs_call_title": "{{ data.direction | map('inbound', 'Inbound call', 'outbound', 'Outbound call', 'Call') }} {{ data.caller.number }}",
    "hs_call_direction": "{{ data.direction | map('inbound', 'INBOUND', 'outbound', 'OUTBOUND') | upper }}",
    "hs_call_from_number": "{{ data.caller.number }}",
    "hs_call_to_number": "{{ data.callee.number }}",
    "hs_call_duration": "{{ data.talk_ms | default(0) }}",
    "hs_call_status": "{{ data.answered | map(true, 'COMPLETED', false, 'NO_ANSWER') }}",
    "hs_call_body": "Call {{ call_id }}"}}"#;

fn spec(extra: Value) -> ValidSpec {
    let mut s =
        json!({"name": "b", "url": "https://crm.example.com/h", "event_types": ["call.completed"]});
    if let (Some(o), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let s: IntegrationSpec = serde_json::from_value(s).expect("spec");
    validate(s, false, DestinationPolicy::default()).expect("valid")
}

fn benches(c: &mut Criterion) {
    let raw = serde_json::to_vec(&cdr()).expect("json");
    c.bench_function("parse a ~1 KB call.completed", |b| {
        b.iter(|| {
            parse_event(serde_json::from_slice(black_box(&raw)).expect("value")).expect("event")
        })
    });
    let event = parse_event(cdr()).expect("event");
    let filtered = spec(
        json!({"filters": {"users": {"mode": "specific", "ids": ["u-1", "u-17"]},
        "conditions": [{"field": "scope", "op": "eq", "value": "external"}, {"field": "did.number", "op": "prefix", "value": "+44"}]}}),
    );
    c.bench_function("route with owner filter and two conditions", |b| {
        b.iter(|| route(black_box(&event), black_box(&filtered)))
    });
    let stored = StoredEvent {
        seq: 1,
        body: event.canonical_json(),
        event,
    };
    for (name, extra) in [
        ("canonical", json!({})),
        ("cdr", json!({"profile": "cdr"})),
        (
            "cdr with privacy",
            json!({"profile": "cdr", "privacy": {"remote_number": {"action": "mask", "digits": 4}}}),
        ),
        ("cdr as form", json!({"profile": "cdr", "format": "form"})),
        (
            "template (HubSpot-style, 8 fields)",
            json!({"profile": "template", "template": HUBSPOT}),
        ),
        (
            "template with privacy",
            json!({"profile": "template", "template": HUBSPOT,
                   "privacy": {"remote_number": {"action": "mask", "digits": 4}}}),
        ),
    ] {
        let s = spec(extra);
        let ctx = RenderContext {
            integration_id: "int_1",
            delivery_id: "dlv_1",
            trigger: callhook::model::event::EventKind::CallCompleted,
            custom_data: None,
            links: None,
            now_ms: 0,
            cache: None,
        };
        c.bench_function(&format!("render {name}"), |b| {
            b.iter(|| render(black_box(&stored), &s, &ctx))
        });
    }
    // Fan-out: every integration after the first finds the record serialised.
    let shared = callhook::render::cache::RenderCache::default();
    let s = spec(json!({"profile": "cdr"}));
    let ctx = RenderContext {
        integration_id: "int_1",
        delivery_id: "dlv_1",
        trigger: callhook::model::event::EventKind::CallCompleted,
        custom_data: None,
        links: None,
        now_ms: 0,
        cache: Some(&shared),
    };
    c.bench_function("render cdr, record shared with another integration", |b| {
        b.iter(|| render(black_box(&stored), &s, &ctx))
    });
    let key = sign::decode_secret(&sign::generate_secret()).expect("key");
    let body = vec![b'x'; 1024];
    c.bench_function("sign 1 KB (Standard Webhooks)", |b| {
        b.iter(|| {
            sign::signature_header(
                [key.as_slice()],
                "dlv_01m80p0qxddjvhpfq70s60g24q",
                1_795_341_600,
                black_box(&body),
            )
        })
    });
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
