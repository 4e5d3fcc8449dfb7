//! Conditions on the call record: a dotted `field` path, an operator and a value.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::event::Event;
use crate::model::Memo;

/// Most values in an `in` / `not_in` list.
pub const MAX_LIST_VALUES: usize = 1000;
/// Longest string a condition compares with (each list value too), in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// `in` / `not_in`: the list as a set, so matching costs one lookup whatever its length.
    #[serde(skip)]
    #[schema(ignore)]
    list: Memo<HashSet<Key>>,
}

/// A value as `in` compares it: numbers by value (65000 is 65000.0), the rest as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Number(u64),
    Other(String),
}

fn key(v: &Value) -> Key {
    match v.as_f64() {
        // +0.0 and -0.0 are one number.
        Some(f) => Key::Number(if f == 0.0 { 0 } else { f.to_bits() }),
        None => Key::Other(v.to_string()),
    }
}

/// What kind of value a field holds, so a condition's value can be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Boolean,
    /// Strings, times (compared as ISO 8601 strings), or anything (maps such as `tags`).
    Text,
}

const NUMBER_FIELDS: [&str; 12] = [
    "ring_ms",
    "talk_ms",
    "hold_ms",
    "park_ms",
    "wait_ms",
    "seq",
    "score",
    "talk_listen_ratio",
    "rally_count",
    "overlap_count",
    "silence_count",
    "rating.cost",
];
const BOOLEAN_FIELDS: [&str; 7] = [
    "answered",
    "lost",
    "lost_in_park",
    "abandoned",
    "short",
    "trunk_to_trunk",
    "rating.rated",
];

fn kind(path: &str) -> Kind {
    if NUMBER_FIELDS.contains(&path) {
        Kind::Number
    } else if BOOLEAN_FIELDS.contains(&path) {
        Kind::Boolean
    } else {
        Kind::Text
    }
}

