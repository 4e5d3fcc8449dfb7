//! The `canonical` profile: the stored event plus `delivery_id`.

use bytes::{BufMut, Bytes, BytesMut};

/// The stored JSON was serialised once at ingest and begins with `{`; the delivery id is spliced
/// in front of its first field instead of parsing and serialising the event again per delivery.
pub fn render(stored: &str, delivery_id: &str) -> Bytes {
    let id = serde_json::to_string(delivery_id).unwrap_or_else(|_| String::from("\"\""));
    let rest = stored.strip_prefix('{').unwrap_or(stored);
    let mut out = BytesMut::with_capacity(stored.len() + id.len() + 16);
    out.put_slice(b"{\"delivery_id\":");
    out.put_slice(id.as_bytes());
    if !rest.trim_start().starts_with('}') {
        out.put_u8(b',');
    }
    out.put_slice(rest.as_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn delivery_id_is_added_to_the_stored_event() {
        let stored = r#"{"id":"pbx7-000123","type":"call.completed","tenant_id":"acme","occurred_at":"2026-11-22T10:00:00.123Z","call_id":"c-42","data":{"answered":true}}"#;
        let body = render(stored, "dlv_1");
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            v,
            json!({"delivery_id": "dlv_1", "id": "pbx7-000123", "type": "call.completed",
                   "tenant_id": "acme", "occurred_at": "2026-11-22T10:00:00.123Z",
                   "call_id": "c-42", "data": {"answered": true}})
        );
    }
}
