//! Ingested call events: the envelope every source sends, and a typed check of each type's `data`.
//!
//! `data` is kept as received (a JSON object) so that every payload profile can render from it;
//! its typed view is used to refuse events whose known fields are malformed. Unknown fields are
//! accepted and ignored, as the contract promises sources.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What an integration can subscribe to: the five ingested event types and the derived
/// `call.unanswered` (a `call.completed` with `answered = false`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
pub enum EventKind {
    #[serde(rename = "call.state")]
    CallState,
    #[serde(rename = "call.completed")]
    CallCompleted,
    #[serde(rename = "call.unanswered")]
    CallUnanswered,
    #[serde(rename = "recording.completed")]
    RecordingCompleted,
    #[serde(rename = "analysis.completed")]
    AnalysisCompleted,
    #[serde(rename = "ivr.input")]
    IvrInput,
    /// A part of a batch feed (internal: made by callhook at a window boundary, never ingested
    /// or subscribed to).
    #[serde(rename = "cdr.batch")]
    CdrBatch,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::CallState,
        EventKind::CallCompleted,
        EventKind::CallUnanswered,
        EventKind::RecordingCompleted,
        EventKind::AnalysisCompleted,
        EventKind::IvrInput,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CallState => "call.state",
            EventKind::CallCompleted => "call.completed",
            EventKind::CallUnanswered => "call.unanswered",
            EventKind::RecordingCompleted => "recording.completed",
            EventKind::AnalysisCompleted => "analysis.completed",
            EventKind::IvrInput => "ivr.input",
            EventKind::CdrBatch => "cdr.batch",
        }
    }

    /// Every kind, the internal `cdr.batch` included.
    pub const EVERY: [EventKind; 7] = [
        EventKind::CallState,
        EventKind::CallCompleted,
        EventKind::CallUnanswered,
        EventKind::RecordingCompleted,
        EventKind::AnalysisCompleted,
        EventKind::IvrInput,
        EventKind::CdrBatch,
    ];

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::EVERY.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether sources may send this type (`call.unanswered` is derived, `cdr.batch` internal).
    pub fn is_ingestible(self) -> bool {
        !matches!(self, EventKind::CallUnanswered | EventKind::CdrBatch)
    }

    /// Whether an integration may subscribe to this type.
    pub fn is_subscribable(self) -> bool {
        self != EventKind::CdrBatch
    }
}

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
    call_id: String,
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
            call_id: text("call_id")?,
            data: obj
                .remove("data")
                .ok_or_else(|| "missing field `data`".to_string())?,
        })
    }
}

fn parse(value: Value, from_source: bool) -> Result<Event, String> {
    let raw = RawEvent::take(value)?;
    for (name, v) in [
        ("id", &raw.id),
        ("tenant_id", &raw.tenant_id),
        ("call_id", &raw.call_id),
    ] {
        if v.is_empty() || v.len() > MAX_ID_LEN || v.chars().any(char::is_control) {
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
        call_id: raw.call_id,
        data,
    })
}

