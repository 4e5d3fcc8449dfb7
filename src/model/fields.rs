//! Reading the canonical call record: the value at a dotted path (`caller.number`,
//! `tags.vip`), typed.

use serde_json::{Map, Value};

/// The value at a dotted path, if present and not null.
pub fn at<'a>(root: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = root.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    (!cur.is_null()).then_some(cur)
}

pub fn str_at<'a>(root: &'a Map<String, Value>, path: &str) -> Option<&'a str> {
    at(root, path)?.as_str()
}

pub fn bool_at(root: &Map<String, Value>, path: &str) -> Option<bool> {
    at(root, path)?.as_bool()
}

pub fn f64_at(root: &Map<String, Value>, path: &str) -> Option<f64> {
    at(root, path)?.as_f64()
}
