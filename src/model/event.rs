//! Ingested call events: the envelope every source sends, and a typed check of each type's `data`.
//!
//! `data` is kept as received (a JSON object) so that every payload profile can render from it;
//! its typed view is used to refuse events whose known fields are malformed. Unknown fields are
//! accepted and ignored, as the contract promises sources.

use serde::Serialize;
use serde_json::{Map, Value};

use super::event_data::check_data;
pub use super::event_kind::EventKind;

/// A validated event, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    pub tenant_id: String,
    pub occurred_at_ms: i64,
    pub call_id: String,
    pub data: Map<String, Value>,
}

/// An event as the delivery stage sees it: its store sequence number, the typed event and the
/// canonical JSON serialised once at ingest.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: Event,
    pub body: String,
}

/// The canonical stored form. Field order is fixed: renderers rely on it starting with `{"id"`.
#[derive(Serialize)]
struct CanonicalRef<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    tenant_id: &'a str,
    occurred_at: String,
    /// Absent on the operational events, which are about an integration, not a call.
    #[serde(skip_serializing_if = "str::is_empty")]
    call_id: &'a str,
    data: &'a Map<String, Value>,
}

impl Event {
    /// The event as stored and as the `canonical` profile sends it, serialised once.
    pub fn canonical_json(&self) -> String {
        let r = CanonicalRef {
            id: &self.id,
            kind: self.kind.as_str(),
            tenant_id: &self.tenant_id,
            occurred_at: crate::time::format_ms(self.occurred_at_ms),
            call_id: &self.call_id,
            data: &self.data,
        };
        serde_json::to_string(&r).unwrap_or_else(|_| String::from("{}"))
    }

    /// The call record the routing conditions look into: `data` itself for CDRs and call
    /// states; for events that carry a `call` snapshot, fields missing in `data` are looked up
    /// there.
    pub fn call_snapshot(&self) -> Option<&Map<String, Value>> {
        self.data.get("call").and_then(Value::as_object)
    }

    /// Who owns the call: `(kind, id)` with kind `user` or `answer_group`.
    pub fn owner(&self) -> Option<(OwnerKind, &str)> {
        if self.kind == EventKind::CallState {
            let uid = self.data.get("local")?.get("user_id")?.as_str()?;
            return Some((OwnerKind::User, uid));
        }
        let owner = self
            .data
            .get("owner")
            .or_else(|| self.call_snapshot()?.get("owner"))?;
        let kind = owner.get("kind")?.as_str()?;
        match kind {
            "user" => Some((OwnerKind::User, owner.get("user_id")?.as_str()?)),
            "answer_group" => Some((
                OwnerKind::AnswerGroup,
                owner.get("answer_group_id")?.as_str()?,
            )),
            _ => None,
        }
    }

    /// Where a `call.state` stands in its call: (rank of the state, the source's `seq`).
    /// States only move forward — trying, proceeding, early, confirmed, terminated — and `seq`
    /// orders repeats of a rank. `None` for other types.
    pub fn call_state_position(&self) -> Option<(u8, i64)> {
        if self.kind != EventKind::CallState {
            return None;
        }
        let rank = match self.data.get("state").and_then(Value::as_str)? {
            "trying" => 0,
            "proceeding" => 1,
            "early" => 2,
            "confirmed" => 3,
            "terminated" => 4,
            _ => return None,
        };
        let seq = self.data.get("seq").and_then(Value::as_i64).unwrap_or(0);
        Some((rank, seq))
    }

