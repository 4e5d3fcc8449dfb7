//! Golden tests: every `tests/golden/*.json` file holds integration settings and cases of a
//! canonical event with the exact payload expected for it — or, for batch integrations, of a
//! window (`{"boundary", "events"}`) with the headers and body of its first part. Adding a file
//! adds a test case.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{payload, privacy, render, RenderContext};
use crate::model::event::{parse_event, EventKind, StoredEvent};
use crate::model::integration::{IntegrationSpec, ValidSpec};
use crate::model::settings::validate;
use crate::route::route;
use crate::security::links::Links;
use crate::security::ssrf::DestinationPolicy;
use crate::store::{BatchWindow, Lease};

/// Fixed inputs so that signed URLs and ids are reproducible.
pub const NOW_MS: i64 = 1_795_341_600_000;
pub const LINK_KEY: [u8; 32] = [7; 32];
/// A real integration id, so that `triggerId` shows its GUID form.
pub const INTEGRATION_ID: &str = "int_01kbqh8n3m5d9w6x7y8z0a1b2c";

fn golden_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

fn valid_spec(settings: &Value) -> ValidSpec {
    let mut spec = json!({"name": "golden", "url": "https://crm.example.com/hook"});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), settings.as_object()) {
        s.extend(extra.clone());
    }
    let spec: IntegrationSpec =
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("settings: {e}"));
    validate(spec, false, DestinationPolicy::default())
        .unwrap_or_else(|e| panic!("settings: {e:?}"))
}

/// Renders a batch case: the window closing at `boundary` over `events` (the calls queued for
/// it), as its first part is sent — `{"headers": {profile headers}, "body": …}`.
pub fn render_window(settings: &Value, case: &Value) -> Value {
    let valid = valid_spec(settings);
    let boundary = crate::time::parse_rfc3339_ms(case["boundary"].as_str().unwrap_or_default())
        .unwrap_or_else(|| panic!("boundary"));
    let d = &valid.spec.delivery;
    let (interval, delay) = (
        d.interval_s.unwrap_or(300) as i64 * 1000,
        d.delay_s.unwrap_or(0) as i64 * 1000,
    );
    let window = BatchWindow {
        integration_id: INTEGRATION_ID.into(),
        owner: "partner:golden".into(),
        boundary,
        cutoff: boundary - delay,
        window_start: boundary - delay - interval,
        feed: valid.spec.feed,
        render_item: super::window_item(&valid.spec),
        lease: Lease {
            owner: "golden".into(),
            until: 0,
        },
        now: NOW_MS,
    };
    let items: Vec<Value> = case["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| parse_event(e.clone()).unwrap_or_else(|e| panic!("event: {e}")))
        .map(|e| window.render_item.render(&e))
        .collect();
    let part = crate::store::shared::batch_parts(&window, &items)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no part"));
    let stored = StoredEvent {
        seq: 1,
        body: part.canonical_json(),
        event: part,
    };
    let links = Links::new("https://callhook.example.com", LINK_KEY);
    let ctx = RenderContext {
        integration_id: INTEGRATION_ID,
        delivery_id: "dlv_golden",
        trigger: EventKind::CdrBatch,
        custom_data: None,
        links: Some(&links),
        now_ms: NOW_MS,
        cache: None,
    };
    let rendered = render(&stored, &valid, &ctx).unwrap_or_else(|e| panic!("render: {e}"));
    let headers: serde_json::Map<String, Value> = rendered
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"headers": headers, "body": serde_json::from_slice::<Value>(&rendered.body).unwrap_or(Value::Null)})
}

/// Renders a case: `None` when routing does not send the event at all.
pub fn render_case(settings: &Value, event: &Value) -> Option<Value> {
    let valid = valid_spec(settings);
    let event = parse_event(event.clone()).unwrap_or_else(|e| panic!("event: {e}"));
    let trigger: EventKind = route(&event, &valid)?;
    let stored = StoredEvent {
        seq: 1,
        body: event.canonical_json(),
        event,
    };
    let links = Links::new("https://callhook.example.com", LINK_KEY);
    let ctx = RenderContext {
        integration_id: INTEGRATION_ID,
        delivery_id: "dlv_golden",
        trigger,
        custom_data: valid.spec.custom_data.as_ref(),
        links: Some(&links),
        now_ms: NOW_MS,
        cache: None,
    };
    let rendered = render(&stored, &valid, &ctx).unwrap_or_else(|e| panic!("render: {e}"));
    // An event claimed body-only (its `data` not parsed) renders the very same request.
    let mut thin = stored.event.clone();
    thin.data = Default::default();
    let thin = StoredEvent {
        seq: 1,
        body: stored.body.clone(),
        event: thin,
    };
    let from_body = render(&thin, &valid, &ctx).unwrap_or_else(|e| panic!("render: {e}"));
    assert_eq!(
        (&from_body.body, &from_body.query),
        (&rendered.body, &rendered.query),
        "a body-only event renders like the parsed one"
    );
    // The encoded body must be the payload object (with privacy applied), byte for byte.
    let mut object = payload(&stored, &valid, &ctx);
    privacy::apply(
        &mut object,
        valid.spec.profile,
        &stored.event,
        trigger,
        &valid.spec.privacy,
    );
    let value = match (&rendered.query, rendered.content_type) {
        (Some(q), _) => json!({"query": q}),
        (None, Some(super::FORM)) => json!({"form": String::from_utf8_lossy(&rendered.body)}),
        _ => serde_json::from_slice(&rendered.body).unwrap_or(Value::Null),
    };
    // A template's body is its own shape, made from the payload object.
    if rendered.content_type == Some(super::JSON) && valid.spec.profile != super::Profile::Template
    {
        // Byte for byte, so spliced bodies keep the field order of a plain serialisation.
        // (`canonical` splices the stored body, whose order is its own.)
        if valid.spec.profile != super::Profile::Canonical {
            assert_eq!(
                String::from_utf8_lossy(&rendered.body),
                serde_json::to_string(&object).unwrap_or_default(),
                "the JSON body is the payload object serialised"
            );
        }
        assert_eq!(
            value,
            Value::Object(object),
            "the JSON body is the payload object"
        );
    }
    Some(value)
}

/// `CALLHOOK_GOLDEN_BLESS=1` writes what renders into each case's `expected` instead of
/// comparing; review the diff before committing it.
#[test]
fn every_golden_payload_renders_exactly() {
    let files = golden_files();
    assert!(!files.is_empty(), "golden files are missing: {files:?}");
    let bless = std::env::var("CALLHOOK_GOLDEN_BLESS").is_ok_and(|v| v == "1");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let mut golden: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let cases = golden["cases"].as_array().cloned().unwrap_or_default();
        assert!(!cases.is_empty(), "{}: no cases", file.display());
        for (i, case) in cases.iter().enumerate() {
            let got = if case.get("window").is_some() {
                render_window(&golden["integration"], &case["window"])
            } else {
                render_case(&golden["integration"], &case["event"]).unwrap_or(Value::Null)
            };
            if bless {
                golden["cases"][i]["expected"] = got;
                continue;
            }
            let want = &case["expected"];
            assert_eq!(
                &got,
                want,
                "{} case {i}: got\n{}",
                file.display(),
                serde_json::to_string_pretty(&got).unwrap_or_default()
            );
        }
        if bless {
            // The files' own layout: one-space indent, no final newline.
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            serde::Serialize::serialize(&golden, &mut ser).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&file, out).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
