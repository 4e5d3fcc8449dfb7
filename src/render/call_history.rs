//! `call-history` (seed 001): `{"call": {"id", "tenant_code", "details": [ … ]}}` with the
//! integration's `custom_data` merged at the top level. Fed by `analysis.completed`,
//! `ivr.input` and `call.unanswered`. Times are ISO 8601 with offset; unknown values are null.

use serde_json::{json, Map, Value};

use super::fields::{at, iso_offset, str_at};
use super::RenderContext;
use crate::model::event::{Event, EventKind};
use crate::model::integration::Options;

fn call_type(t: Option<&str>) -> Value {
    let name = match t {
        Some("outgoing") => "OUTGOING_CALL",
        Some("outgoing_transfer") => "OUTGOING_TRANSFER",
        Some("incoming") => "INCOMING_CALL",
        Some("queueing") => "QUEUEING_CALL",
        Some("extension") => "EXTENSION",
        Some("extension_group") => "EXTENSION_GROUP",
        Some("extension_transfer") => "EXTENSION_TRANSFER",
        Some("extension_group_transfer") => "EXTENSION_GROUP_TRANSFER",
        Some("predictive_dial") => "PREDICTIVE_DIAL",
        Some("automatic_transfer") => "AUTOMATIC_TRANSFER",
        Some("automatic_record") => "AUTOMATIC_RECORD",
        Some("read_dtmf") => "READ_DTMF",
        Some("incoming_call_user") => "INCOMING_CALL_USER",
        _ => return Value::Null,
    };
    json!(name)
}

/// An outgoing call by its type, or by its direction where the type is not given.
fn is_outgoing(call: &Map<String, Value>) -> bool {
    match str_at(call, "call_type") {
        Some(t) => matches!(t, "outgoing" | "outgoing_transfer" | "predictive_dial"),
        None => str_at(call, "direction") == Some("outbound"),
    }
}

fn or_null(v: Option<&Value>) -> Value {
    v.cloned().unwrap_or(Value::Null)
}

fn time(call: &Map<String, Value>, path: &str) -> Value {
    str_at(call, path)
        .and_then(iso_offset)
        .map_or(Value::Null, Value::String)
}

/// Maps each object of an array through `f`; an absent array is empty.
fn each(v: Option<&Value>, f: impl Fn(&Map<String, Value>) -> Value) -> Value {
    Value::Array(
        v.and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_object).map(&f).collect())
            .unwrap_or_default(),
    )
}

fn phrase(p: &Map<String, Value>) -> Value {
    json!({"order": or_null(at(p, "order")), "phrase": or_null(at(p, "text")),
           "phrase_nofiller": or_null(at(p, "text_nofiller")), "start_at": or_null(at(p, "start_at")),
           "end_at": or_null(at(p, "end_at")), "filler_num": or_null(at(p, "filler_count"))})
}

