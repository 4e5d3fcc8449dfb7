//! Delivery statistics for charts: per minute over the last hours, deliveries by outcome and the
//! end-to-end latency of the successful ones (p50, p99), for one integration or a whole tenant.
//! Read from the per-minute counts the store keeps with the outcomes, never from the deliveries.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::integrations::{owned, Params};
use super::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::stats::{minute, summarise, MinuteStats};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tid}/stats", get(tenant))
        .route(
            "/v1/tenants/{tid}/integrations/{iid}/stats",
            get(integration),
        )
        .route(
            "/v1/partners/{pid}/integrations/{iid}/stats",
            get(integration),
        )
}

/// Minutes with deliveries, in time order; minutes without are left out.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// RFC 3339: the first minute covered.
    pub since: String,
    /// RFC 3339: the minute being counted now.
    pub until: String,
    pub minutes: Vec<MinuteStats>,
}

/// The most hours a request covers (the counts are kept two days).
const MAX_HOURS: i64 = 48;

fn hours(q: &HashMap<String, String>) -> ApiResult<i64> {
    match q.get("hours") {
        None => Ok(24),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|h| (1..=MAX_HOURS).contains(h))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_hours",
                    format!("`hours` must be a number from 1 to {MAX_HOURS}"),
                )
            }),
    }
}

/// The statistics of these integrations over the last `hours`, summed.
pub(crate) async fn of(s: &AppState, ids: &[String], hours: i64) -> ApiResult<Stats> {
    let now = minute(s.now_ms());
    let since = now - hours * 60 + 1;
    let rows = s.store.minute_counts(ids, since).await?;
    Ok(Stats {
        since: crate::time::format_ms(since * 60_000),
        until: crate::time::format_ms(now * 60_000),
        minutes: summarise(&rows),
    })
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/integrations/{iid}/stats", tag = "deliveries",
    params(("tid" = String, Path), ("iid" = String, Path),
        ("hours" = Option<u32>, Query, minimum = 1, maximum = 48, description = "1–48, default 24")),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn integration(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Stats>> {
    let hours = hours(&q)?;
    let (_, i) = owned(&s, &p, &params).await?;
    Ok(Json(of(&s, std::slice::from_ref(&i.id), hours).await?))
}

/// Every integration of the tenant the caller sees (a scoped portal session: its own).
pub(crate) async fn tenant_stats(
    s: &AppState,
    p: &Principal,
    tid: &str,
    hours: i64,
) -> ApiResult<Stats> {
    p.require(
        !matches!(p.role, crate::model::tenancy::Role::Ingest),
        "read statistics (use an admin or viewer token)",
    )?;
    let tenant = s.visible_tenant(p, tid).await?;
    let ids: Vec<String> = s
        .cache
        .for_tenant(&tenant.id)
        .iter()
        .filter(|i| p.sees_integration(&i.id))
        .map(|i| i.id.clone())
        .collect();
    of(s, &ids, hours).await
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/stats", tag = "tenants",
    params(("tid" = String, Path),
        ("hours" = Option<u32>, Query, minimum = 1, maximum = 48, description = "1–48, default 24")),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn tenant(
    State(s): State<AppState>,
    p: Principal,
    Path(tid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Stats>> {
    let hours = hours(&q)?;
    Ok(Json(tenant_stats(&s, &p, &tid, hours).await?))
}
