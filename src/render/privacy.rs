//! Privacy rules, applied to the rendered payload so that no profile can leak a field a rule
//! removes. Each profile says which of its output fields hold the local and the remote party's
//! user id, e-mail, number and device type; where a call's direction does not tell which party
//! is local (internal, both, unknown), both parties' rules apply to both (the stricter wins).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fields::str_at;
use super::Profile;
use crate::model::event::{Event, EventKind};
use crate::model::integration::{PrivacyAction, PrivacyRule, PrivacyTarget};

/// An integration's privacy rules.
pub type Rules = BTreeMap<PrivacyTarget, PrivacyRule>;

/// Replaces the last `digits` digits with `X`, leaving other characters (`+`, spaces) in place.
pub fn mask(s: &str, digits: u8) -> String {
    let mut left = digits as usize;
    let mut chars: Vec<char> = s.chars().collect();
    for c in chars.iter_mut().rev() {
        if left == 0 {
            break;
        }
        if c.is_ascii_digit() {
            *c = 'X';
            left -= 1;
        }
    }
    chars.into_iter().collect()
}

/// Drops the last `digits` digits, with the separators between them, and any separator left
/// trailing: `+44 161 000 0001` less 4 digits is `+44 161 000`. A digit a mask turned into `X`
/// counts as a digit.
pub fn truncate(s: &str, digits: u8) -> String {
    let mut left = digits as usize;
    let mut chars: Vec<char> = s.chars().collect();
    while left > 0 {
        match chars.pop() {
            Some(c) if c.is_ascii_digit() || c == 'X' => left -= 1,
            Some(_) => {}
            None => break,
        }
    }
    while chars
        .last()
        .is_some_and(|c| !c.is_ascii_digit() && *c != '+')
    {
        chars.pop();
    }
    chars.into_iter().collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Local,
    Remote,
}

/// Which side(s) the caller is on: outbound → local, inbound → remote, otherwise both.
fn caller_sides(direction: Option<&str>) -> &'static [Side] {
    match direction {
        Some("outbound") => &[Side::Local],
        Some("inbound") => &[Side::Remote],
        _ => &[Side::Local, Side::Remote],
    }
}

fn callee_sides(direction: Option<&str>) -> &'static [Side] {
    match direction {
        Some("outbound") => &[Side::Remote],
        Some("inbound") => &[Side::Local],
        _ => &[Side::Local, Side::Remote],
    }
}

fn target(side: Side, field: &str) -> Option<PrivacyTarget> {
    Some(match (side, field) {
        (Side::Local, "user_id") => PrivacyTarget::LocalUserId,
        (Side::Local, "email") => PrivacyTarget::LocalEmail,
        (Side::Local, "number") => PrivacyTarget::LocalNumber,
        (Side::Remote, "user_id") => PrivacyTarget::RemoteUserId,
        (Side::Remote, "email") => PrivacyTarget::RemoteEmail,
        (Side::Remote, "number") => PrivacyTarget::RemoteNumber,
        _ => return None,
    })
}

/// The recorder is named by e-mail or by number; the rule that applies follows which.
fn recorder_field(d: &Map<String, Value>) -> &'static str {
    if str_at(d, "recorder_id").is_some_and(|r| r.contains('@')) {
        "email"
    } else {
        "number"
    }
}