    /// `call.completed` with `answered = false`: the derived `call.unanswered` trigger.
    pub fn is_unanswered_call(&self) -> bool {
        self.kind == EventKind::CallCompleted
            && self.data.get("answered").and_then(Value::as_bool) == Some(false)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    User,
    AnswerGroup,
}

const MAX_ID_LEN: usize = 200;

/// Parses and validates one event. The error names the field and what is expected of it.
pub fn parse_event(value: Value) -> Result<Event, String> {
    parse(value, true)
}

/// Reads back an event callhook stored (it was validated when stored; internal kinds allowed).
pub fn parse_stored(value: Value) -> Result<Event, String> {
    parse(value, false)
}

/// The wire envelope, before validation.
struct RawEvent {
    id: String,
    kind: String,
    tenant_id: String,
    occurred_at: String,
    /// `None` only on stored operational events, which are about an integration, not a call.
    call_id: Option<String>,
    data: Value,
}

impl RawEvent {
    /// Takes the envelope's fields out of the object by hand: `serde_json::from_value` would
    /// rebuild `data` — most of the event — entry by entry (measured: 4 % of all CPU on the
    /// one-to-one flood); moved out, it costs nothing. Other fields are ignored.
    fn take(value: Value) -> Result<RawEvent, String> {
        let Value::Object(mut obj) = value else {
            return Err("an event must be a JSON object".into());
        };
        let mut text = |name: &str| match obj.remove(name) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(format!("`{name}` must be a string")),
            None => Err(format!("missing field `{name}`")),
        };
        Ok(RawEvent {
            id: text("id")?,
            kind: text("type")?,
            tenant_id: text("tenant_id")?,
            occurred_at: text("occurred_at")?,
            call_id: match obj.remove("call_id") {
                Some(Value::String(s)) => Some(s),
                Some(_) => return Err("`call_id` must be a string".into()),
                None => None,
            },
            data: obj
                .remove("data")
                .ok_or_else(|| "missing field `data`".to_string())?,
        })
    }
}

