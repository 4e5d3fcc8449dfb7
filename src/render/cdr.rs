//! `cdr` (seed 002): `{"triggerId", "id", "tenantId", "cdr": {…}, "customData"}`.
//!
//! Durations are whole seconds, flags are 1/0, `dir` and `type` are codes. The inner record
//! ([`record`]) is also the item of the partner `cdr-batch` feed.
//!
//! `id` is the entity the event is about. Seed 002 says "user ID or tenant ID"; callhook sends
//! the tenant id, so that no user identifier appears outside the fields privacy rules govern.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::fields::{at, bool_at, epoch_ms, f64_at, flag, iso_offset, put, secs, str_at, string};
use super::RenderContext;
use crate::model::event::Event;

pub fn render(event: &Event, ctx: &RenderContext) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("triggerId".into(), json!(trigger_id(ctx.integration_id)));
    out.insert("id".into(), json!(event.tenant_id));
    out.insert("tenantId".into(), json!(event.tenant_id));
    out.insert(
        "cdr".into(),
        Value::Object(record(&event.call_id, &event.data)),
    );
    if let Some(cd) = ctx.custom_data {
        out.insert("customData".into(), Value::Object(cd.clone()));
    }
    out
}

/// The `cdr` object of the payload with the privacy rules applied, serialised. It is the same
/// for every integration with the same rules, so it can be serialised once per event and rules
/// (see [`super::cache`]) and spliced into each integration's payload by [`splice`].
pub fn record_json(event: &Event, rules: &super::privacy::Rules) -> Bytes {
    let mut wrapper = Map::new();
    wrapper.insert(
        "cdr".into(),
        Value::Object(record(&event.call_id, &event.data)),
    );
    // Every privacy path of this profile lies under `cdr`.
    super::privacy::apply(
        &mut wrapper,
        super::Profile::Cdr,
        event,
        crate::model::event::EventKind::CallCompleted,
        rules,
    );
    let cdr = wrapper.get("cdr").cloned().unwrap_or(Value::Null);
    Bytes::from(serde_json::to_vec(&cdr).unwrap_or_default())
}

/// The JSON payload `{"triggerId", "id", "tenantId", "cdr", "customData"}` around a record
/// serialised by [`record_json`]: byte for byte what [`render`] serialises.
pub fn splice(
    integration_id: &str,
    tenant_id: &str,
    record: &[u8],
    custom_data: Option<&Map<String, Value>>,
) -> Bytes {
    let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = Vec::with_capacity(record.len() + 128);
    out.extend_from_slice(b"{\"triggerId\":");
    out.extend_from_slice(text(&trigger_id(integration_id)).as_bytes());
    out.extend_from_slice(b",\"id\":");
    out.extend_from_slice(text(tenant_id).as_bytes());
    out.extend_from_slice(b",\"tenantId\":");
    out.extend_from_slice(text(tenant_id).as_bytes());
    out.extend_from_slice(b",\"cdr\":");
    out.extend_from_slice(record);
    if let Some(cd) = custom_data {
        out.extend_from_slice(b",\"customData\":");
        out.extend_from_slice(&serde_json::to_vec(cd).unwrap_or_default());
    }
    out.push(b'}');
    Bytes::from(out)
}

/// Seed 002's `triggerId` is a GUID: the integration's id in that form.
fn trigger_id(integration_id: &str) -> String {
    crate::model::ids::guid(integration_id).unwrap_or_else(|| integration_id.to_string())
}

fn direction_code(d: Option<&str>) -> i64 {
    match d {
        Some("internal") => 1,
        Some("inbound") => 2,
        Some("outbound") => 3,
        Some("both") => 4,
        _ => 0,
    }
}

fn scope_code(s: Option<&str>) -> i64 {
    match s {
        Some("internal") => 1,
        Some("external") => 2,
        _ => 0,
    }
}