/// (output path, target) pairs for one rendered payload.
fn fields(profile: Profile, event: &Event, trigger: EventKind) -> Vec<(String, PrivacyTarget)> {
    let d = &event.data;
    let mut out = Vec::new();
    let party =
        |out: &mut Vec<(String, PrivacyTarget)>, sides: &[Side], field: &str, path: String| {
            for s in sides {
                if let Some(t) = target(*s, field) {
                    out.push((path.clone(), t));
                }
            }
        };
    match profile {
        // Batch items had their rules applied one by one when the window closed (see
        // `batch_item`): each item has its own direction.
        Profile::CdrBatch => {}
        Profile::WebexCdr if event.kind == EventKind::CdrBatch => {}
        Profile::WebexCdr => {
            let dir = str_at(d, "direction");
            // "User …" is the tenant's party whichever way the call went.
            let local = &[Side::Local][..];
            party(
                &mut out,
                caller_sides(dir),
                "number",
                "items.Calling number".into(),
            );
            party(
                &mut out,
                caller_sides(dir),
                "number",
                "items.Caller ID number".into(),
            );
            party(
                &mut out,
                callee_sides(dir),
                "number",
                "items.Called number".into(),
            );
            party(&mut out, local, "number", "items.User number".into());
            party(&mut out, local, "user_id", "items.User UUID".into());
        }
        Profile::CallState => {
            for (key, t) in [
                ("local_user_id", PrivacyTarget::LocalUserId),
                ("local_email", PrivacyTarget::LocalEmail),
                ("local_number", PrivacyTarget::LocalNumber),
                ("device_type", PrivacyTarget::DeviceType),
                ("remote_user_id", PrivacyTarget::RemoteUserId),
                ("remote_email", PrivacyTarget::RemoteEmail),
                ("remote_number", PrivacyTarget::RemoteNumber),
            ] {
                out.push((key.to_string(), t));
            }
        }
        Profile::Cdr => {
            let dir = str_at(d, "direction");
            party(&mut out, caller_sides(dir), "number", "cdr.cliNum".into());
            for prefix in ["fRng", "lRng", "ans", "lAns"] {
                for kind in ["Dev", "Usr", "Agt"] {
                    party(
                        &mut out,
                        callee_sides(dir),
                        "number",
                        format!("cdr.{prefix}{kind}Num"),
                    );
                }
            }
        }
        Profile::CallHistory => {
            let call = if trigger == EventKind::CallUnanswered {
                Some(d)
            } else {
                event.call_snapshot()
            };
            let dir = call.and_then(|c| str_at(c, "direction"));
            party(
                &mut out,
                caller_sides(dir),
                "number",
                "call.details.from_number".into(),
            );
            party(
                &mut out,
                callee_sides(dir),
                "number",
                "call.details.to_number".into(),
            );
        }
        Profile::RecordingV1 | Profile::RecordingV2 => {
            let empty = Map::new();
            let call = event.call_snapshot().unwrap_or(&empty);
            let dir = super::recording::recorder_direction(d, call);
            party(&mut out, caller_sides(dir), "number", "callerNumber".into());
            party(&mut out, callee_sides(dir), "number", "calleeNumber".into());
            party(
                &mut out,
                &[Side::Local],
                recorder_field(d),
                "recorderId".into(),
            );
            party(&mut out, &[Side::Local], "user_id", "userId".into());
            party(&mut out, &[Side::Local], "user_id", "agentId".into());
        }
        // A template's input is the canonical payload: its rules apply before the template
        // runs, so no field the template places can escape them.
        Profile::Canonical | Profile::Template => {
            if event.kind == EventKind::CallState {
                for (side, name) in [(Side::Local, "local"), (Side::Remote, "remote")] {
                    for field in ["user_id", "email", "number"] {
                        party(&mut out, &[side], field, format!("data.{name}.{field}"));
                    }
                }
                out.push(("data.local.device_type".into(), PrivacyTarget::DeviceType));
            } else {
                // The CDR itself, and the call snapshot other events carry.
                for (prefix, record) in [("data", Some(d)), ("data.call", event.call_snapshot())] {
                    let Some(record) = record else { continue };
                    let dir = str_at(record, "direction");
                    for field in ["user_id", "email", "number"] {
                        party(
                            &mut out,
                            caller_sides(dir),
                            field,
                            format!("{prefix}.caller.{field}"),
                        );
                        party(
                            &mut out,
                            callee_sides(dir),
                            field,
                            format!("{prefix}.callee.{field}"),
                        );
                    }
                    party(
                        &mut out,
                        &[Side::Local],
                        "user_id",
                        format!("{prefix}.owner.user_id"),
                    );
                    // The line the call used is the tenant's side of it.
                    party(
                        &mut out,
                        &[Side::Local],
                        "number",
                        format!("{prefix}.circuit.number"),
                    );
                    for ring in [
                        "first_ringing",
                        "last_ringing",
                        "answered_by",
                        "last_answered_by",
                    ] {
                        let sides = callee_sides(dir);
                        party(
                            &mut out,
                            sides,
                            "user_id",
                            format!("{prefix}.{ring}.user.id"),
                        );
                        for who in ["device", "user", "agent"] {
                            party(
                                &mut out,
                                sides,
                                "number",
                                format!("{prefix}.{ring}.{who}.number"),
                            );
                        }
                    }
                }
                party(
                    &mut out,
                    &[Side::Local],
                    recorder_field(d),
                    "data.recorder_id".into(),
                );
                // The number an IVR answered on is the number the caller dialled.
                let dir = event
                    .call_snapshot()
                    .and_then(|c| str_at(c, "direction"))
                    .or_else(|| str_at(d, "direction"));
                party(
                    &mut out,
                    callee_sides(dir),
                    "number",
                    "data.ivr_number".into(),
                );
            }
        }
    }
    out
}