fn parse(value: Value, from_source: bool) -> Result<Event, String> {
    let raw = RawEvent::take(value)?;
    let operational =
        !from_source && EventKind::parse(&raw.kind).is_some_and(|k| k.is_operational());
    let call_id = match raw.call_id {
        None if operational => String::new(),
        None => return Err("missing field `call_id`".into()),
        Some(c) => c,
    };
    let mut ids = vec![("id", &raw.id), ("tenant_id", &raw.tenant_id)];
    if !operational {
        ids.push(("call_id", &call_id));
    }
    // What callhook stored was checked when it came in; the ids it makes itself (a record
    // built from a call's states is `derived-cdr:` + the call id) may be longer.
    let ids = if from_source { ids } else { Vec::new() };
    for (name, v) in ids {
        // Characters, as the message and the API's schema (`maxLength`) count them.
        if v.is_empty() || v.chars().count() > MAX_ID_LEN || v.chars().any(char::is_control) {
            return Err(format!(
                "`{name}` must be 1–{MAX_ID_LEN} characters without control characters"
            ));
        }
    }
    let kind = EventKind::parse(&raw.kind)
        .filter(|k| k.is_ingestible() || !from_source)
        .ok_or_else(|| {
            format!(
                "`type` `{}` is unknown; expected one of call.state, call.completed, \
                 recording.completed, analysis.completed, ivr.input",
                raw.kind
            )
        })?;
    let occurred_at_ms = crate::time::parse_rfc3339_ms(&raw.occurred_at).ok_or_else(|| {
        format!(
            "`occurred_at` `{}` is not an RFC 3339 timestamp such as 2026-11-22T10:00:00.123Z",
            raw.occurred_at
        )
    })?;
    let Value::Object(data) = raw.data else {
        return Err("`data` must be a JSON object".into());
    };
    if from_source {
        check_data(kind, &data)?;
    }
    Ok(Event {
        id: raw.id,
        kind,
        tenant_id: raw.tenant_id,
        occurred_at_ms,
        call_id,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str, data: Value) -> Value {
        json!({"id": "pbx7-1", "type": kind, "tenant_id": "acme",
               "occurred_at": "2026-11-22T10:00:00.123Z", "call_id": "c-42", "data": data,
               "some_future_field": 1})
    }

    #[test]
    fn valid_events_parse_and_keep_unknown_data_fields() {
        let e = parse_event(ev("call.completed", json!({"answered": false, "x": 1})));
        let e = e.unwrap_or_else(|m| panic!("{m}"));
        assert!(e.is_unanswered_call());
        assert_eq!(e.data.get("x"), Some(&json!(1)));
        assert!(e
            .canonical_json()
            .starts_with(r#"{"id":"pbx7-1","type":"call.completed""#));
    }

    #[test]
    fn an_id_of_200_characters_is_accepted_however_many_bytes_they_take() {
        let mut e = ev("call.completed", json!({}));
        e["id"] = json!("é".repeat(200)); // 400 bytes
        assert!(parse_event(e.clone()).is_ok());
        e["id"] = json!("é".repeat(201));
        let m = parse_event(e).err().unwrap_or_default();
        assert!(m.contains("`id` must be 1–200 characters"), "{m}");
    }

    #[test]
    fn a_record_built_from_a_long_call_ids_states_reads_back() {
        let call_id = "c".repeat(200);
        let mut e = ev("call.completed", json!({}));
        e["call_id"] = json!(call_id);
        e["id"] = json!(format!(
            "{}{call_id}",
            crate::model::call::DERIVED_CDR_PREFIX
        ));
        assert!(parse_event(e.clone()).is_err(), "too long as input");
        assert!(parse_stored(e).is_ok(), "but callhook's own id reads back");
    }

    #[test]
    fn malformed_events_are_refused_with_the_field_named() {
        let cases = [
            (
                ev("call.state", json!({"seq": 1, "state": "ringing"})),
                "ringing",
            ),
            (ev("call.state", json!({"state": "early"})), "seq"),
            (
                ev(
                    "call.state",
                    json!({"seq": 1, "state": "early", "termination_reason": "hangup"}),
                ),
                "termination_reason",
            ),
            (
                ev("call.completed", json!({"started_at": "noon"})),
                "started_at",
            ),
            (
                ev("call.completed", json!({"direction": "sideways"})),
                "sideways",
            ),
            (ev("call.unanswered", json!({})), "type"),
            (
                ev("recording.completed", json!({"files": []})),
                "recording_id",
            ),
            (ev("call.completed", json!([])), "object"),
            (json!({"id": "x", "type": "call.state"}), "tenant_id"),
            (
                json!({"id": 7, "type": "call.state", "tenant_id": "a", "call_id": "c",
                       "occurred_at": "2026-11-22T10:00:00Z", "data": {}}),
                "`id` must be a string",
            ),
            (
                json!({"id": "x", "type": "call.completed", "tenant_id": "a", "call_id": "c",
                       "occurred_at": "2026-11-22T10:00:00Z"}),
                "`data`",
            ),
            (json!(["not", "an", "object"]), "object"),
        ];
        for (input, needle) in cases {
            match parse_event(input) {
                Ok(_) => panic!("accepted an event that lacks {needle}"),
                Err(msg) => assert!(msg.contains(needle), "`{msg}` should mention {needle}"),
            }
        }
    }

    #[test]
    fn owner_comes_from_local_user_for_call_states_and_owner_otherwise() {
        let s = parse_event(ev(
            "call.state",
            json!({"seq": 1, "state": "early", "local": {"user_id": "u1"}}),
        ));
        assert_eq!(
            s.ok()
                .and_then(|e| e.owner().map(|(k, id)| (k, id.to_string()))),
            Some((OwnerKind::User, "u1".into()))
        );
        let r = parse_event(ev(
            "ivr.input",
            json!({"dtmf": "1", "call": {"owner": {"kind": "answer_group", "answer_group_id": "ag-1"}}}),
        ));
        assert_eq!(
            r.ok()
                .and_then(|e| e.owner().map(|(k, id)| (k, id.to_string()))),
            Some((OwnerKind::AnswerGroup, "ag-1".into()))
        );
    }
}
