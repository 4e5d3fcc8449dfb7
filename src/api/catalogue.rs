//! `GET /v1/event-types`: the catalogue of what callhook takes and sends. Every event type with
//! the JSON Schema of its `data`, every payload profile with the JSON Schema of its payload and
//! an example — the schemas generated from the Rust types that describe them
//! ([`crate::render::shapes`], [`crate::model::event_data`], [`crate::model::alert`]), the
//! examples taken from the golden files the renderers are tested against.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::AppState;
use crate::auth::Principal;
use crate::error::ErrorBody;
use crate::model::alert::{DeliveryExhausted, IntegrationAlert};
use crate::model::event::EventKind;
use crate::model::event_data::{
    AnalysisData, CallCompletedData, CallStateData, IvrData, RecordingData,
};
use crate::model::profile::Profile;
use crate::render::shapes::*;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/event-types", get(catalogue))
}

/// The JSON Schema dialect of every schema in the catalogue.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// A type's schema with the schemas it refers to, for an OpenAPI document's components.
fn components_of<T: ToSchema>(into: &mut Map<String, Value>) -> String {
    let mut all = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut all);
    for (name, schema) in all {
        into.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    T::name().into_owned()
}

/// Adds the OpenAPI 3.1 `webhooks` section to the API's document: one entry per payload
/// profile and per operational event, each with the payload's schema (in the components), the
/// signature headers and an example.
pub fn add_webhooks(doc: &mut Value) {
    let mut schemas = Map::new();
    let mut hooks = Map::new();
    let headers = json!([
        {"name": "webhook-id", "in": "header", "required": true, "schema": {"type": "string"},
         "description": "The delivery's id, the same on every retry: deduplicate on it."},
        {"name": "webhook-timestamp", "in": "header", "required": true, "schema": {"type": "string"},
         "description": "Unix seconds of this attempt."},
        {"name": "webhook-signature", "in": "header", "required": false, "schema": {"type": "string"},
         "description": "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated during a rotation (Standard Webhooks)."},
        {"name": "callhook-event-type", "in": "header", "required": true, "schema": {"type": "string"}},
        {"name": "callhook-attempt", "in": "header", "required": true, "schema": {"type": "string"}}
    ]);
    let post = |summary: String, schema: Value, example: Value| {
        json!({"post": {
            "summary": summary,
            "parameters": headers,
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": schema, "example": example}}},
            "responses": {"200": {"description": "Any 2xx acknowledges the delivery; 410 disables the integration; anything else is retried per its policy."}}
        }})
    };
    for p in PROFILES {
        let name = match p {
            Profile::Canonical => components_of::<CanonicalPayload>(&mut schemas),
            Profile::RecordingV2 => components_of::<RecordingV2Payload>(&mut schemas),
            Profile::RecordingV1 => components_of::<RecordingV1Payload>(&mut schemas),
            Profile::CallHistory => components_of::<CallHistoryPayload>(&mut schemas),
            Profile::Cdr => components_of::<CdrPayload>(&mut schemas),
            Profile::CallState => components_of::<CallStatePayload>(&mut schemas),
            Profile::CdrBatch => components_of::<CdrBatchPayload>(&mut schemas),
            Profile::WebexCdr => components_of::<WebexCdrPayload>(&mut schemas),
            Profile::Template => components_of::<TemplatePayload>(&mut schemas),
        };
        let feeds: Vec<&str> = p.feeds().iter().map(|k| k.as_str()).collect();
        let summary = format!("Profile `{}`: {}", p.as_str(), feeds.join(", "));
        let schema = json!({"$ref": format!("#/components/schemas/{name}")});
        hooks.insert(p.as_str().into(), post(summary, schema, example(p)));
    }
    let alert = components_of::<IntegrationAlert>(&mut schemas);
    let exhausted = components_of::<DeliveryExhausted>(&mut schemas);
    for k in EventKind::OPERATIONAL {
        let data = if k == EventKind::DeliveryExhausted {
            &exhausted
        } else {
            &alert
        };
        let schema = json!({"allOf": [
            {"$ref": "#/components/schemas/CanonicalPayload"},
            {"properties": {"data": {"$ref": format!("#/components/schemas/{data}")}}}
        ]});
        let example = json!({"delivery_id": "dlv_01jdqxb2c3d4e5f6g7h8j9k0m1", "id": "ntf_01jdqxb2c3d4e5f6g7h8j9k0m2",
            "type": k.as_str(), "tenant_id": "acme", "occurred_at": "2026-11-22T10:02:00.000Z",
            "data": crate::model::alert::sample(k)});
        let summary = format!("`{}` (profile canonical): {}", k.as_str(), describe(k));
        hooks.insert(k.as_str().into(), post(summary, schema, example));
    }
    if let Some(doc) = doc.as_object_mut() {
        let components = doc.entry("components").or_insert_with(|| json!({}));
        if let Some(c) = components.as_object_mut() {
            let all = c.entry("schemas").or_insert_with(|| json!({}));
            if let Some(all) = all.as_object_mut() {
                all.extend(schemas);
            }
        }
        doc.insert("webhooks".into(), Value::Object(hooks));
    }
}

