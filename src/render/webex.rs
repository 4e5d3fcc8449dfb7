//! `webex-cdr` (seed 003): Webex Calling's Detailed Call History record, whose keys have spaces
//! and capitals ("Start time", "Calling number" …), in a body of `{"items": [records]}` — one
//! record in real time, a window's records in batch mode.
//!
//! Every key the canonical call record can feed is present, as in the records Webex sends:
//! strings are `""` where the call record does not know the value, and the three durations are
//! numbers of seconds. Times are UTC with milliseconds (`2020-05-14T11:01:16.545Z`). Keys the
//! canonical record cannot feed (device, client, trunk, SIP session and redirection details) are
//! left out; the README lists them.
//!
//! callhook keeps one record per call where Webex keeps one per leg: `Direction` is the call's
//! from the tenant's side (`TERMINATING` for inbound, `ORIGINATING` otherwise), and the "user"
//! fields describe the tenant's party on that side.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::fields::{at, bool_at, epoch_ms, f64_at, secs, str_at};
use crate::model::event::Event;

/// A call time in Webex's form, or `""`.
fn time(d: &Map<String, Value>, path: &str) -> Value {
    json!(str_at(d, path)
        .and_then(epoch_ms)
        .map(crate::time::format_ms)
        .unwrap_or_default())
}

fn text(v: Option<&str>) -> Value {
    json!(v.unwrap_or_default())
}

/// Seed 003 wants a stable id per record, for receivers to drop the copy they get again (from
/// a retry or from the records API): a UUID (RFC 9562 version 8) from the tenant and event id.
pub fn report_id(tenant_id: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant_id.as_bytes());
    h.update([0]);
    h.update(event_id.as_bytes());
    let mut b: [u8; 16] = h.finalize()[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    crate::model::ids::guid_form(u128::from_be_bytes(b))
}

/// `Call outcome` and its reason, from the answer and the hang-up cause (Q.850 names as
/// FreeSWITCH and most PBXs report them).
fn outcome(answered: bool, cause: Option<&str>) -> (&'static str, &'static str) {
    match cause.unwrap_or_default() {
        "USER_BUSY" => ("Success", "UserBusy"),
        "NO_ANSWER" | "ORIGINATOR_CANCEL" => ("Success", "NoAnswer"),
        "CALL_REJECTED" => ("Refusal", "CallRejected"),
        "UNALLOCATED_NUMBER" => ("Refusal", "UnassignedNumber"),
        "NO_USER_RESPONSE" => ("Refusal", "NoUserResponse"),
        "DESTINATION_OUT_OF_ORDER" => ("Failure", "DestinationOutOfOrder"),
        "NO_ROUTE_DESTINATION" => ("Failure", "NoRouteToDestination"),
        _ if answered => ("Success", "Normal"),
        _ => ("Success", "NoAnswer"),
    }
}

/// `Call type`: internal calls are `SIP_ENTERPRISE`; external ones `SIP_INBOUND` when they came
/// in, `SIP_INTERNATIONAL` when the parties' countries differ, else `SIP_NATIONAL`.
fn call_type(d: &Map<String, Value>, inbound: bool) -> &'static str {
    match str_at(d, "scope") {
        Some("internal") => "SIP_ENTERPRISE",
        Some("external") if inbound => "SIP_INBOUND",
        Some("external") => match (str_at(d, "caller.country"), str_at(d, "callee.country")) {
            (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => "SIP_INTERNATIONAL",
            _ => "SIP_NATIONAL",
        },
        _ => "UNKNOWN",
    }
}

/// `Site timezone`: the offset from UTC in minutes, as Webex writes it (`"-300"`), read from the
/// offset the source gave the call's start; `None` for a time in `Z` (UTC says nothing of the
/// site).
fn site_offset(d: &Map<String, Value>) -> Option<String> {
    let start = str_at(d, "started_at")?;
    if start.ends_with('Z') || start.ends_with('z') {
        return None;
    }
    let t = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    Some((t.offset().local_minus_utc() / 60).to_string())
}