/// Whether `v` can be compared with a field of `kind` (and is not too long to compare).
fn fits(kind: Kind, v: &Value) -> bool {
    match (kind, v) {
        (_, Value::String(s)) if s.len() > MAX_VALUE_BYTES => false,
        (Kind::Number, v) => v.is_number(),
        (Kind::Boolean, v) => v.is_boolean(),
        (Kind::Text, v) => v.is_string() || v.is_number() || v.is_boolean(),
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Prefix,
    Contains,
    Exists,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Every path of the call record a condition may name. `*` stands for any one key (maps such
/// as `tags`). Parents of listed paths (`caller`, `answered_by.user`) are valid too.
const PARTY: [&str; 8] = [
    "number", "name", "location", "area", "state", "country", "user_id", "email",
];
const RINGING: [&str; 4] = [
    "first_ringing",
    "last_ringing",
    "answered_by",
    "last_answered_by",
];
const SCALARS: [&str; 56] = [
    // call.completed
    "started_at",
    "answered_at",
    "ended_at",
    "queued_at",
    "queue_answered_at",
    "queue_ended_at",
    "timezone",
    "ring_ms",
    "talk_ms",
    "hold_ms",
    "park_ms",
    "wait_ms",
    "answered",
    "lost",
    "lost_in_park",
    "abandoned",
    "short",
    "cause",
    "direction",
    "scope",
    "trunk_to_trunk",
    "call_type",
    "did.number",
    "did.name",
    "circuit.number",
    "circuit.name",
    "pbx.id",
    "pbx.name",
    "route.id",
    "route.name",
    "agent.id",
    "agent.number",
    "agent.name",
    "answer_group.id",
    "answer_group.name",
    "owner.kind",
    "owner.user_id",
    "owner.answer_group_id",
    "referred_to",
    "referred_by",
    "previous_call_id",
    "dtmf",
    "recording_ids",
    "rating.rated",
    "rating.cost",
    "rating.band",
    "rating.name",
    "directory_matches",
    "tags.*",
    "memos",
    "comments",
    "license.partner_id",
    "license.workspace",
    // call.state
    "seq",
    "state",
    "termination_reason",
];
const MORE: [&str; 19] = [
    "function",
    "local.user_id",
    "local.email",
    "local.number",
    "local.device_type",
    "remote.user_id",
    "remote.email",
    "remote.number",
    // recording.completed, analysis.completed, ivr.input
    "recording_id",
    "recorder_id",
    "summary",
    "files",
    "score",
    "talk_listen_ratio",
    "rally_count",
    "overlap_count",
    "silence_count",
    "keywords",
    "ivr_number",
];

fn known_path(path: &str) -> bool {
    let fits = |pattern: &str| -> bool {
        let (p, q): (Vec<&str>, Vec<&str>) =
            (pattern.split('.').collect(), path.split('.').collect());
        q.len() <= p.len() && q.iter().zip(&p).all(|(a, b)| *b == "*" || a == b)
    };
    if SCALARS.iter().chain(MORE.iter()).any(|p| fits(p)) {
        return true;
    }
    let mut parts = path.splitn(2, '.');
    let head = parts.next().unwrap_or_default();
    let rest = parts.next();
    if head == "caller" || head == "callee" {
        return rest.is_none_or(|r| PARTY.contains(&r));
    }
    if RINGING.contains(&head) {
        let Some(rest) = rest else { return true };
        let mut sub = rest.splitn(2, '.');
        let who = sub.next().unwrap_or_default();
        let field = sub.next();
        let fields: &[&str] = match who {
            "device" => &["number", "name"],
            "user" | "agent" => &["id", "number", "name"],
            "group" => &["id", "name"],
            _ => return false,
        };
        return field.is_none_or(|f| fields.contains(&f));
    }
    false
}

impl Condition {
    /// Refuses unknown paths, values that do not fit the operator or the field, and values too
    /// long or too many to compare cheaply.
    pub fn check(&self) -> Result<(), String> {
        if self.field.split('.').any(str::is_empty) {
            return Err(format!(
                "`field` `{}` has an empty part; name a path such as `tags.vip`",
                self.field.escape_debug()
            ));
        }
        if !known_path(&self.field) {
            return Err(format!(
                "`field` `{}` is not a path of the call record (e.g. `scope`, `did.number`, `caller.number`, `tags.vip`)",
                self.field
            ));
        }
        let v = self.value.as_ref();
        let k = kind(&self.field);
        // Lists (`recording_ids`, `memos` …) are looked into with `contains`.
        let list_field = matches!(
            self.field.as_str(),
            "recording_ids" | "directory_matches" | "memos" | "comments" | "files" | "keywords"
        );
        let ok = match self.op {
            Op::Eq | Op::Ne => v.is_some_and(|v| fits(k, v)),
            Op::In | Op::NotIn => v.and_then(Value::as_array).is_some_and(|a| {
                !a.is_empty() && a.len() <= MAX_LIST_VALUES && a.iter().all(|x| fits(k, x))
            }),
            Op::Prefix => k == Kind::Text && v.is_some_and(|v| v.is_string() && fits(k, v)),
            Op::Contains => {
                (k == Kind::Text || list_field) && v.is_some_and(|v| fits(Kind::Text, v))
            }
            Op::Exists => v.is_none_or(Value::is_boolean),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => match k {
                Kind::Number => v.is_some_and(Value::is_number),
                Kind::Boolean => false,
                Kind::Text => v.is_some_and(|v| (v.is_number() || v.is_string()) && fits(k, v)),
            },
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`value` does not fit op `{}`: {}",
                op_name(self.op),
                op_hint(self.op)
            ))
        }
    }

    pub fn matches(&self, event: &Event) -> bool {
        let found = lookup(&event.data, &self.field)
            .or_else(|| event.call_snapshot().and_then(|c| lookup(c, &self.field)))
            .filter(|v| !v.is_null());
        let want = self.value.as_ref();
        match self.op {
            Op::Exists => found.is_some() == want.and_then(Value::as_bool).unwrap_or(true),
            Op::Eq => found.zip(want).is_some_and(|(a, b)| same(a, b)),
            Op::Ne => !found.zip(want).is_some_and(|(a, b)| same(a, b)),
            Op::In => found.is_some_and(|a| self.in_list(a)),
            Op::NotIn => !found.is_some_and(|a| self.in_list(a)),
            Op::Prefix => match (found.and_then(Value::as_str), want.and_then(Value::as_str)) {
                (Some(a), Some(b)) => a.starts_with(b),
                _ => false,
            },
            Op::Contains => match (found, want) {
                (Some(Value::String(a)), Some(Value::String(b))) => a.contains(b.as_str()),
                (Some(Value::Array(items)), Some(b)) => items.iter().any(|x| same(x, b)),
                _ => false,
            },
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                let Some(ord) = found.zip(want).and_then(|(a, b)| compare(a, b)) else {
                    return false;
                };
                match self.op {
                    Op::Gt => ord.is_gt(),
                    Op::Gte => ord.is_ge(),
                    Op::Lt => ord.is_lt(),
                    _ => ord.is_le(),
                }
            }
        }
    }
}

impl Condition {
    fn in_list(&self, found: &Value) -> bool {
        let set = self.list.get_or_init(|| {
            let items = self.value.as_ref().and_then(Value::as_array);
            items.into_iter().flatten().map(key).collect()
        });
        set.contains(&key(found))
    }
}