/// States in the API document what ingest checks of an event, so that a reader (or a request
/// generator) sees no more than the server takes: one variant of `EventIn` per ingestible type,
/// its `type` a constant and its `data` that type's checked view, and never `events` beside
/// `type` (a body is an event or a batch, not both).
pub fn add_event_variants(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(base) = schemas.get("EventIn").cloned() else {
        return;
    };
    let mut variants = Vec::new();
    for k in EventKind::EVERY.into_iter().filter(|k| k.is_ingestible()) {
        let data = match k {
            EventKind::CallState => components_of::<CallStateData>(schemas),
            EventKind::CallCompleted => components_of::<CallCompletedData>(schemas),
            EventKind::RecordingCompleted => components_of::<RecordingData>(schemas),
            EventKind::AnalysisCompleted => components_of::<AnalysisData>(schemas),
            EventKind::IvrInput => components_of::<IvrData>(schemas),
            _ => continue,
        };
        let mut variant = base.clone();
        if let Some(props) = variant.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("type".into(), json!({"const": k.as_str()}));
            let described = props
                .get("data")
                .and_then(|d| d.get("description"))
                .cloned();
            let mut reference = json!({"$ref": format!("#/components/schemas/{data}")});
            if let Some(d) = described {
                reference["description"] = d;
            }
            props.insert("data".into(), reference);
        }
        variant["title"] = json!(k.as_str());
        variants.push(variant);
    }
    schemas.insert(
        "EventIn".into(),
        json!({
            "description": "One event: `data` as its type describes it (sources may add fields).",
            "oneOf": variants,
            "not": {"required": ["events"]},
        }),
    );
}