/// One record from a canonical call record (`data` of `call.completed`).
pub fn record(event: &Event) -> Map<String, Value> {
    let d = &event.data;
    let inbound = str_at(d, "direction") == Some("inbound");
    let answered = bool_at(d, "answered").unwrap_or(false);
    // The tenant's party: the callee of an inbound call (whoever answered it, if known), the
    // caller otherwise.
    let local = if inbound { "callee" } else { "caller" };
    let local_at = |field: &str| str_at(d, &format!("{local}.{field}"));
    let user_name = if inbound {
        str_at(d, "answered_by.user.name").or_else(|| local_at("name"))
    } else {
        local_at("name")
    };
    let duration = match f64_at(d, "talk_ms") {
        Some(ms) => secs(ms),
        None => match (
            str_at(d, "answered_at").and_then(epoch_ms),
            str_at(d, "ended_at").and_then(epoch_ms),
        ) {
            (Some(a), Some(e)) if answered && e >= a => secs((e - a) as f64),
            _ => 0,
        },
    };
    let kind = call_type(d, inbound);
    let (outcome, reason) = outcome(answered, str_at(d, "cause"));
    let recorded = at(d, "recording_ids")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty());
    let caller_id = if inbound {
        str_at(d, "caller.number")
    } else {
        str_at(d, "circuit.number").or_else(|| str_at(d, "caller.number"))
    };
    // A workspace's licence (seed 003's billing feed includes them) makes it a place.
    let workspace = match at(d, "license.workspace") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        _ => false,
    };
    let user_type = match str_at(d, "owner.kind") {
        _ if workspace => "Place",
        Some("user") => "User",
        Some("answer_group") => "HuntGroup",
        _ => "",
    };
    let mut r = Map::new();
    let mut put = |k: &str, v: Value| {
        r.insert(k.to_string(), v);
    };
    put(
        "Answer indicator",
        json!(if answered { "Yes" } else { "No" }),
    );
    put("Answer time", time(d, "answered_at"));
    put("Answered", json!(if answered { "true" } else { "false" }));
    put(
        "Auto Attendant Key Pressed",
        text(str_at(d, "dtmf").and_then(|k| k.get(k.len().saturating_sub(1)..))),
    );
    put(
        "Call Recording Result",
        json!(if recorded { "successful" } else { "" }),
    );
    put("Call outcome", json!(outcome));
    put("Call outcome reason", json!(reason));
    put("Call type", json!(kind));
    put("Called line ID", text(str_at(d, "callee.name")));
    put("Called number", text(str_at(d, "callee.number")));
    put("Caller ID number", text(caller_id));
    put("Calling line ID", text(str_at(d, "caller.name")));
    put("Calling number", text(str_at(d, "caller.number")));
    put("Correlation ID", json!(event.call_id));
    put(
        "Direction",
        json!(if inbound {
            "TERMINATING"
        } else {
            "ORIGINATING"
        }),
    );
    put("Duration", json!(duration));
    put(
        "Hold Duration",
        json!(f64_at(d, "hold_ms").map_or(0, |ms| (ms / 1000.0).floor() as i64)),
    );
    put(
        "International country",
        text(str_at(d, "callee.country").filter(|_| kind == "SIP_INTERNATIONAL")),
    );
    put("Location", text(local_at("location")));
    put("Org UUID", json!(event.tenant_id));
    put("Redirecting number", text(str_at(d, "referred_by")));
    put(
        "Queue Type",
        json!(if str_at(d, "queued_at").is_some() {
            "Call Queue"
        } else {
            ""
        }),
    );
    put("Release time", time(d, "ended_at"));
    put("Report ID", json!(report_id(&event.tenant_id, &event.id)));
    // Seed 003: the report time is when the call completed (what the records API selects on).
    put(
        "Report time",
        json!(crate::time::format_ms(
            str_at(d, "ended_at")
                .and_then(epoch_ms)
                .unwrap_or(event.occurred_at_ms)
        )),
    );
    put("Ring duration", json!(f64_at(d, "ring_ms").map_or(0, secs)));
    put("Site timezone", text(site_offset(d).as_deref()));
    put("Start time", time(d, "started_at"));
    put(
        "Transfer related call ID",
        text(str_at(d, "previous_call_id")),
    );
    put("User", text(user_name));
    put("User number", text(local_at("number")));
    put("User type", json!(user_type));
    put(
        "User UUID",
        text(str_at(d, "owner.user_id").or_else(|| local_at("user_id"))),
    );
    r
}

/// The body: `{"items": [record]}` for one call.
pub fn render(event: &Event) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "items".into(),
        Value::Array(vec![Value::Object(record(event))]),
    );
    out
}

/// One item of a window's batch, the privacy rules applied as they are to a real-time record
/// (each item by its own call's direction).
pub fn batch_item(event: &Event, rules: &super::privacy::Rules) -> Value {
    let mut body = render(event);
    super::privacy::apply(
        &mut body,
        super::Profile::WebexCdr,
        event,
        crate::model::event::EventKind::CallCompleted,
        rules,
    );
    match body.remove("items") {
        Some(Value::Array(mut items)) if !items.is_empty() => items.swap_remove(0),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ids_are_stable_uuids_per_tenant_and_event() {
        let a = report_id("org-1", "e1");
        assert_eq!(a, report_id("org-1", "e1"));
        assert_ne!(a, report_id("org-2", "e1"));
        assert_ne!(a, report_id("org-1", "e2"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "version 8");
    }
}
