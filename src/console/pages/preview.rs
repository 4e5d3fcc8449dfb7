//! The live preview of a template on the integration form: the form's script posts the
//! template, an event type and the privacy rules here as the user types, and shows the answer.
//! JSON in, JSON out; the same checks as the API's `POST /v1/templates/preview`, which it calls.

use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::Value;

use crate::api::integrations::{render_preview, PreviewIn};
use crate::console::form::{privacy_from_fields, Fields};
use crate::console::session::Session;
use crate::error::ApiError;
use crate::serve::body::typed;

/// What the template box holds until the user writes their own.
pub const STARTER_TEMPLATE: &str = r#"{
  "call_id": "{{ call_id }}",
  "event": "{{ type }}",
  "at": "{{ occurred_at | epoch_ms }}",
  "direction": "{{ data.direction | upper | default('UNKNOWN') }}",
  "from": "{{ data.caller.number }}",
  "to": "{{ data.callee.number }}"
}"#;

pub async fn template_preview(sess: Session, Form(f): Form<Vec<(String, String)>>) -> Response {
    let f = Fields(f);
    if !sess.csrf_ok(f.get("csrf")) {
        return ApiError::forbidden("the form has expired; reload the page").into_response();
    }
    let answer = privacy_from_fields(&f)
        .map_err(|m| ApiError::unprocessable("invalid_setting", m))
        .and_then(|privacy| {
            typed::<PreviewIn>(
                serde_json::json!({
                    "template": f.get("template").unwrap_or_default(),
                    "event_type": f.get("event_type").unwrap_or_default(),
                    "privacy": Value::Object(privacy),
                }),
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_setting",
            )
        })
        .and_then(render_preview);
    match answer {
        Ok(out) => Json(out).into_response(),
        Err(e) => e.into_response(),
    }
}
