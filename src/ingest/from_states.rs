//! Call-state hygiene and call records built from call states — pure functions.
//!
//! Sources such as a SIP proxy send only `call.state`, sometimes out of order (two workers handle
//! the 180 and the 200 at the same moment) or twice. callhook puts the states of one call in a
//! request in order, and the store drops a state that is not past the call's latest accepted
//! one. When a call terminates and the source sent no `call.completed` of its own, callhook
//! builds it from the states ([`derived_cdr`]), so CDR, missed-call and partner-feed
//! integrations work for such sources too.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

pub use crate::model::call::{TerminatedCall, DERIVED_CDR_PREFIX};
use crate::model::event::{Event, EventKind};

/// Puts the `call.state` events of each call in position order (rank, then `seq`), leaving
/// every other event where it is: a state's slot in the request is kept, only which state of
/// the same call fills it changes.
pub fn order_call_states(events: &mut [Event]) {
    let mut slots: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if e.call_state_position().is_some() {
            slots
                .entry((e.tenant_id.clone(), e.call_id.clone()))
                .or_default()
                .push(i);
        }
    }
    for idx in slots.into_values().filter(|v| v.len() > 1) {
        let mut states: Vec<Event> = idx.iter().map(|&i| events[i].clone()).collect();
        states.sort_by_key(|e| e.call_state_position());
        for (slot, e) in idx.into_iter().zip(states) {
            events[slot] = e;
        }
    }
}

fn party(state_side: Option<&Value>) -> Value {
    let mut p = Map::new();
    if let Some(Value::Object(side)) = state_side {
        for key in ["number", "user_id", "email", "name"] {
            if let Some(v) = side.get(key) {
                p.insert(key.into(), v.clone());
            }
        }
    }
    Value::Object(p)
}

/// The `call.completed` record of a call that ended, built from its states.
pub fn derived_cdr(t: &TerminatedCall) -> Event {
    let s = &t.event.data;
    let ended = t.event.occurred_at_ms;
    let answered = t.answered_at.is_some();
    let direction = s.get("direction").and_then(Value::as_str);
    let (local, remote) = (party(s.get("local")), party(s.get("remote")));
    let (caller, callee) = match direction {
        Some("outbound") => (local, remote),
        _ => (remote, local),
    };
    let ring_end = t.answered_at.unwrap_or(ended);
    let mut data = json!({
        "answered": answered,
        "started_at": crate::time::format_ms(t.started_at),
        "ended_at": crate::time::format_ms(ended),
        "ring_ms": (ring_end - t.started_at).max(0),
        "talk_ms": t.answered_at.map_or(0, |a| (ended - a).max(0)),
        "caller": caller,
        "callee": callee,
        "derived_from": "call.state",
    });
    if let Some(a) = t.answered_at {
        data["answered_at"] = json!(crate::time::format_ms(a));
    }
    if let Some(d) = direction {
        data["direction"] = json!(d);
    }
    let cause = s
        .get("sip_code")
        .map(|c| json!(c.to_string()))
        .or_else(|| s.get("termination_reason").cloned());
    if let Some(c) = cause {
        data["cause"] = c;
    }
    if let Some(uid) = s.get("local").and_then(|l| l.get("user_id")) {
        data["owner"] = json!({"kind": "user", "user_id": uid});
    }
    Event {
        id: format!("{DERIVED_CDR_PREFIX}{}", t.event.call_id),
        kind: EventKind::CallCompleted,
        tenant_id: t.event.tenant_id.clone(),
        occurred_at_ms: ended,
        call_id: t.event.call_id.clone(),
        data: match data {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::parse_event;

    fn state(id: &str, call: &str, state: &str, seq: i64, at: &str) -> Event {
        parse_event(
            json!({"id": id, "type": "call.state", "tenant_id": "t", "call_id": call,
            "occurred_at": at, "data": {"seq": seq, "state": state, "direction": "inbound",
            "local": {"user_id": "u1", "number": "+100"}, "remote": {"number": "+200"}}}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn states_of_a_call_are_put_in_order_and_other_events_stay() {
        let ivr = parse_event(
            json!({"id": "x", "type": "ivr.input", "tenant_id": "t", "call_id": "a",
            "occurred_at": "2026-11-22T10:00:00Z", "data": {"dtmf": "1"}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = "2026-11-22T10:00:00Z";
        let mut events = vec![
            state("a3", "a", "terminated", 3, t),
            ivr,
            state("b1", "b", "early", 1, t),
            state("a1", "a", "early", 1, t),
            state("a2", "a", "confirmed", 2, t),
        ];
        order_call_states(&mut events);
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a1", "x", "b1", "a2", "a3"]);
    }

    #[test]
    fn an_answered_call_becomes_a_record_with_ring_and_talk_times() {
        let end = state("s3", "c", "terminated", 3, "2026-11-22T10:01:10Z");
        let t = TerminatedCall {
            event: end,
            started_at: crate::time::parse_rfc3339_ms("2026-11-22T10:00:00Z").unwrap_or(0),
            answered_at: crate::time::parse_rfc3339_ms("2026-11-22T10:00:10Z"),
        };
        let cdr = derived_cdr(&t);
        assert_eq!(cdr.kind, EventKind::CallCompleted);
        assert_eq!(cdr.id, "derived-cdr:c");
        let d = Value::Object(cdr.data.clone());
        assert_eq!(d["answered"], json!(true));
        assert_eq!(d["ring_ms"], json!(10_000));
        assert_eq!(d["talk_ms"], json!(60_000));
        assert_eq!(d["caller"], json!({"number": "+200"}));
        assert_eq!(d["callee"], json!({"number": "+100", "user_id": "u1"}));
        assert_eq!(d["ended_at"], json!("2026-11-22T10:01:10.000Z"));
        // What callhook builds passes the same checks as a source's record.
        let wire = json!({"id": "chk", "type": "call.completed", "tenant_id": "t", "call_id": "c",
            "occurred_at": "2026-11-22T10:01:10Z", "data": d});
        assert!(parse_event(wire).is_ok());
    }

    #[test]
    fn an_unanswered_call_has_no_talk_time() {
        let t = TerminatedCall {
            event: state("s2", "c", "terminated", 2, "2026-11-22T10:00:30Z"),
            started_at: crate::time::parse_rfc3339_ms("2026-11-22T10:00:00Z").unwrap_or(0),
            answered_at: None,
        };
        let cdr = derived_cdr(&t);
        assert!(cdr.is_unanswered_call());
        let d = Value::Object(cdr.data);
        assert_eq!(
            (d["ring_ms"].clone(), d["talk_ms"].clone()),
            (json!(30_000), json!(0))
        );
    }
}
