//! Small helpers for reading the canonical call record and writing profile fields.

use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};

pub use crate::model::fields::{at, bool_at, f64_at, str_at};

/// A time as ISO 8601 with its offset (`2022-12-21T22:31:56+00:00`), keeping the source's offset;
/// fractions only when the source had them.
pub fn iso_offset(s: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

/// Epoch milliseconds of an RFC 3339 time.
pub fn epoch_ms(s: &str) -> Option<i64> {
    crate::time::parse_rfc3339_ms(s)
}

/// Milliseconds to whole seconds, rounded half up.
pub fn secs(ms: f64) -> i64 {
    ((ms / 1000.0) + 0.5).floor() as i64
}

/// Writes `value` under `key` when it is `Some`; absent values are omitted.
pub fn put(out: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        out.insert(key.to_string(), v);
    }
}

/// Writes `value` under `key`, or `null` when it is `None` (for fields a profile says are null).
pub fn put_or_null(out: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    out.insert(key.to_string(), value.unwrap_or(Value::Null));
}

pub fn flag(b: Option<bool>) -> Option<Value> {
    b.map(|b| Value::from(b as u8))
}

pub fn string(s: Option<&str>) -> Option<Value> {
    s.map(|s| Value::String(s.to_string()))
}
