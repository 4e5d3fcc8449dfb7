//! FreeSWITCH `mod_json_cdr` posts → callhook `call.completed` events. Pure.
//!
//! The module posts one JSON document per channel at hangup: `variables` (string values,
//! URL-encoded unless `encode-values` is off), `callflow` (an array, or one object in older
//! versions) whose `caller_profile` holds the numbers, and `channel_data`. With `encode=true` the
//! body is form-encoded as `cdr=<json>`, with `encode=base64` as `cdr=<base64 json>`. Only
//! A-legs are expected (`log-b-leg=false`, the module's default): one record per call.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

/// The JSON document of a post: a JSON body, or the `cdr` field of a form body (plain or
/// base64).
pub fn document(content_type: &str, body: &[u8]) -> Result<Value, String> {
    let json_text: Vec<u8> = if content_type.starts_with("application/x-www-form-urlencoded") {
        let cdr = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "cdr")
            .map(|(_, v)| v.into_owned())
            .ok_or("a form-encoded post needs the `cdr` field (mod_json_cdr with encode=true)")?;
        let trimmed = cdr.trim();
        if trimmed.starts_with('{') {
            trimmed.as_bytes().to_vec()
        } else {
            STANDARD
                .decode(trimmed)
                .map_err(|_| "`cdr` is neither JSON nor base64-encoded JSON")?
        }
    } else {
        body.to_vec()
    };
    serde_json::from_slice(&json_text).map_err(|e| format!("the CDR is not valid JSON: {e}"))
}

fn var(vars: &Map<String, Value>, name: &str) -> Option<String> {
    let raw = vars.get(name)?.as_str()?;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| raw.to_string());
    Some(decoded).filter(|v| !v.is_empty())
}

/// Microseconds since the epoch from `<name>_uepoch`, else seconds from `<name>_epoch`; 0 is
/// FreeSWITCH's "never" (e.g. `answer_epoch` of a call nobody answered).
fn time_us(vars: &Map<String, Value>, name: &str) -> Option<i64> {
    let us = var(vars, &format!("{name}_uepoch")).and_then(|v| v.parse::<i64>().ok());
    let s = var(vars, &format!("{name}_epoch")).and_then(|v| v.parse::<i64>().ok());
    us.or(s.map(|s| s * 1_000_000)).filter(|t| *t > 0)
}

fn caller_profile(doc: &Value) -> Option<&Map<String, Value>> {
    let flow = doc.get("callflow")?;
    let first = match flow {
        Value::Array(a) => a.first()?,
        other => other,
    };
    first.get("caller_profile")?.as_object()
}

