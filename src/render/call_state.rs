//! `call-state` (seed 004): one flat object per state change of a user's call.
//!
//! `{seq_num, call_id, timestamp, state, termination-reason (TERMINATED only), direction,
//! local_email, local_user_id, local_number, device_type, remote_email, remote_user_id,
//! remote_number}`. States, directions and device types are UPPERCASE. Calls whose local side
//! is a function number (IVR, ACD, hunt group) are not sent at all (see [`Profile::accepts`](crate::model::profile::Profile::accepts)).

use serde_json::{Map, Value};

use super::fields::{at, put, str_at};
use crate::model::event::Event;

fn upper(v: Option<&str>) -> Option<Value> {
    v.map(|s| Value::String(s.to_ascii_uppercase()))
}

pub fn render(event: &Event) -> Map<String, Value> {
    let d = &event.data;
    let mut out = Map::new();
    put(&mut out, "seq_num", at(d, "seq").cloned());
    out.insert("call_id".into(), Value::String(event.call_id.clone()));
    out.insert(
        "timestamp".into(),
        Value::String(crate::time::format_ms(event.occurred_at_ms)),
    );
    let state = str_at(d, "state");
    put(&mut out, "state", upper(state));
    if state == Some("terminated") {
        put(
            &mut out,
            "termination-reason",
            upper(str_at(d, "termination_reason")),
        );
    }
    let direction = match str_at(d, "direction") {
        Some("inbound") => Some("INCOMING"),
        Some("outbound") => Some("OUTGOING"),
        _ => None,
    };
    put(
        &mut out,
        "direction",
        direction.map(|s| Value::String(s.into())),
    );
    for (key, path) in [
        ("local_email", "local.email"),
        ("local_user_id", "local.user_id"),
        ("local_number", "local.number"),
    ] {
        put(&mut out, key, at(d, path).cloned());
    }
    put(
        &mut out,
        "device_type",
        upper(str_at(d, "local.device_type")),
    );
    for (key, path) in [
        ("remote_email", "remote.email"),
        ("remote_user_id", "remote.user_id"),
        ("remote_number", "remote.number"),
    ] {
        put(&mut out, key, at(d, path).cloned());
    }
    out
}
