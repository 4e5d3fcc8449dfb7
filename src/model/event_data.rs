//! Typed views of each event type's `data`, used to refuse events whose known fields are
//! malformed. Every field is optional unless the type cannot be used without it; present
//! fields must have the right shape and spelling. `data` itself is kept as received.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::event_kind::EventKind;

// Typed views of each type's `data`. Every field is optional unless the type cannot be used
// without it; present fields must have the right shape and spelling.

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum CallState {
    Trying,
    Proceeding,
    Early,
    Confirmed,
    Terminated,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum TerminationReason {
    Cancelled,
    AnsweredElsewhere,
    Hangup,
    Rejected,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum StateDirection {
    Inbound,
    Outbound,
}

#[derive(Deserialize, utoipa::ToSchema)]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum FunctionKind {
    Ivr,
    Acd,
    HuntGroup,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct Party {
    user_id: Option<String>,
    email: Option<String>,
    number: Option<String>,
    device_type: Option<DeviceType>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct CallStateData {
    seq: u64,
    state: CallState,
    termination_reason: Option<TerminationReason>,
    direction: Option<StateDirection>,
    local: Option<Party>,
    remote: Option<Party>,
    function: Option<FunctionKind>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum CdrDirection {
    Inbound,
    Outbound,
    Internal,
    Both,
    Unknown,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Scope {
    Internal,
    External,
    Unknown,
}

#[derive(Deserialize, utoipa::ToSchema)]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum OwnerKindWire {
    User,
    AnswerGroup,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct Owner {
    kind: OwnerKindWire,
    user_id: Option<String>,
    answer_group_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct CallCompletedData {
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

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct RecordingFile {
    file_id: String,
    content_type: Option<String>,
    bytes: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct RecordingData {
    recording_id: String,
    files: Vec<RecordingFile>,
    owner: Option<Owner>,
    summary: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct IvrData {
    dtmf: String,
    ivr_number: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct AnalysisData {
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

pub(super) fn check_data(kind: EventKind, data: &Map<String, Value>) -> Result<(), String> {
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
        k => Err(format!(
            "`{}` is an operational event made by callhook and cannot be ingested",
            k.as_str()
        )),
    }
}
