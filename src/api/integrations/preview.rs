//! `POST /v1/templates/preview`: a template rendered over the example event of one type, with
//! privacy rules, exactly as an integration with that template would send it; nothing is
//! stored and nothing is sent. The console's live preview calls it as the signed-in user.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::common::setting;
use crate::api::{AppState, LazyBody};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::event::EventKind;
use crate::model::integration::{IntegrationSpec, PrivacyRule, PrivacyTarget};
use crate::model::settings::validate;
use crate::render::samples;
use crate::security::ssrf::DestinationPolicy;
use crate::serve::body::typed;

/// A template to try.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewIn {
    /// The template, as an integration's `template` setting.
    pub template: String,
    /// Whose example event to render: a subscribable type.
    pub event_type: EventKind,
    /// Privacy rules, as an integration's.
    #[serde(default)]
    pub privacy: BTreeMap<PrivacyTarget, PrivacyRule>,
}

/// The example event and what the template makes of it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct PreviewOut {
    /// The example event as stored (canonical, before privacy rules).
    #[schema(value_type = Object)]
    pub event: Value,
    /// The body an integration with this template would send for it: any JSON value.
    #[schema(value_type = Value)]
    pub payload: Value,
}

#[utoipa::path(post, path = "/v1/templates/preview", tag = "integrations", request_body = PreviewIn,
    responses((status = 200, body = PreviewOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn preview(
    State(s): State<AppState>,
    _p: Principal,
    body: LazyBody,
) -> ApiResult<Json<PreviewOut>> {
    let (body, _share) = body.read(&s.bodies).await?.split();
    let input: PreviewIn = typed(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting")?;
    let out = render_preview(input)?;
    Ok(Json(out))
}

pub(crate) fn render_preview(input: PreviewIn) -> ApiResult<PreviewOut> {
    if !input.event_type.is_subscribable() {
        return Err(ApiError::unprocessable(
            "invalid_setting",
            "`event_type` must be a type an integration can take, such as call.completed",
        ));
    }
    // The settings an integration with this template would have; the URL is never used.
    let spec: IntegrationSpec = typed(
        json!({"name": "preview", "url": "https://preview.invalid/", "profile": "template",
               "template": input.template, "event_types": [input.event_type],
               "privacy": input.privacy, "verification": "none"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_setting",
    )?;
    let valid = validate(spec, false, DestinationPolicy::default()).map_err(setting)?;
    let example = samples::event(input.event_type, "example-tenant");
    let rendered = samples::try_example(&valid, input.event_type, "example-tenant")
        .map_err(|m| ApiError::unprocessable("invalid_template", m))?;
    Ok(PreviewOut {
        event: serde_json::from_str(&example.body).unwrap_or(Value::Null),
        payload: serde_json::from_slice(&rendered.body).unwrap_or(Value::Null),
    })
}
