//! One example event of each subscribable type, taken from the golden files (the seeds' own
//! examples where they have one). A template is rendered over them when it is saved, the
//! console previews templates with them, and a test send sends one.

use std::sync::OnceLock;

use serde_json::Value;

use super::{render, RenderContext, RenderError, Rendered};
use crate::model::event::{parse_event, Event, EventKind, StoredEvent};
use crate::model::integration::ValidSpec;

/// (golden file, index of its case) holding each ingested type's example.
const SOURCES: [(EventKind, &str, usize); 6] = [
    (
        EventKind::CallState,
        include_str!("../../tests/golden/call-state-seed-004.json"),
        0,
    ),
    (
        EventKind::CallCompleted,
        include_str!("../../tests/golden/cdr-privacy.json"),
        0,
    ),
    (
        EventKind::CallUnanswered,
        include_str!("../../tests/golden/call-history-ivr-and-missed.json"),
        1,
    ),
    (
        EventKind::RecordingCompleted,
        include_str!("../../tests/golden/recording-v2-seed-000.json"),
        0,
    ),
    (
        EventKind::AnalysisCompleted,
        include_str!("../../tests/golden/call-history-seed-001.json"),
        0,
    ),
    (
        EventKind::IvrInput,
        include_str!("../../tests/golden/call-history-ivr-and-missed.json"),
        0,
    ),
];

fn ingested() -> &'static Vec<(EventKind, Event)> {
    static EVENTS: OnceLock<Vec<(EventKind, Event)>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        SOURCES
            .iter()
            .filter_map(|(kind, text, case)| {
                let golden: Value = serde_json::from_str(text).ok()?;
                let event = parse_event(golden["cases"][*case]["event"].clone()).ok()?;
                Some((*kind, event))
            })
            .collect()
    })
}

/// The example event of `kind` (for `call.unanswered`, a `call.completed` that was not
/// answered, as such calls are stored), owned by `tenant_id`, as stored.
pub fn event(kind: EventKind, tenant_id: &str) -> StoredEvent {
    let mut event = match ingested().iter().find(|(k, _)| *k == kind) {
        Some((_, e)) => e.clone(),
        None => Event {
            id: "ntf_01jdqxb2c3d4e5f6g7h8j9k0m2".into(),
            kind,
            tenant_id: String::new(),
            occurred_at_ms: 1_795_341_600_000,
            call_id: String::new(),
            data: match crate::model::alert::sample(kind) {
                Value::Object(m) => m,
                _ => Default::default(),
            },
        },
    };
    event.tenant_id = tenant_id.to_string();
    StoredEvent {
        seq: 0,
        body: event.canonical_json(),
        event,
    }
}

/// Renders the example of `kind` as an integration with `spec` would send it.
pub fn render_example(
    spec: &ValidSpec,
    kind: EventKind,
    tenant_id: &str,
) -> Result<Rendered, RenderError> {
    let stored = event(kind, tenant_id);
    let ctx = RenderContext {
        integration_id: "int_example",
        delivery_id: "dlv_example",
        trigger: kind,
        custom_data: spec.spec.custom_data.as_ref(),
        links: None,
        now_ms: stored.event.occurred_at_ms,
        cache: None,
    };
    render(&stored, spec, &ctx)
}

/// Renders the example of `kind`; the error says which example failed and where in the
/// template.
pub fn try_example(spec: &ValidSpec, kind: EventKind, tenant_id: &str) -> Result<Rendered, String> {
    render_example(spec, kind, tenant_id).map_err(|e| {
        format!(
            "`template` fails on the {} example event: {}",
            kind.as_str(),
            match e {
                RenderError::Template(t) => t.to_string(),
                other => other.to_string(),
            }
        )
    })
}

/// A template must render every type it subscribes to: each type's example is rendered, and
/// the first failure is the answer.
pub fn check_template(spec: &ValidSpec) -> Result<(), String> {
    if spec.spec.profile != super::Profile::Template {
        return Ok(());
    }
    for kind in &spec.spec.event_types {
        try_example(spec, *kind, "example-tenant")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscribable_type_has_an_example_of_its_type() {
        for kind in EventKind::SUBSCRIBABLE {
            let e = event(kind, "t1").event;
            let stored_as = if kind == EventKind::CallUnanswered {
                EventKind::CallCompleted
            } else {
                kind
            };
            assert_eq!(e.kind, stored_as, "{}", kind.as_str());
            assert_eq!(e.tenant_id, "t1");
            assert_eq!(
                kind == EventKind::CallUnanswered,
                e.is_unanswered_call(),
                "{}",
                kind.as_str()
            );
            assert!(!e.data.is_empty(), "{}", kind.as_str());
        }
    }
}