/// A type's schema as a standalone JSON Schema: the schemas it refers to under `$defs`.
fn standalone<T: ToSchema>() -> Value {
    let mut defs = Map::new();
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    for (name, schema) in nested {
        defs.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    let mut root = match serde_json::to_value(T::schema()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    root.insert("$schema".into(), json!(DIALECT));
    root.insert("title".into(), json!(T::name()));
    if !defs.is_empty() {
        root.insert("$defs".into(), Value::Object(defs));
    }
    // utoipa writes references for an OpenAPI document's components.
    let text = Value::Object(root)
        .to_string()
        .replace("#/components/schemas/", "#/$defs/");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The schema of a profile's payload, and the name of its type.
pub fn payload_schema(p: Profile) -> (String, Value) {
    fn of<T: ToSchema>() -> (String, Value) {
        (T::name().into_owned(), standalone::<T>())
    }
    match p {
        Profile::Canonical => of::<CanonicalPayload>(),
        Profile::RecordingV2 => of::<RecordingV2Payload>(),
        Profile::RecordingV1 => of::<RecordingV1Payload>(),
        Profile::CallHistory => of::<CallHistoryPayload>(),
        Profile::Cdr => of::<CdrPayload>(),
        Profile::CallState => of::<CallStatePayload>(),
        Profile::CdrBatch => of::<CdrBatchPayload>(),
        Profile::WebexCdr => of::<WebexCdrPayload>(),
        Profile::Template => of::<TemplatePayload>(),
    }
}

/// The schema of an event type's `data`: the checked view of an ingested type (sources may add
/// fields), or the exact shape of an operational one.
fn data_schema(k: EventKind) -> Value {
    match k {
        EventKind::CallState => standalone::<CallStateData>(),
        EventKind::CallCompleted | EventKind::CallUnanswered => standalone::<CallCompletedData>(),
        EventKind::RecordingCompleted => standalone::<RecordingData>(),
        EventKind::AnalysisCompleted => standalone::<AnalysisData>(),
        EventKind::IvrInput => standalone::<IvrData>(),
        EventKind::DeliveryExhausted => standalone::<DeliveryExhausted>(),
        k if k.is_operational() => standalone::<IntegrationAlert>(),
        _ => json!({"$schema": DIALECT, "type": "object"}),
    }
}

/// The golden file each profile's example comes from (its first case).
pub const EXAMPLES: [(Profile, &str); 9] = [
    (
        Profile::Canonical,
        include_str!("../../tests/golden/truncate-canonical.json"),
    ),
    (
        Profile::RecordingV2,
        include_str!("../../tests/golden/recording-v2-seed-000.json"),
    ),
    (
        Profile::RecordingV1,
        include_str!("../../tests/golden/recording-v1-seed-000.json"),
    ),
    (
        Profile::CallHistory,
        include_str!("../../tests/golden/call-history-seed-001.json"),
    ),
    (
        Profile::Cdr,
        include_str!("../../tests/golden/cdr-seed-002.json"),
    ),
    (
        Profile::CallState,
        include_str!("../../tests/golden/call-state-seed-004.json"),
    ),
    (
        Profile::CdrBatch,
        include_str!("../../tests/golden/truncate-cdr-batch.json"),
    ),
    (
        Profile::WebexCdr,
        include_str!("../../tests/golden/webex-cdr-batch.json"),
    ),
    (
        Profile::Template,
        include_str!("../../tests/golden/template-hubspot.json"),
    ),
];

/// A profile's example payload: the first case of its golden file (a batch's body).
pub fn example(p: Profile) -> Value {
    let Some((_, text)) = EXAMPLES.iter().find(|(q, _)| *q == p) else {
        return Value::Null;
    };
    let golden: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let expected = &golden["cases"][0]["expected"];
    match expected.get("body") {
        Some(body) if golden["cases"][0].get("window").is_some() => body.clone(),
        _ => expected.clone(),
    }
}

const PROFILES: [Profile; 9] = [
    Profile::Canonical,
    Profile::RecordingV2,
    Profile::RecordingV1,
    Profile::CallHistory,
    Profile::Cdr,
    Profile::CallState,
    Profile::CdrBatch,
    Profile::WebexCdr,
    Profile::Template,
];

fn describe(k: EventKind) -> &'static str {
    match k {
        EventKind::CallState => "a call's state changed (seed 004); sent in order per call",
        EventKind::CallCompleted => "a call ended: its record (CDR)",
        EventKind::CallUnanswered => {
            "derived: a call.completed with answered = false (a missed call)"
        }
        EventKind::RecordingCompleted => "a call's recording is ready; its files are links",
        EventKind::AnalysisCompleted => "speech analysis of a call finished",
        EventKind::IvrInput => "a caller's input at an IVR",
        EventKind::CdrBatch => "internal",
        EventKind::IntegrationFailing => "operational: an integration started failing",
        EventKind::IntegrationDisabled => "operational: an integration was disabled",
        EventKind::IntegrationRecovered => "operational: a failing integration delivered again",
        EventKind::DeliveryExhausted => {
            "operational: a delivery used up its retries or its endpoint is gone"
        }
    }
}

/// The whole catalogue, built once.
static CATALOGUE: LazyLock<String> = LazyLock::new(|| {
    let event_types: Vec<Value> = EventKind::SUBSCRIBABLE
        .iter()
        .map(|&k| {
            let profiles: Vec<&str> = PROFILES
                .iter()
                .filter(|p| p.feeds().contains(&k))
                .map(|p| p.as_str())
                .collect();
            json!({
                "type": k.as_str(), "description": describe(k),
                "ingestible": k.is_ingestible(), "operational": k.is_operational(),
                "profiles": profiles, "data_schema": data_schema(k),
            })
        })
        .collect();
    let profiles: Vec<Value> = PROFILES
        .iter()
        .map(|&p| {
            let (name, schema) = payload_schema(p);
            let feeds: Vec<&str> = p.feeds().iter().map(|k| k.as_str()).collect();
            json!({
                "profile": p.as_str(), "event_types": feeds, "batch": p.collects(),
                "schema_name": name, "schema": schema, "example": example(p),
            })
        })
        .collect();
    json!({"event_types": event_types, "profiles": profiles}).to_string()
});

/// The catalogue: every event type and every payload profile, with their JSON Schemas.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // the document's shape; the body is built once as JSON
pub(crate) struct Catalogue {
    /// `{type, description, ingestible, operational, profiles, data_schema}` per event type.
    #[schema(value_type = Vec<Object>)]
    event_types: Vec<Value>,
    /// `{profile, event_types, batch, schema_name, schema, example}` per profile.
    #[schema(value_type = Vec<Object>)]
    profiles: Vec<Value>,
}

#[utoipa::path(get, path = "/v1/event-types", tag = "catalogue",
    responses((status = 200, body = Catalogue), (status = 401, body = ErrorBody)))]
