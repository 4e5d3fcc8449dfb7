//! Request bodies: JSON with clear errors (413 over the limit, 400 for bad JSON).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON body as a `Value`; handlers turn it into their typed input and choose the status
/// for shape errors (400 for events, 422 for settings).
pub struct JsonValue(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonValue {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the body is larger than this server accepts (CALLHOOK_MAX_BODY_BYTES); split it into smaller requests",
                )
            } else {
                ApiError::bad_request("unreadable_body", e.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "empty_body",
                "the body is empty; send a JSON object",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonValue).map_err(|e| {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        })
    }
}

/// Deserialises a typed input from a body, with `status` for shape errors.
pub fn typed<T: serde::de::DeserializeOwned>(
    v: Value,
    status: StatusCode,
    code: &'static str,
) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::new(status, code, e.to_string()))
}

/// Like [`JsonValue`], but an empty body reads as `{}` (for actions whose body is optional).
pub struct OptionalJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for OptionalJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match JsonValue::from_request(req, state).await {
            Ok(JsonValue(v)) => Ok(OptionalJson(v)),
            Err(e) if e.code == "empty_body" => Ok(OptionalJson(Value::Object(Default::default()))),
            Err(e) => Err(e),
        }
    }
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.shift_remove(&k);
                    } else {
                        merge_patch(t.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other,
    }
}

/// The merge patch that turns `from` into `to` (the inverse of [`merge_patch`]): keys `to`
/// lacks become `null`. Lets a whole-form edit go through the same PATCH path as the API.
/// (A `null` inside `to` cannot be expressed in a merge patch; settings never hold one.)
pub fn diff_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut patch = serde_json::Map::new();
            for k in f.keys().filter(|k| !t.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            for (k, v) in t {
                match f.get(k) {
                    Some(old) if old == v => {}
                    Some(old) => {
                        patch.insert(k.clone(), diff_patch(old, v));
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        (_, to) => to.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": 1, "h": {"x": "1", "y": "2"}, "l": [1, 2]});
        merge_patch(
            &mut t,
            json!({"a": null, "h": {"x": null, "z": "3"}, "l": [3]}),
        );
        assert_eq!(t, json!({"h": {"y": "2", "z": "3"}, "l": [3]}));
    }

    #[test]
    fn diff_patch_inverts_merge_patch() {
        let from = json!({"a": 1, "h": {"x": "1", "y": "2"}, "l": [1, 2], "gone": {"k": 1}});
        let to = json!({"a": 2, "h": {"y": "2", "z": "3"}, "l": [1, 2], "new": {"k": [1]}});
        let patch = diff_patch(&from, &to);
        assert_eq!(
            patch,
            json!({"gone": null, "a": 2, "h": {"x": null, "z": "3"}, "new": {"k": [1]}})
        );
        let mut applied = from.clone();
        merge_patch(&mut applied, patch);
        assert_eq!(applied, to);
    }
}
