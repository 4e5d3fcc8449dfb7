//! `recording.v2` and `recording.v1` (seed 000): one flat object per finished recording.
//!
//! `fileUrls` are signed and expire 30 minutes after the attempt that carries them is sent:
//! they are generated at render time, so every retry carries fresh links. `id` is callhook's
//! numeric id of the call: the first 53 bits of SHA-256(tenant, call id), stable for a call and
//! exact in every JSON parser. v1 is v2 without `summary` and `userId`.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::fields::{at, epoch_ms, put, put_or_null, str_at};
use super::RenderContext;
use crate::model::event::Event;
use crate::model::integration::Options;

pub fn numeric_call_id(tenant_id: &str, call_id: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(tenant_id.as_bytes())
        .chain_update([0u8])
        .chain_update(call_id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 11
}

pub fn render(
    event: &Event,
    ctx: &RenderContext,
    options: &Options,
    v2: bool,
) -> Map<String, Value> {
    let d = &event.data;
    let empty = Map::new();
    let call = event.call_snapshot().unwrap_or(&empty);
    let mut out = Map::new();
    out.insert(
        "id".into(),
        json!(numeric_call_id(&event.tenant_id, &event.call_id)),
    );
    let urls: Vec<Value> = at(d, "files")
        .and_then(Value::as_array)
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f.get("file_id")?.as_str())
                .map(|id| match ctx.links {
                    Some(l) => json!(l.url(&event.tenant_id, id, ctx.now_ms)),
                    None => json!(id),
                })
                .collect()
        })
        .unwrap_or_default();
    out.insert("fileUrls".into(), Value::Array(urls));
    put(&mut out, "callerNumber", at(call, "caller.number").cloned());
    put(&mut out, "calleeNumber", at(call, "callee.number").cloned());
    put(
        &mut out,
        "startTime",
        str_at(call, "started_at")
            .and_then(epoch_ms)
            .map(Value::from),
    );
    put(
        &mut out,
        "endTime",
        str_at(call, "ended_at").and_then(epoch_ms).map(Value::from),
    );
    put_or_null(&mut out, "waitTime", at(call, "wait_ms").cloned());
    put(&mut out, "talkTime", at(call, "talk_ms").cloned());
    put_or_null(&mut out, "agentId", at(call, "agent.id").cloned());
    put_or_null(&mut out, "agentName", at(call, "agent.name").cloned());
    put_or_null(
        &mut out,
        "answerGroupName",
        at(call, "answer_group.name").cloned(),
    );
    put_or_null(
        &mut out,
        "answerGroupId",
        at(call, "answer_group.id").cloned(),
    );
    put_or_null(&mut out, "referredTo", at(call, "referred_to").cloned());
    put_or_null(&mut out, "referredBy", at(call, "referred_by").cloned());
    put(
        &mut out,
        "direction",
        recorder_direction(d, call).map(Value::from),
    );
    put(&mut out, "recorderId", at(d, "recorder_id").cloned());
    if v2 {
        if options.include_summary {
            put(&mut out, "summary", at(d, "summary").cloned());
        }
        put(
            &mut out,
            "userId",
            at(d, "owner.user_id")
                .or_else(|| at(call, "owner.user_id"))
                .cloned(),
        );
    }
    out
}

/// Inbound or outbound as the recorder saw it: the call's own direction when it has one, else
/// outbound when the recorder is the caller.
pub fn recorder_direction(
    d: &Map<String, Value>,
    call: &Map<String, Value>,
) -> Option<&'static str> {
    match str_at(call, "direction") {
        Some("inbound") => return Some("inbound"),
        Some("outbound") => return Some("outbound"),
        _ => {}
    }
    let recorder = str_at(d, "recorder_id")?;
    let is_caller = ["caller.number", "caller.email", "caller.user_id"]
        .iter()
        .any(|p| str_at(call, p) == Some(recorder));
    Some(if is_caller { "outbound" } else { "inbound" })
}