/// The callhook event for one CDR document of tenant `tenant_id`.
pub fn to_event(doc: &Value, tenant_id: &str) -> Result<Value, String> {
    let vars = doc
        .get("variables")
        .and_then(Value::as_object)
        .ok_or("the CDR has no `variables` object; is this a mod_json_cdr post?")?;
    let uuid = var(vars, "uuid").ok_or("the CDR has no `variables.uuid`")?;
    let call_id = var(vars, "call_uuid").unwrap_or_else(|| uuid.clone());
    let start = time_us(vars, "start").ok_or("the CDR has no `start_epoch`")?;
    let end = time_us(vars, "end").unwrap_or(start);
    let answer = time_us(vars, "answer");
    let ms = |us: i64| us.div_euclid(1000);
    let iso = |us: i64| crate::time::format_ms(ms(us));
    let profile = caller_profile(doc);
    let prof = |k: &str| {
        profile
            .and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .filter(|v| !v.is_empty())
    };
    let caller_number = prof("caller_id_number").or_else(|| var(vars, "caller_id_number"));
    let caller_name = prof("caller_id_name").or_else(|| var(vars, "caller_id_name"));
    let callee_number = prof("destination_number").or_else(|| var(vars, "destination_number"));
    let mut caller = Map::new();
    if let Some(n) = caller_number {
        caller.insert("number".into(), json!(n));
    }
    if let Some(n) = caller_name {
        caller.insert("name".into(), json!(n));
    }
    let mut callee = Map::new();
    if let Some(n) = callee_number {
        callee.insert("number".into(), json!(n));
    }
    let ring_end = answer.unwrap_or(end);
    let mut data = json!({
        "answered": answer.is_some(),
        "started_at": iso(start),
        "ended_at": iso(end),
        "ring_ms": ms(ring_end - start).max(0),
        "talk_ms": answer.map_or(0, |a| ms(end - a).max(0)),
        "caller": caller,
        "callee": callee,
    });
    if let Some(a) = answer {
        data["answered_at"] = json!(iso(a));
    }
    if let Some(d) = var(vars, "direction").filter(|d| d == "inbound" || d == "outbound") {
        data["direction"] = json!(d);
    }
    if let Some(cause) = var(vars, "hangup_cause") {
        data["cause"] = json!(cause);
    }
    let mut tags = Map::new();
    for (tag, name) in [
        ("sip_term_status", "sip_term_status"),
        ("hangup_cause_q850", "hangup_cause_q850"),
        ("freeswitch_uuid", "uuid"),
    ] {
        if let Some(v) = var(vars, name) {
            tags.insert(tag.into(), json!(v));
        }
    }
    data["tags"] = Value::Object(tags);
    Ok(json!({
        "id": format!("fs-{uuid}"),
        "type": "call.completed",
        "tenant_id": tenant_id,
        "occurred_at": iso(end),
        "call_id": call_id,
        "data": data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/freeswitch/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn event(name: &str) -> Value {
        let e = to_event(&fixture(name), "acme").unwrap_or_else(|e| panic!("{e}"));
        crate::model::event::parse_event(e.clone()).unwrap_or_else(|err| panic!("{err}: {e}"));
        e
    }

    #[test]
    fn an_answered_call() {
        let e = event("answered");
        let d = &e["data"];
        assert_eq!(e["id"], "fs-6f4bd1f2-8d3a-4a53-9a57-2c1e0c7e8a11");
        assert_eq!(d["answered"], json!(true));
        assert_eq!(d["direction"], "inbound");
        assert_eq!(
            d["caller"],
            json!({"number": "+441610000002", "name": "Jane Caller"})
        );
        assert_eq!(d["callee"], json!({"number": "1001"}));
        assert_eq!(d["started_at"], "2026-11-22T10:00:00.250Z");
        assert_eq!(d["answered_at"], "2026-11-22T10:00:06.500Z");
        assert_eq!(d["ended_at"], "2026-11-22T10:02:06.750Z");
        assert_eq!(
            (d["ring_ms"].clone(), d["talk_ms"].clone()),
            (json!(6250), json!(120_250))
        );
        assert_eq!(d["cause"], "NORMAL_CLEARING");
        assert_eq!(d["tags"]["sip_term_status"], "200");
    }

    #[test]
    fn a_missed_call() {
        let e = event("missed");
        let d = &e["data"];
        assert_eq!(d["answered"], json!(false));
        assert!(d.get("answered_at").is_none());
        assert_eq!(d["talk_ms"], json!(0));
        assert_eq!(d["ring_ms"], json!(25_000));
        assert_eq!(d["cause"], "ORIGINATOR_CANCEL");
        assert_eq!(d["tags"]["sip_term_status"], "487");
    }

    #[test]
    fn a_failed_call_in_the_older_object_callflow() {
        let e = event("busy");
        let d = &e["data"];
        assert_eq!(d["answered"], json!(false));
        assert_eq!(d["direction"], "outbound");
        assert_eq!(d["cause"], "USER_BUSY");
        assert_eq!(d["callee"]["number"], "+442070000003");
    }

    #[test]
    fn form_posts_plain_and_base64() {
        let json_text = serde_json::to_string(&fixture("answered")).unwrap_or_default();
        let plain: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cdr", &json_text)
            .finish();
        let b64: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cdr", &STANDARD.encode(&json_text))
            .finish();
        for body in [plain, b64] {
            let doc = document("application/x-www-form-urlencoded", body.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(doc, fixture("answered"));
        }
        let err = document("application/x-www-form-urlencoded", b"x=1").err();
        assert!(err.unwrap_or_default().contains("`cdr` field"));
        assert!(to_event(&json!({"callflow": []}), "t").is_err());
    }
}
