//! Ingest in a source's own format: `POST /v1/sources/freeswitch/cdr` takes FreeSWITCH
//! `mod_json_cdr` posts as they are, and stores them like any `call.completed`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};

use super::{AppState, LazyBody};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ingest::accept::{accept, may_ingest, IngestOut};
use crate::ingest::freeswitch;
use crate::model::event::parse_event;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sources/freeswitch/cdr", post(freeswitch_cdr))
}

/// What callhook reads of a mod_json_cdr document; everything else in it is ignored.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the OpenAPI shape of the body; read as JSON by the ingest source
pub(crate) struct FreeswitchCdr {
    variables: FreeswitchVariables,
    /// `[{"caller_profile": {"caller_id_number", "caller_id_name", "destination_number"}}]`.
    #[schema(value_type = Option<Vec<Object>>)]
    callflow: Option<Vec<serde_json::Value>>,
}

/// The channel variables callhook reads (strings, percent-encoded as FreeSWITCH sends them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct FreeswitchVariables {
    /// The leg's id: the event's id.
    #[schema(pattern = "^[0-9a-f][0-9a-f-]{0,63}$")]
    uuid: String,
    /// The call's id, shared by its legs (default: `uuid`).
    #[schema(pattern = "^[0-9a-f][0-9a-f-]{0,63}$")]
    call_uuid: Option<String>,
    /// Seconds since the epoch (or `start_uepoch`, microseconds).
    #[schema(pattern = "^[1-9][0-9]{9}$")]
    start_epoch: String,
    /// `0` when nobody answered.
    #[schema(pattern = "^(0|[1-9][0-9]{9})$")]
    answer_epoch: Option<String>,
    #[schema(pattern = "^[1-9][0-9]{9}$")]
    end_epoch: Option<String>,
    caller_id_number: Option<String>,
    caller_id_name: Option<String>,
    destination_number: Option<String>,
    hangup_cause: Option<String>,
}

/// mod_json_cdr's `cred` sends HTTP Basic; the password is the ingest token (any user name).
#[utoipa::path(post, path = "/v1/sources/freeswitch/cdr", tag = "events",
    params(("tenant_id" = Option<String>, Query, description = "required with an operator token")),
    request_body(content = FreeswitchCdr, description = "a mod_json_cdr document: JSON, or form-encoded `cdr=` (plain or base64)"),
    responses((status = 202, body = IngestOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn freeswitch_cdr(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: LazyBody,
) -> ApiResult<(StatusCode, Json<IngestOut>)> {
    may_ingest(&p)?;
    let tenant_id = match (&p.tenant_id, q.get("tenant_id")) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::forbidden(format!(
                "this token posts for tenant `{own}` only"
            )))
        }
        (Some(own), _) => own.clone(),
        (None, Some(asked)) => asked.clone(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "tenant_required",
                "name the tenant: add `?tenant_id=…` to the URL in mod_json_cdr's `url` param, or use a tenant's ingest token",
            ))
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let bad = |m: String| ApiError::bad_request("invalid_cdr", m);
    let body = body.bytes(&s.bodies).await?;
    let doc = freeswitch::document(content_type, &body.bytes).map_err(bad)?;
    let event = freeswitch::to_event(&doc, &tenant_id).map_err(bad)?;
    let event = parse_event(event).map_err(bad)?;
    let out = accept(&s, &p, vec![event]).await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}