// Typed views of each type's `data`. Every field is optional unless the type cannot be used
// without it; present fields must have the right shape and spelling.

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum CallState {
    Trying,
    Proceeding,
    Early,
    Confirmed,
    Terminated,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum TerminationReason {
    Cancelled,
    AnsweredElsewhere,
    Hangup,
    Rejected,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StateDirection {
    Inbound,
    Outbound,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DeviceType {
    Mobile,
    Soft,
    Desktop,
    Fxs,
    ExternalPbx,
    Fax,
    Voicemail,
    External,
    MobileExt,
    Conference,
    Queue,
    MobileVoip,
    Web,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FunctionKind {
    Ivr,
    Acd,
    HuntGroup,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Party {
    user_id: Option<String>,
    email: Option<String>,
    number: Option<String>,
    device_type: Option<DeviceType>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CallStateData {
    seq: u64,
    state: CallState,
    termination_reason: Option<TerminationReason>,
    direction: Option<StateDirection>,
    local: Option<Party>,
    remote: Option<Party>,
    function: Option<FunctionKind>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum CdrDirection {
    Inbound,
    Outbound,
    Internal,
    Both,
    Unknown,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Scope {
    Internal,
    External,
    Unknown,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum CallType {
    Outgoing,
    OutgoingTransfer,
    Incoming,
    Queueing,
    Extension,
    ExtensionGroup,
    ExtensionTransfer,
    ExtensionGroupTransfer,
    PredictiveDial,
    AutomaticTransfer,
    AutomaticRecord,
    ReadDtmf,
    IncomingCallUser,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OwnerKindWire {
    User,
    AnswerGroup,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Owner {
    kind: OwnerKindWire,
    user_id: Option<String>,
    answer_group_id: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CallCompletedData {
    answered: Option<bool>,
    lost: Option<bool>,
    abandoned: Option<bool>,
    short: Option<bool>,
    direction: Option<CdrDirection>,
    scope: Option<Scope>,
    call_type: Option<CallType>,
    owner: Option<Owner>,
    ring_ms: Option<u64>,
    talk_ms: Option<u64>,
    hold_ms: Option<u64>,
    park_ms: Option<u64>,
    wait_ms: Option<u64>,
    recording_ids: Option<Vec<String>>,
    tags: Option<Map<String, Value>>,
}

const CDR_TIMES: [&str; 6] = [
    "started_at",
    "answered_at",
    "ended_at",
    "queued_at",
    "queue_answered_at",
    "queue_ended_at",
];

#[derive(Deserialize)]
#[allow(dead_code)]
struct RecordingFile {
    file_id: String,
    content_type: Option<String>,
    bytes: Option<u64>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct RecordingData {
    recording_id: String,
    files: Vec<RecordingFile>,
    owner: Option<Owner>,
    summary: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct IvrData {
    dtmf: String,
    ivr_number: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct AnalysisData {
    score: Option<f64>,
    talk_listen_ratio: Option<f64>,
    keywords: Option<Vec<Value>>,
    phrases: Option<Vec<Value>>,
    participants: Option<Vec<Value>>,
}

fn typed<T: for<'de> Deserialize<'de>>(data: &Map<String, Value>) -> Result<T, String> {
    T::deserialize(data).map_err(|e| format!("`data`: {e}"))
}

/// The longest duration a call record may carry (366 days): longer is a unit mistake or
/// garbage, and would overflow what receivers compute from it.
pub const MAX_DURATION_MS: u64 = 366 * 24 * 3600 * 1000;
const CDR_DURATIONS: [&str; 5] = ["ring_ms", "talk_ms", "hold_ms", "park_ms", "wait_ms"];

fn check_cdr(data: &Map<String, Value>, prefix: &str) -> Result<(), String> {
    typed::<CallCompletedData>(data).map_err(|e| e.replacen("`data`", prefix, 1))?;
    for field in CDR_DURATIONS {
        if data
            .get(field)
            .and_then(Value::as_u64)
            .is_some_and(|ms| ms > MAX_DURATION_MS)
        {
            return Err(format!(
                "{prefix}.{field} is more than {MAX_DURATION_MS} ms (366 days); durations are milliseconds"
            ));
        }
    }
    for field in CDR_TIMES {
        if let Some(v) = data.get(field).filter(|v| !v.is_null()) {
            let ok = v.as_str().and_then(crate::time::parse_rfc3339_ms).is_some();
            if !ok {
                return Err(format!("{prefix}.{field} must be an RFC 3339 timestamp"));
            }
        }
    }
    Ok(())
}

fn check_data(kind: EventKind, data: &Map<String, Value>) -> Result<(), String> {
    if let Some(call) = data.get("call").filter(|v| !v.is_null()) {
        let Some(call) = call.as_object() else {
            return Err("`data.call` must be an object (a call.completed-shaped snapshot)".into());
        };
        check_cdr(call, "`data.call`")?;
    }
    match kind {
        EventKind::CallState => {
            let d: CallStateData = typed(data)?;
            if d.termination_reason.is_some() && !matches!(d.state, CallState::Terminated) {
                return Err(
                    "`data.termination_reason` is only valid when `state` is terminated".into(),
                );
            }
            Ok(())
        }
        EventKind::CallCompleted => check_cdr(data, "`data`"),
        EventKind::RecordingCompleted => typed::<RecordingData>(data).map(drop),
        EventKind::AnalysisCompleted => typed::<AnalysisData>(data).map(drop),
        EventKind::IvrInput => typed::<IvrData>(data).map(drop),
        EventKind::CallUnanswered | EventKind::CdrBatch => Err(
            "`call.unanswered` and `cdr.batch` are made by callhook and cannot be ingested".into(),
        ),
    }
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
