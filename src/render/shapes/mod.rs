//! The JSON payload object each profile sends, as types: they describe the payloads (for a
//! JSON Schema of each), they do not render them — `render` builds the payloads as JSON maps.
//!
//! Two kinds of optional field, as the renderers write them:
//! - always present, maybe `null` (`insert`, `put_or_null`): `Option<T>` without serde
//!   attributes, documented "Always present; null when …";
//! - sometimes present (`put`, which leaves out what is unknown; conditional inserts; fields a
//!   privacy rule can remove): `Option<T>` with `default` and `skip_serializing_if`, documented
//!   "Sometimes present: …".
//!
//! Values copied from the event without a type checked at ingest (see `model::event_data`) are
//! `serde_json::Value`. A privacy rule's mask or truncation only edits strings, so it never
//! changes a field's type.

mod call_history;
mod call_state;
mod canonical;
mod cdr;
mod cdr_batch;
mod recording;
mod webex;

pub use call_history::CallHistoryPayload;
pub use call_state::CallStatePayload;
pub use canonical::{CanonicalPayload, TemplatePayload};
pub use cdr::CdrPayload;
pub use cdr_batch::CdrBatchPayload;
pub use recording::{RecordingV1Payload, RecordingV2Payload};
pub use webex::WebexCdrPayload;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;

    fn parses_as<T: DeserializeOwned>(payload: Value) -> Result<(), String> {
        serde_json::from_value::<T>(payload)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Reads `payload` as the root type of `profile`.
    fn describes(profile: &str, payload: Value) -> Result<(), String> {
        match profile {
            "canonical" => parses_as::<CanonicalPayload>(payload),
            "recording.v1" => parses_as::<RecordingV1Payload>(payload),
            "recording.v2" => parses_as::<RecordingV2Payload>(payload),
            "call-history" => parses_as::<CallHistoryPayload>(payload),
            "cdr" => parses_as::<CdrPayload>(payload),
            "call-state" => parses_as::<CallStatePayload>(payload),
            "cdr-batch" => parses_as::<CdrBatchPayload>(payload),
            "webex-cdr" => parses_as::<WebexCdrPayload>(payload),
            "template" => parses_as::<TemplatePayload>(payload),
            other => Err(format!("no type for profile `{other}`")),
        }
    }

    #[test]
    fn every_golden_payload_is_described_by_its_profiles_type() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        let mut checked = 0;
        let mut failures = Vec::new();
        for file in &files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let text =
                std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let golden: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let settings = &golden["integration"];
            let setting = |key: &str| settings[key].as_str().map(str::to_ascii_lowercase);
            // Form bodies and GET query strings are encodings of the object, not JSON.
            let encoded = matches!(setting("format").as_deref(), Some("form" | "get"))
                || setting("method").as_deref() == Some("get");
            if encoded {
                continue;
            }
            let profile = settings["profile"].as_str().unwrap_or("canonical");
            let cases = golden["cases"].as_array().cloned().unwrap_or_default();
            for (i, case) in cases.into_iter().enumerate() {
                let expected = if case.get("window").is_some() {
                    &case["expected"]["body"]
                } else {
                    &case["expected"]
                };
                // `null`: routing does not send the event at all.
                if !expected.is_object() {
                    continue;
                }
                checked += 1;
                if let Err(e) = describes(profile, expected.clone()) {
                    failures.push(format!("{name} case {i} ({profile}): {e}"));
                }
            }
        }
        assert!(checked > 0, "no golden payload found in {}", dir.display());
        assert!(
            failures.is_empty(),
            "golden payloads their profile's type does not describe:\n{}",
            failures.join("\n")
        );
    }
}
