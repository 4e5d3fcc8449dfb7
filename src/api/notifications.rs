//! A tenant's notifications: the operational events callhook made about its integrations
//! (failing, disabled, recovered; deliveries that used up their retries), newest first. They
//! are stored whether or not an integration subscribes to them.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};

use super::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::tenancy::Role;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tenants/{tid}/notifications", get(list))
}

/// One operational event, as its subscribers receive it in the `canonical` profile.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// `ntf_…`: the `id` in its deliveries' payload (their `webhook-id` is each delivery's own).
    pub id: String,
    /// `integration.failing`, `integration.disabled`, `integration.recovered` or
    /// `delivery.exhausted`.
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: String,
    /// `IntegrationAlert` for the `integration.*` types, `DeliveryExhausted` for the other.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The page a tenant's readers see; limited to the integrations a scoped session may see.
pub(crate) async fn page(
    s: &AppState,
    p: &Principal,
    tid: &str,
    cursor: Option<&str>,
    limit: u32,
) -> ApiResult<NotificationPage> {
    p.require(
        !matches!(p.role, Role::Ingest),
        "read notifications (use an admin or viewer token)",
    )?;
    let tenant = s.visible_tenant(p, tid).await?;
    let before = match cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "`cursor` must be the `next_cursor` of a previous page, as it was given",
            )
        })?),
    };
    // A session limited to some integrations sees only the notifications about them: it reads
    // on, a chunk at a time, until its page is full (at most 10 000 rows a request).
    let (chunk, rounds) = match p.integrations {
        None => (limit, 1),
        Some(_) => (500, 20),
    };
    let mut before = before;
    let mut items = Vec::new();
    let mut next_cursor = None;
    'chunks: for _ in 0..rounds {
        let rows = s
            .store
            .list_notifications(&tenant.id, before, chunk)
            .await?;
        let more = rows.len() == chunk as usize;
        for (seq, body) in rows {
            if items.len() == limit as usize {
                break 'chunks;
            }
            before = Some(seq);
            if let Some(n) = visible(p, &body) {
                items.push(n);
            }
        }
        next_cursor = more.then(|| before.map(|b| b.to_string())).flatten();
        if !more || items.len() == limit as usize {
            break;
        }
    }
    if items.len() == limit as usize {
        next_cursor = before.map(|b| b.to_string());
    }
    Ok(NotificationPage { items, next_cursor })
}

/// A stored operational event as the caller may see it, or `None`.
fn visible(p: &Principal, body: &str) -> Option<Notification> {
    let Value::Object(mut e) = serde_json::from_str(body).ok()? else {
        return None;
    };
    let Value::Object(data) = e.remove("data")? else {
        return None;
    };
    let about = data.get("integration_id").and_then(Value::as_str);
    if !about.is_some_and(|iid| p.sees_integration(iid)) {
        return None;
    }
    let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Notification {
        id: text("id")?,
        kind: text("type")?,
        occurred_at: text("occurred_at")?,
        data,
    })
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/notifications", tag = "notifications",
    params(("tid" = String, Path),
        ("cursor" = Option<String>, Query, pattern = "^[1-9][0-9]{0,17}$", description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1–500, default 50")),
    responses((status = 200, body = NotificationPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    p: Principal,
    Path(tid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<NotificationPage>> {
    let limit = super::limit_param(q.get("limit"), 50)?;
    Ok(Json(
        page(&s, &p, &tid, q.get("cursor").map(String::as_str), limit).await?,
    ))
}
