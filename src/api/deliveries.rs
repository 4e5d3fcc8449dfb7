//! The delivery log and redelivery.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::integrations::{manage, owned, param, Params};
use super::{time_param, AppState, JsonValue};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::{DeliveryFilter, DeliveryStatus};
use crate::time::now_ms;

pub fn router() -> Router<AppState> {
    routes("/v1/tenants/{tid}/integrations/{iid}")
        .merge(routes("/v1/partners/{pid}/integrations/{iid}"))
}

fn routes(base: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{base}/deliveries"), get(list))
        .route(&format!("{base}/deliveries/{{did}}"), get(read))
        .route(
            &format!("{base}/deliveries/{{did}}/redeliver"),
            post(redeliver_one),
        )
        .route(&format!("{base}/redeliver"), post(redeliver_range))
}

pub(crate) async fn list(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let _ = owned(&s, &p, &params).await?;
    let iid = param(&params, "iid").to_string();
    let status = match q.get("status") {
        None => None,
        Some(v) => Some(DeliveryStatus::parse(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_status",
                "`status` must be pending, blocked, held, succeeded, failed or cancelled",
            )
        })?),
    };
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", "`limit` must be a number from 1 to 500")
            })?,
    };
    let filter = DeliveryFilter {
        status,
        since: time_param("since", q.get("since"))?,
        until: time_param("until", q.get("until"))?,
        before: q.get("cursor").cloned(),
        limit,
    };
    let items = s.store.list_deliveries(&iid, filter).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|d| d.id.clone()))
        .flatten();
    Ok(Json(json!({"items": items, "next_cursor": next_cursor})))
}

pub(crate) async fn read(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<Json<Value>> {
    let _ = owned(&s, &p, &params).await?;
    let (iid, did) = (
        param(&params, "iid").to_string(),
        param(&params, "did").to_string(),
    );
    let (view, attempts) = s
        .store
        .get_delivery(&did)
        .await?
        .filter(|(d, _)| d.integration_id == iid)
        .ok_or_else(|| ApiError::not_found(&format!("delivery `{did}`")))?;
    let mut v = serde_json::to_value(&view).map_err(ApiError::internal)?;
    v["attempts_log"] = json!(attempts);
    Ok(Json(v))
}

pub(crate) async fn redeliver_one(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (owner, _) = owned(&s, &p, &params).await?;
    let (iid, did) = (
        param(&params, "iid").to_string(),
        param(&params, "did").to_string(),
    );
    manage(&p, &owner)?;
    let found = s
        .store
        .get_delivery(&did)
        .await?
        .filter(|(d, _)| d.integration_id == iid);
    if found.is_none() {
        return Err(ApiError::not_found(&format!("delivery `{did}`")));
    }
    let job = s
        .store
        .redeliver(&did, s.dispatcher.lease(), now_ms())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(m) => ApiError::conflict("already_queued", m),
            other => other.into(),
        })?;
    s.dispatcher.dispatch(vec![job]);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": did, "status": "pending"})),
    ))
}

pub(crate) async fn redeliver_range(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    JsonValue(body): JsonValue,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (owner, _) = owned(&s, &p, &params).await?;
    let iid = param(&params, "iid").to_string();
    manage(&p, &owner)?;
    let get = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    let since = time_param("since", get("since").as_ref())?;
    let until = time_param("until", get("until").as_ref())?;
    let (Some(since), Some(until)) = (since, until) else {
        return Err(ApiError::bad_request(
            "invalid_range",
            "send `since` and `until` (RFC 3339) around the failed deliveries to resend",
        ));
    };
    if since >= until {
        return Err(ApiError::bad_request(
            "invalid_range",
            "`since` must be before `until`",
        ));
    }
    let now = now_ms();
    let queued = s.store.redeliver_failed(&iid, since, until, now).await?;
    s.dispatcher.note_due(&iid, now);
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": queued}))))
}