fn op_name(op: Op) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn op_hint(op: Op) -> &'static str {
    match op {
        Op::Eq | Op::Ne => "give a value of the field's kind (a number for `*_ms`, true/false for flags, else a string) of at most 1024 bytes",
        Op::In | Op::NotIn => "give a non-empty array of at most 1000 values of the field's kind",
        Op::Prefix => "give a string, on a text field",
        Op::Contains => "give a string (on a text field) or a single value to look for in a list field",
        Op::Exists => "give true, false or no value",
        _ => "give a number for numeric fields, or a string for text and time fields (timestamps compare as strings)",
    }
}

fn lookup<'a>(root: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = root.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::parse_event;
    use serde_json::json;

    fn cond(field: &str, op: &str, value: Value) -> Condition {
        serde_json::from_value(json!({"field": field, "op": op, "value": value}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn event() -> Event {
        parse_event(
            json!({"id": "e", "type": "call.completed", "tenant_id": "t",
            "occurred_at": "2026-11-22T10:00:00Z", "call_id": "c",
            "data": {"talk_ms": 65000, "caller": {"number": "+4930123"}, "tags": {"vip": "yes"},
                     "recording_ids": ["r1", "r2"], "ended_at": "2026-11-22T10:05:00Z"}}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_operator_evaluates_as_documented() {
        let e = event();
        let yes = [
            cond("talk_ms", "gt", json!(60000)),
            cond("talk_ms", "lte", json!(65000)),
            cond("caller.number", "prefix", json!("+49")),
            cond("caller.number", "contains", json!("301")),
            cond("recording_ids", "contains", json!("r2")),
            cond("tags.vip", "in", json!(["yes", "maybe"])),
            cond("tags.vip", "ne", json!("no")),
            cond("scope", "not_in", json!(["internal"])),
            cond("scope", "exists", json!(false)),
            cond("ended_at", "gte", json!("2026-11-22T10:00:00Z")),
            cond("talk_ms", "eq", json!(65000.0)),
        ];
        for c in yes {
            assert!(c.matches(&e), "{c:?} should hold");
        }
        let no = [
            cond("talk_ms", "lt", json!(60000)),
            cond("caller.number", "prefix", json!("+44")),
            cond("scope", "eq", json!("external")),
            cond("tags.vip", "exists", json!(false)),
        ];
        for c in no {
            assert!(!c.matches(&e), "{c:?} should not hold");
        }
    }

    #[test]
    fn unknown_paths_and_misfit_values_are_refused() {
        assert!(cond("did.number", "eq", json!("+44")).check().is_ok());
        assert!(cond("answered_by.user.id", "eq", json!("u1"))
            .check()
            .is_ok());
        assert!(cond("tags.anything", "exists", json!(true)).check().is_ok());
        assert!(cond("did.nmuber", "eq", json!("+44")).check().is_err());
        assert!(cond("answered_by.robot", "eq", json!("x")).check().is_err());
        assert!(cond("scope", "in", json!("external")).check().is_err());
        assert!(cond("scope", "prefix", json!(4)).check().is_err());
    }

    #[test]
    fn values_that_do_not_fit_the_field_are_refused() {
        for (field, op, value) in [
            ("talk_ms", "gt", json!("ten")),
            ("talk_ms", "eq", json!("65000")),
            ("talk_ms", "prefix", json!("6")),
            ("answered", "eq", json!("yes")),
            ("answered", "gt", json!(true)),
            ("talk_ms", "in", json!([1, "two"])),
            ("tags.", "eq", json!("x")),
            ("caller..number", "eq", json!("x")),
            ("scope", "eq", json!("x".repeat(MAX_VALUE_BYTES + 1))),
            ("scope", "in", json!(vec!["x"; MAX_LIST_VALUES + 1])),
            ("scope", "eq", json!({"an": "object"})),
        ] {
            assert!(
                cond(field, op, value.clone()).check().is_err(),
                "{field} {op} {value}"
            );
        }
        for (field, op, value) in [
            ("talk_ms", "gte", json!(1000)),
            ("answered", "eq", json!(false)),
            ("recording_ids", "contains", json!("r1")),
            ("tags.vip", "in", json!(["yes", 1])),
            ("ended_at", "lt", json!("2026-11-22T10:00:00Z")),
        ] {
            assert!(
                cond(field, op, value.clone()).check().is_ok(),
                "{field} {op} {value}"
            );
        }
    }

    #[test]
    fn in_lists_match_by_value_through_their_set() {
        let e = event();
        let mut many: Vec<Value> = (0..MAX_LIST_VALUES as i64 - 1).map(|n| json!(n)).collect();
        many.push(json!(65000.0));
        assert!(cond("talk_ms", "in", json!(many)).matches(&e));
        assert!(!cond("talk_ms", "not_in", json!([65000])).matches(&e));
        assert!(cond("talk_ms", "not_in", json!([1, 2])).matches(&e));
        assert!(!cond("tags.vip", "in", json!(["no"])).matches(&e));
    }
}