pub(crate) async fn catalogue(_p: Principal) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::render::JSON)],
        CATALOGUE.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_and_subscribable_type_has_a_schema_whose_references_resolve() {
        let cat: Value = serde_json::from_str(&CATALOGUE).unwrap_or(Value::Null);
        assert_eq!(cat["profiles"].as_array().map(Vec::len), Some(9));
        assert_eq!(cat["event_types"].as_array().map(Vec::len), Some(10));
        let text = CATALOGUE.as_str();
        assert!(
            !text.contains("#/components/"),
            "references left for OpenAPI"
        );
        for p in cat["profiles"].as_array().into_iter().flatten() {
            let schema = &p["schema"];
            assert_eq!(schema["$schema"], DIALECT);
            for r in schema.to_string().split("\"$ref\":\"#/$defs/").skip(1) {
                let name = r.split('"').next().unwrap_or_default();
                assert!(
                    schema["$defs"].get(name).is_some(),
                    "{}: {name}",
                    p["profile"]
                );
            }
            assert!(p["example"].is_object(), "{}", p["profile"]);
        }
    }

    /// The catalogue's types join the API document's components by name: a name the API
    /// already used for another type would silently replace it.
    #[test]
    fn the_catalogue_adds_components_without_replacing_the_apis_own() {
        let before = serde_json::to_value(super::super::openapi::document()).unwrap_or_default();
        let mut after = before.clone();
        add_webhooks(&mut after);
        add_event_variants(&mut after);
        let (Some(old), Some(new)) = (
            before
                .pointer("/components/schemas")
                .and_then(Value::as_object),
            after
                .pointer("/components/schemas")
                .and_then(Value::as_object),
        ) else {
            panic!("no components");
        };
        for (name, schema) in old {
            if name != "EventIn" {
                assert_eq!(Some(schema), new.get(name), "{name} was replaced");
            }
        }
        let variants = new["EventIn"]["oneOf"].as_array().map(Vec::len);
        assert_eq!(variants, Some(5), "one variant per ingestible type");
        for r in after
            .to_string()
            .split("\"$ref\":\"#/components/schemas/")
            .skip(1)
        {
            let name = r.split('"').next().unwrap_or_default();
            assert!(new.contains_key(name), "{name} is referred to but missing");
        }
    }
}
