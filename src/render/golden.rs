//! Golden tests: every `tests/golden/*.json` file holds integration settings and cases of a
//! canonical event with the exact payload expected for it. Adding a file adds a test case.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{payload, privacy, render, RenderContext};
use crate::model::event::{parse_event, EventKind, StoredEvent};
use crate::model::integration::IntegrationSpec;
use crate::model::settings::validate;
use crate::route::route;
use crate::security::links::Links;
use crate::security::ssrf::DestinationPolicy;

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

/// Renders a case: `None` when routing does not send the event at all.
pub fn render_case(settings: &Value, event: &Value) -> Option<Value> {
    let mut spec = json!({"name": "golden", "url": "https://crm.example.com/hook"});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), settings.as_object()) {
        s.extend(extra.clone());
    }
    let spec: IntegrationSpec =
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("settings: {e}"));
    let valid = validate(spec, false, DestinationPolicy::default())
        .unwrap_or_else(|e| panic!("settings: {e:?}"));
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
    let rendered = render(&stored, &valid, &ctx);
    // An event claimed body-only (its `data` not parsed) renders the very same request.
    let mut thin = stored.event.clone();
    thin.data = Default::default();
    let thin = StoredEvent {
        seq: 1,
        body: stored.body.clone(),
        event: thin,
    };
    let from_body = render(&thin, &valid, &ctx);
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
    if rendered.content_type == Some(super::JSON) {
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
            let got = render_case(&golden["integration"], &case["event"]);
            let got = got.unwrap_or(Value::Null);
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