/// Applies the rules to a rendered payload.
pub fn apply(
    payload: &mut Map<String, Value>,
    profile: Profile,
    event: &Event,
    trigger: EventKind,
    rules: &BTreeMap<PrivacyTarget, PrivacyRule>,
) {
    if rules.values().all(|r| r.action == PrivacyAction::Keep) {
        return;
    }
    // Masks first, then truncations, removals last: where two rules reach one field (the
    // direction does not tell the parties apart) both apply, so the stricter one wins.
    let mut actions: Vec<(String, &PrivacyRule)> = fields(profile, event, trigger)
        .into_iter()
        .filter_map(|(path, t)| {
            rules
                .get(&t)
                .filter(|r| r.action != PrivacyAction::Keep)
                .map(|r| (path, r))
        })
        .collect();
    actions.sort_by_key(|(_, r)| match r.action {
        PrivacyAction::Keep | PrivacyAction::Mask => 0,
        PrivacyAction::Truncate => 1,
        PrivacyAction::Remove => 2,
    });
    for (path, rule) in actions {
        edit(payload, &path, rule);
    }
}

/// Applies a rule at a dotted path; arrays on the way apply it to each element.
fn edit(root: &mut Map<String, Value>, path: &str, rule: &PrivacyRule) {
    let parts: Vec<&str> = path.split('.').collect();
    edit_in(root, &parts, rule);
}

fn edit_in(map: &mut Map<String, Value>, parts: &[&str], rule: &PrivacyRule) {
    let [first, rest @ ..] = parts else { return };
    if rest.is_empty() {
        match rule.action {
            PrivacyAction::Keep => {}
            PrivacyAction::Remove => {
                map.shift_remove(*first);
            }
            PrivacyAction::Mask => {
                if let Some(Value::String(s)) = map.get_mut(*first) {
                    *s = mask(s, rule.digits.unwrap_or(0));
                }
            }
            PrivacyAction::Truncate => {
                if let Some(Value::String(s)) = map.get_mut(*first) {
                    *s = truncate(s, rule.digits.unwrap_or(0));
                }
            }
        }
        return;
    }
    match map.get_mut(*first) {
        Some(Value::Object(m)) => edit_in(m, rest, rule),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::Object(m) = item {
                    edit_in(m, rest, rule);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_replaces_only_the_last_digits() {
        assert_eq!(mask("+358942720001", 4), "+35894272XXXX");
        assert_eq!(mask("+44 161 000 0001", 5), "+44 161 00X XXXX");
        assert_eq!(mask("123", 15), "XXX");
    }

    #[test]
    fn truncating_drops_only_the_last_digits_and_the_separators_left_trailing() {
        assert_eq!(truncate("+358942720001", 4), "+35894272");
        assert_eq!(truncate("+44 161 000 0001", 5), "+44 161 00");
        assert_eq!(truncate("+44 161 000 0001", 4), "+44 161 000");
        assert_eq!(truncate("123", 15), "");
        assert_eq!(truncate("+1", 1), "+");
        assert_eq!(truncate(&mask("+358942720001", 4), 4), "+35894272");
    }
}
