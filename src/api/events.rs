//! Ingest: `POST /v1/events`. Answers 202 only once the events and their deliveries are durable.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{AppState, JsonValue};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ingest::{parse_body, plan};
use crate::model::tenancy::Role;
use crate::store::IngestBatch;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", post(ingest))
}

async fn ingest(
    State(s): State<AppState>,
    p: Principal,
    JsonValue(body): JsonValue,
) -> ApiResult<(StatusCode, Json<Value>)> {
    p.require(
        matches!(p.role, Role::Operator | Role::Ingest),
        "post events (use an ingest token)",
    )?;
    let events = parse_body(body).map_err(|m| ApiError::bad_request("invalid_event", m))?;
    let mut partners: std::collections::HashMap<String, Option<String>> = Default::default();
    for e in &events {
        if let Some(own) = &p.tenant_id {
            if &e.tenant_id != own {
                return Err(ApiError::forbidden(format!(
                    "this ingest token is for tenant `{own}`; event `{}` is for `{}`",
                    e.id, e.tenant_id
                )));
            }
        }
        if !partners.contains_key(&e.tenant_id) {
            let Some(partner) = s.tenant_partner(&e.tenant_id).await? else {
                return Err(ApiError::unprocessable(
                    "unknown_tenant",
                    format!(
                        "event `{}` names tenant `{}`, which does not exist",
                        e.id, e.tenant_id
                    ),
                ));
            };
            partners.insert(e.tenant_id.clone(), partner);
        }
    }
    let items = events
        .into_iter()
        .map(|e| {
            let partner = partners.get(&e.tenant_id).cloned().flatten();
            plan(e, &s.cache, partner.as_deref())
        })
        .collect();
    let batch = IngestBatch {
        items,
        lease: s.dispatcher.lease(),
        now: crate::time::now_ms(),
    };
    let outcome = s.store.ingest(batch).await?;
    for kind in &outcome.accepted_kinds {
        crate::metrics::METRICS.ingested(*kind);
    }
    for _ in 0..outcome.duplicates {
        crate::metrics::METRICS.duplicate();
    }
    s.dispatcher.dispatch(outcome.ready);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"accepted": outcome.accepted, "duplicates": outcome.duplicates})),
    ))
}
