//! Ingest: `POST /v1/events`. Answers 202 only once the events and their deliveries are durable
//! (the use case is [`crate::ingest::accept`]; this is its HTTP face).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use super::{AppState, LazyBody};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ingest::accept::{accept, may_ingest, IngestOut};
use crate::ingest::parse_body;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", post(ingest))
}

/// One call event as a source sends it.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // describes the wire shape for the OpenAPI document; parsing is in `ingest`
pub(crate) struct EventIn {
    /// Unique per tenant; a repeat is acknowledged as a duplicate and not delivered again.
    /// 1–200 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    id: String,
    #[serde(rename = "type")]
    #[schema(schema_with = ingestible_types)]
    kind: crate::model::event::EventKind,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    tenant_id: String,
    /// RFC 3339, from 1970 on.
    #[schema(format = DateTime, pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-")]
    occurred_at: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    call_id: String,
    /// The type's fields (see the README's event reference).
    data: serde_json::Map<String, Value>,
}

/// The types a source may send (`call.unanswered` is derived, the operational ones callhook's).
fn ingestible_types() -> utoipa::openapi::Object {
    let kinds = crate::model::event::EventKind::EVERY
        .into_iter()
        .filter(|k| k.is_ingestible())
        .map(|k| k.as_str());
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(kinds))
        .build()
}

/// Several events at once (at most 10 000).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventBatchIn {
    #[schema(min_items = 1, max_items = 10000)]
    events: Vec<EventIn>,
}

/// An event, or `{"events": [...]}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum IngestBody {
    One(EventIn),
    Many(EventBatchIn),
}

#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = IngestBody,
    responses((status = 202, description = "durable: stored with their deliveries", body = IngestOut),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody),
              (status = 503, description = "busy, not ready, or the store cannot be reached: nothing stored, send it again", body = ErrorBody),
              (status = 507, description = "the store's disk is full: nothing stored", body = ErrorBody)))]
pub(crate) async fn ingest(
    State(s): State<AppState>,
    p: Principal,
    body: LazyBody,
) -> ApiResult<(StatusCode, Json<IngestOut>)> {
    may_ingest(&p)?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let events = parse_body(body).map_err(|m| ApiError::bad_request("invalid_event", m))?;
    let out = accept(&s, &p, events).await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}
