//! The delivery log and redelivery.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::integrations::{manage, owned, param, Params};
use super::{time_param, AppState, LazyBody};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::store::{AttemptView, DeliveryFilter, DeliveryStatus, DeliveryView};

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

/// A page of the delivery log, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One delivery and each of its attempts.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    pub attempts_log: Vec<AttemptView>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Requeued {
    pub id: String,
    /// Always `pending`: the redelivery is queued.
    pub status: String,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // the OpenAPI shape of the body; read as JSON below
pub(crate) struct RangeIn {
    /// RFC 3339: failed deliveries created at or after this time…
    #[schema(format = DateTime)]
    since: String,
    /// …and before this one.
    #[schema(format = DateTime)]
    until: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RangeQueued {
    pub queued: u64,
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/integrations/{iid}/deliveries", tag = "deliveries",
    params(("tid" = String, Path), ("iid" = String, Path),
        ("status" = Option<DeliveryStatus>, Query, description = "pending, blocked, held, succeeded, failed or cancelled"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339: created at or after"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339: created before"),
        ("cursor" = Option<String>, Query, pattern = "^dlv_[0-9a-z]{26}$", description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1–500, default 50")),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<DeliveryPage>> {
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
    let limit = super::limit_param(q.get("limit"), 50)?;
    let filter = DeliveryFilter {
        status,
        since: time_param("since", q.get("since"))?,
        until: time_param("until", q.get("until"))?,
        before: match q.get("cursor") {
            None => None,
            // A cursor is a delivery id (`next_cursor` of the previous page).
            Some(c)
                if c.strip_prefix("dlv_").is_some_and(|u| {
                    u.len() == 26
                        && u.bytes()
                            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
                }) =>
            {
                Some(c.clone())
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_cursor",
                    "`cursor` must be the `next_cursor` of a previous page, as it was given",
                ))
            }
        },
        limit,
    };
    let items = s.store.list_deliveries(&iid, filter).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|d| d.id.clone()))
        .flatten();
    Ok(Json(DeliveryPage { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/integrations/{iid}/deliveries/{did}", tag = "deliveries",
    params(("tid" = String, Path), ("iid" = String, Path), ("did" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<Json<DeliveryDetail>> {
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
    Ok(Json(DeliveryDetail {
        delivery: view,
        attempts_log: attempts,
    }))
}

#[utoipa::path(post, path = "/v1/tenants/{tid}/integrations/{iid}/deliveries/{did}/redeliver", tag = "deliveries",
    params(("tid" = String, Path), ("iid" = String, Path), ("did" = String, Path)),
    responses((status = 202, body = Requeued), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "already queued", body = ErrorBody)))]
pub(crate) async fn redeliver_one(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<(StatusCode, Json<Requeued>)> {
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
        .redeliver(&did, s.dispatcher.lease(), s.now_ms())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(m) => ApiError::conflict("already_queued", m),
            other => other.into(),
        })?;
    s.dispatcher.dispatch(vec![job]);
    Ok((
        StatusCode::ACCEPTED,
        Json(Requeued {
            id: did,
            status: "pending".into(),
        }),
    ))
}

#[utoipa::path(post, path = "/v1/tenants/{tid}/integrations/{iid}/redeliver", tag = "deliveries",
    params(("tid" = String, Path), ("iid" = String, Path)), request_body = RangeIn,
    responses((status = 202, body = RangeQueued), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn redeliver_range(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    body: LazyBody,
) -> ApiResult<(StatusCode, Json<RangeQueued>)> {
    let (owner, _) = owned(&s, &p, &params).await?;
    let iid = param(&params, "iid").to_string();
    manage(&p, &owner)?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let get = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    let since = time_param("since", get("since").as_ref())?;
    let until = time_param("until", get("until").as_ref())?;
    let (Some(since), Some(until)) = (since, until) else {
        return Err(ApiError::bad_request(
            "invalid_range",
            "send `since` and `until` (RFC 3339) around the failed deliveries to resend",
        ));
    };
    // `since` = `until` is an empty range: nothing to resend, not a mistake.
    if since > until {
        return Err(ApiError::bad_request(
            "invalid_range",
            "`since` must not be after `until`",
        ));
    }
    let now = s.now_ms();
    let queued = s.store.redeliver_failed(&iid, since, until, now).await?;
    s.dispatcher.note_due(&iid, now);
    Ok((StatusCode::ACCEPTED, Json(RangeQueued { queued })))
}