/// The seed's CDR record from a canonical call record (`data` of `call.completed`).
pub fn record(call_id: &str, d: &Map<String, Value>) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("id".into(), json!(call_id));
    c.insert("dType".into(), json!("CloudSessionCdr"));
    c.insert("sVer".into(), json!(1));
    put(&mut c, "pbxId", string(str_at(d, "pbx.id")));
    put(&mut c, "pbxName", string(str_at(d, "pbx.name")));
    put(&mut c, "tz", string(str_at(d, "timezone")));
    for (key, path) in [
        ("start", "started_at"),
        ("answer", "answered_at"),
        ("end", "ended_at"),
    ] {
        put(
            &mut c,
            key,
            str_at(d, path).and_then(iso_offset).map(Value::String),
        );
    }
    let dur = match (
        str_at(d, "started_at").and_then(epoch_ms),
        str_at(d, "ended_at").and_then(epoch_ms),
    ) {
        (Some(s), Some(e)) if e >= s => Some(secs((e - s) as f64)),
        _ => None,
    };
    put(&mut c, "dur", dur.map(Value::from));
    for (key, path) in [
        ("ring", "ring_ms"),
        ("talk", "talk_ms"),
        ("hold", "hold_ms"),
        ("park", "park_ms"),
    ] {
        put(&mut c, key, f64_at(d, path).map(|ms| Value::from(secs(ms))));
    }
    for (key, path) in [
        ("lost", "lost"),
        ("lostInPark", "lost_in_park"),
        ("aban", "abandoned"),
        ("ans", "answered"),
        ("short", "short"),
        ("t2t", "trunk_to_trunk"),
    ] {
        put(&mut c, key, flag(bool_at(d, path)));
    }
    let recordings = at(d, "recording_ids").and_then(Value::as_array);
    c.insert(
        "hasRec".into(),
        json!(recordings.is_some_and(|r| !r.is_empty()) as u8),
    );
    put(&mut c, "rate", flag(bool_at(d, "rating.rated")));
    put(&mut c, "cause", at(d, "cause").cloned());
    c.insert("dir".into(), json!(direction_code(str_at(d, "direction"))));
    c.insert("type".into(), json!(scope_code(str_at(d, "scope"))));
    for (key, path) in [
        ("cliNum", "caller.number"),
        ("cliName", "caller.name"),
        ("cliLoc", "caller.location"),
        ("cliArea", "caller.area"),
        ("cliState", "caller.state"),
        ("cliCtry", "caller.country"),
        ("ddiNum", "did.number"),
        ("ddiName", "did.name"),
    ] {
        put(&mut c, key, at(d, path).cloned());
    }
    // {first,last} ringing, answering and last answering: device, user, agent.
    for (prefix, src) in [
        ("fRng", "first_ringing"),
        ("lRng", "last_ringing"),
        ("ans", "answered_by"),
        ("lAns", "last_answered_by"),
    ] {
        for (kind, sub) in [("Dev", "device"), ("Usr", "user"), ("Agt", "agent")] {
            put(
                &mut c,
                &format!("{prefix}{kind}Num"),
                at(d, &format!("{src}.{sub}.number")).cloned(),
            );
            put(
                &mut c,
                &format!("{prefix}{kind}Name"),
                at(d, &format!("{src}.{sub}.name")).cloned(),
            );
        }
    }
    put(&mut c, "rteID", at(d, "route.id").cloned());
    put(&mut c, "rteName", at(d, "route.name").cloned());
    put(
        &mut c,
        "fRngGroupName",
        at(d, "first_ringing.group.name").cloned(),
    );
    put(
        &mut c,
        "lRngGroupName",
        at(d, "last_ringing.group.name").cloned(),
    );
    put(
        &mut c,
        "ansGroupName",
        at(d, "answered_by.group.name").cloned(),
    );
    put(&mut c, "rateCost", at(d, "rating.cost").cloned());
    put(&mut c, "rateBand", at(d, "rating.band").cloned());
    put(&mut c, "rateName", at(d, "rating.name").cloned());
    put(
        &mut c,
        "recordingIds",
        recordings.map(|r| Value::Array(r.clone())),
    );
    if let Some(matches) = at(d, "directory_matches").and_then(Value::as_array) {
        c.insert(
            "directoryMatches".into(),
            Value::Array(matches.iter().filter_map(directory_match).collect()),
        );
    }
    if let Some(tags) = at(d, "tags").and_then(Value::as_object) {
        c.insert("tags".into(), Value::Object(tags.clone()));
    }
    c
}

const CONTACT_FIELDS: [(&str, &str); 10] = [
    ("title", "title"),
    ("full_name", "fullName"),
    ("company_name", "companyName"),
    ("job_title", "jobTitle"),
    ("phone1", "phone1"),
    ("phone2", "phone2"),
    ("phone3", "phone3"),
    ("phone4", "phone4"),
    ("email", "email"),
    ("crm_id", "crmId"),
];

fn directory_match(m: &Value) -> Option<Value> {
    let m = m.as_object()?;
    let mut out = Map::new();
    for (from, to) in [
        ("dir_name", "dirName"),
        ("dir_id", "dirId"),
        ("dir_type", "dirType"),
        ("contact_id", "contactId"),
    ] {
        put(&mut out, to, at(m, from).cloned());
    }
    if let Some(f) = at(m, "fields").and_then(Value::as_object) {
        let mut fields = Map::new();
        for (from, to) in CONTACT_FIELDS {
            put(&mut fields, to, at(f, from).cloned());
        }
        for i in 1..=10 {
            let k = format!("field{i}");
            put(&mut fields, &k, at(f, &k).cloned());
        }
        out.insert("fields".into(), Value::Object(fields));
    }
    Some(Value::Object(out))
}

/// One item of a `cdr-batch` feed: the CDR record with `orgId`, privacy rules applied as for the
/// `cdr` profile (each item by its own call's direction).
pub fn batch_item(
    event: &Event,
    rules: &std::collections::BTreeMap<
        crate::model::integration::PrivacyTarget,
        crate::model::integration::PrivacyRule,
    >,
) -> Value {
    let mut wrapped = Map::new();
    wrapped.insert(
        "cdr".into(),
        Value::Object(record(&event.call_id, &event.data)),
    );
    super::privacy::apply(
        &mut wrapped,
        super::Profile::Cdr,
        event,
        crate::model::event::EventKind::CallCompleted,
        rules,
    );
    let mut item = match wrapped.remove("cdr") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    item.insert("orgId".into(), json!(event.tenant_id));
    Value::Object(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::{parse_event, EventKind};

    #[test]
    fn the_spliced_payload_is_the_serialised_one_with_custom_data_and_odd_ids() {
        let event = parse_event(
            json!({"id": "e", "type": "call.completed", "tenant_id": "t-\"quoted\"",
            "occurred_at": "2026-11-22T10:00:00Z", "call_id": "c1",
            "data": {"answered": true, "direction": "inbound", "talk_ms": 61000,
                     "caller": {"number": "+441610000001"}}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let custom = json!({"crm": "acme", "n": [1, 2]});
        let custom = custom.as_object();
        let ctx = RenderContext {
            integration_id: "int_ü",
            delivery_id: "d",
            trigger: EventKind::CallCompleted,
            custom_data: custom,
            links: None,
            now_ms: 0,
            cache: None,
        };
        let whole = serde_json::to_vec(&render(&event, &ctx)).unwrap_or_default();
        let record = record_json(&event, &Default::default());
        assert_eq!(
            String::from_utf8_lossy(&splice("int_ü", &event.tenant_id, &record, custom)),
            String::from_utf8_lossy(&whole)
        );
    }
}