pub fn render(
    event: &Event,
    trigger: EventKind,
    ctx: &RenderContext,
    options: &Options,
) -> Map<String, Value> {
    let d = &event.data;
    // The call record: the CDR itself for call.unanswered, else the event's snapshot.
    let empty = Map::new();
    let call = if trigger == EventKind::CallUnanswered || event.kind == EventKind::CallCompleted {
        d
    } else {
        event.call_snapshot().unwrap_or(&empty)
    };
    let mut detail = Map::new();
    detail.insert("id".into(), json!(event.call_id));
    detail.insert("dial_starts_at".into(), time(call, "started_at"));
    detail.insert("dial_answered_at".into(), time(call, "answered_at"));
    detail.insert("dial_ends_at".into(), time(call, "ended_at"));
    detail.insert("queueing_starts_at".into(), time(call, "queued_at"));
    detail.insert(
        "queueing_answered_at".into(),
        time(call, "queue_answered_at"),
    );
    detail.insert("queueing_ends_at".into(), time(call, "queue_ended_at"));
    detail.insert("call_type".into(), call_type(str_at(call, "call_type")));
    detail.insert("circuit_number".into(), or_null(at(call, "circuit.number")));
    detail.insert("circuit_name".into(), or_null(at(call, "circuit.name")));
    // Seed 001: "null for the outgoing call", whose origin is `circuit_number`.
    let from = if is_outgoing(call) {
        Value::Null
    } else {
        or_null(at(call, "caller.number"))
    };
    detail.insert("from_number".into(), from);
    detail.insert("to_number".into(), or_null(at(call, "callee.number")));
    detail.insert("previous_id".into(), or_null(at(call, "previous_call_id")));
    detail.insert(
        "dtmf".into(),
        or_null(at(d, "dtmf").or_else(|| at(call, "dtmf"))),
    );
    let analysed = event.kind == EventKind::AnalysisCompleted;
    if analysed {
        detail.insert(
            "analysis".into(),
            json!({"score": or_null(at(d, "score")), "tlr": or_null(at(d, "talk_listen_ratio")),
                   "rally_count": or_null(at(d, "rally_count")), "overlap_count": or_null(at(d, "overlap_count")),
                   "silence_count": or_null(at(d, "silence_count")),
                   "silence_positions": at(d, "silence_positions").cloned().unwrap_or(json!([])),
                   "overlap_positions": at(d, "overlap_positions").cloned().unwrap_or(json!([]))}),
        );
    } else {
        detail.insert("analysis".into(), Value::Null);
    }
    detail.insert(
        "participants".into(),
        each(at(d, "participants"), |p| {
            let from_to = match str_at(p, "role") {
                Some("from") => json!("FROM"),
                Some("to") => json!("TO"),
                _ => Value::Null,
            };
            json!({"id": or_null(at(p, "id")), "from_to": from_to, "name": or_null(at(p, "name")),
                   "company_name": or_null(at(p, "company_name")),
                   "analysis": {"f0": or_null(at(p, "voice.f0")), "speechrate": or_null(at(p, "voice.speech_rate")),
                                "variance": or_null(at(p, "voice.variance")), "filler_count": or_null(at(p, "voice.filler_count")),
                                "positive_score": or_null(at(p, "voice.positive_score")),
                                "negative_score": or_null(at(p, "voice.negative_score"))}})
        }),
    );
    detail.insert(
        "tags".into(),
        each(at(call, "memos"), |m| {
            json!({"created_by": or_null(at(m, "created_by")), "creator_type": or_null(at(m, "creator_type")),
                   "value": or_null(at(m, "value"))})
        }),
    );
    detail.insert(
        "comments".into(),
        each(at(call, "comments"), |m| {
            let created = str_at(m, "created_at").and_then(iso_offset).map_or(Value::Null, Value::String);
            json!({"created_at": created, "created_by": or_null(at(m, "created_by")), "value": or_null(at(m, "value"))})
        }),
    );
    if options.include_keywords {
        detail.insert(
            "keywords".into(),
            each(at(d, "keywords"), |k| {
                json!({"starts_at": or_null(at(k, "starts_at")), "participant_id": or_null(at(k, "participant_id")),
                       "value": or_null(at(k, "value"))})
            }),
        );
    }
    if options.include_transcript {
        detail.insert(
            "phrases".into(),
            each(at(d, "phrases"), |p| {
                json!({"participant_id": or_null(at(p, "participant_id")),
                       "raw": each(at(p, "raw"), phrase), "summary": each(at(p, "summary"), phrase)})
            }),
        );
        let sr = if analysed {
            json!({"raw": or_null(at(d, "transcript.raw")), "summary": or_null(at(d, "transcript.summary"))})
        } else {
            Value::Null
        };
        detail.insert("speech_recognition".into(), sr);
    }
    let mut out = Map::new();
    out.insert(
        "call".into(),
        json!({"id": event.call_id, "tenant_code": event.tenant_id, "details": [Value::Object(detail)]}),
    );
    if let Some(cd) = ctx.custom_data {
        for (k, v) in cd {
            if k != "call" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}
