//! Reconciliation (seed 003): how many calls each tenant had in a window, and the records
//! themselves, so a receiver can find what its webhook listener missed.
//!
//! Times are `YYYY-MM-DDTHH:MM:SS.mmmZ` and refer to when the call ended. A window must satisfy
//! `start < end` and lie between 48 h and 5 min ago; the counts also `end − start ≤ 1 h` (seed
//! 003 caps only the counts). Each rule broken has its own error code.
//!
//! Records come as `{"items": […]}` in the feed's format — Webex Calling records (`webex-cdr`)
//! unless the partner's feed sends `cdr-batch` items — up to `max` (1–500) a page, the next page
//! named by a `Link: <…>; rel="next"` header as Webex's records API does, and by `next_cursor`.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use super::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::integration::Feed;
use crate::model::profile::Profile;
use crate::store::CdrScope;

/// Tenants per page of counts.
pub const ORGS_PER_PAGE: u32 = 200;
const MAX_WINDOW_MS: i64 = 3600 * 1000;
const OLDEST_MS: i64 = 48 * 3600 * 1000;
const NEWEST_MS: i64 = 5 * 60 * 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/partners/{pid}/reconciliation/counts", get(counts))
        .route(
            "/v1/partners/{pid}/reconciliation/records",
            get(partner_records),
        )
        .route(
            "/v1/tenants/{tid}/reconciliation/records",
            get(tenant_records),
        )
}

fn parse_time(name: &str, v: Option<&String>) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_time",
            format!("`{name}` must be given as YYYY-MM-DDTHH:MM:SS.mmmZ (UTC, milliseconds), e.g. 2026-11-22T10:00:00.000Z"),
        )
    };
    let s = v.ok_or_else(bad)?;
    if s.len() != 24 {
        return Err(bad());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3fZ")
        .map(|t| t.and_utc().timestamp_millis())
        .map_err(|_| bad())
}

/// Checks a reconciliation window against the rules; `[start, end)` in epoch ms. `capped`: at
/// most an hour long (the counts).
pub fn window(q: &HashMap<String, String>, now: i64, capped: bool) -> Result<(i64, i64), ApiError> {
    let start = parse_time("startTime", q.get("startTime"))?;
    let end = parse_time("endTime", q.get("endTime"))?;
    if start >= end {
        return Err(ApiError::bad_request(
            "window_order",
            "`startTime` must be before `endTime`",
        ));
    }
    if capped && end - start > MAX_WINDOW_MS {
        return Err(ApiError::bad_request(
            "window_too_long",
            "`endTime` may be at most 1 hour after `startTime`; query one hour at a time",
        ));
    }
    if start < now - OLDEST_MS {
        return Err(ApiError::bad_request(
            "window_too_old",
            "`startTime` is more than 48 hours ago; records are kept for 48 hours",
        ));
    }
    if end > now - NEWEST_MS {
        return Err(ApiError::bad_request(
            "window_too_recent",
            "`endTime` must be at least 5 minutes ago; recent calls are still arriving",
        ));
    }
    Ok((start, end))
}

/// The partner's feed: its integration's, unless `feed=` asks for the other.
fn scope(s: &AppState, partner_id: &str, q: &HashMap<String, String>) -> ApiResult<CdrScope> {
    let feed = match q.get("feed").map(String::as_str) {
        Some("analytics") => Feed::Analytics,
        Some("billing") => Feed::Billing,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_feed",
                "`feed` is analytics or billing",
            ))
        }
        None => s
            .cache
            .for_partner(partner_id)
            .first()
            .and_then(|i| i.valid.spec.feed)
            .unwrap_or(Feed::Analytics),
    };
    let partner_id = partner_id.to_string();
    Ok(match feed {
        Feed::Analytics => CdrScope::Analytics { partner_id },
        Feed::Billing => CdrScope::Billing { partner_id },
    })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OrgCount {
    #[serde(rename = "orgId")]
    pub org_id: String,
    pub count: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub cdr_counts: Vec<OrgCount>,
}

/// Call records, as the feed's webhook sends them: Webex Calling records, or `cdr-batch` items.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Records {
    pub items: Vec<Value>,
    /// Also in the `Link: <…>; rel="next"` header; null on the last page.
    pub next_cursor: Option<String>,
}

/// The last page one may ask for: 200 million tenants, far past any partner, and small enough
/// that the page's offset is a number the store takes.
const MAX_PAGE: u32 = 1_000_000;

#[utoipa::path(get, path = "/v1/partners/{pid}/reconciliation/counts", tag = "reconciliation",
    params(("pid" = String, Path), ("startTime" = String, Query, description = "YYYY-MM-DDTHH:MM:SS.mmmZ; calls that ended at or after"),
        ("endTime" = String, Query, description = "YYYY-MM-DDTHH:MM:SS.mmmZ; at most 1 h after startTime, at least 5 min ago"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "from 1; 200 tenants a page"),
        ("feed" = Option<String>, Query, description = "analytics or billing; default: the partner's feed")),
    responses((status = 200, body = Counts, headers(("x-total-pages" = u64), ("x-total-orgs" = u64), ("x-current-page" = u64))), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn counts(
    State(s): State<AppState>,
    p: Principal,
    Path(pid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<(HeaderMap, Json<Counts>)> {
    s.visible_partner(&p, &pid).await?;
    let (start, end) = window(&q, s.now_ms(), true)?;
    let page = match q.get("page") {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_page",
                    format!("`page` is a number from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let scope = scope(&s, &pid, &q)?;
    let (rows, total) = s
        .store
        .cdr_counts(scope, start, end, (page - 1) * ORGS_PER_PAGE, ORGS_PER_PAGE)
        .await?;
    let pages = total.div_ceil(ORGS_PER_PAGE as u64).max(1);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-total-pages", pages),
        ("x-total-orgs", total),
        ("x-current-page", page as u64),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
    let cdr_counts = rows
        .into_iter()
        .map(|(org_id, count)| OrgCount { org_id, count })
        .collect();
    Ok((headers, Json(Counts { cdr_counts })))
}

fn cursor(q: &HashMap<String, String>) -> ApiResult<Option<(i64, i64)>> {
    let Some(c) = q.get("cursor") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "`cursor` must be a `next_cursor` from a previous page",
        )
    };
    let text = URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some((
        a.parse().map_err(|_| bad())?,
        b.parse().map_err(|_| bad())?,
    )))
}

/// Records per page: `max` (Webex's name), 1–500, default 500. `limit`, its earlier name, is
/// still taken as it was (1–1000), and pages of more than 500 are cut to 500.
fn page_size(q: &HashMap<String, String>) -> ApiResult<u32> {
    let parse = |v: &String, most: u32| v.parse::<u32>().ok().filter(|n| (1..=most).contains(n));
    match (q.get("max"), q.get("limit")) {
        (None, None) => Ok(500),
        (Some(v), _) => parse(v, 500).ok_or_else(|| {
            ApiError::bad_request("invalid_max", "`max` must be a number from 1 to 500")
        }),
        (None, Some(v)) => parse(v, 1000).map(|n| n.min(500)).ok_or_else(|| {
            ApiError::bad_request("invalid_limit", "`limit` must be a number from 1 to 1000")
        }),
    }
}

/// The record format: `profile=webex-cdr|cdr-batch`, else the feed's.
fn record_profile(q: &HashMap<String, String>, feed: Option<Profile>) -> ApiResult<Profile> {
    match q.get("profile").map(String::as_str) {
        Some("webex-cdr") => Ok(Profile::WebexCdr),
        Some("cdr-batch") => Ok(Profile::CdrBatch),
        Some(_) => Err(ApiError::bad_request(
            "invalid_profile",
            "`profile` is webex-cdr or cdr-batch",
        )),
        None => Ok(match feed {
            Some(Profile::CdrBatch) => Profile::CdrBatch,
            _ => Profile::WebexCdr,
        }),
    }
}

/// `<url of this request with cursor=next>; rel="next"`, absolute on the node's public URL.
fn next_link(
    s: &AppState,
    uri: &axum::http::Uri,
    q: &HashMap<String, String>,
    next: &str,
) -> String {
    let mut pairs: Vec<(&str, &str)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "cursor")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.push(("cursor", next));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("<{}{}?{query}>; rel=\"next\"", s.links.base(), uri.path())
}

struct RecordQuery<'a> {
    tenant_id: &'a str,
    scope: Option<CdrScope>,
    profile: Profile,
    privacy: &'a crate::render::privacy::Rules,
}

async fn records(
    s: &AppState,
    r: RecordQuery<'_>,
    uri: &axum::http::Uri,
    q: &HashMap<String, String>,
) -> ApiResult<(HeaderMap, Json<Records>)> {
    let (start, end) = window(q, s.now_ms(), false)?;
    let max = page_size(q)?;
    // One row more than the page says whether another page follows: a full last page names none.
    let mut rows = s
        .store
        .cdr_records(r.tenant_id, r.scope, start, end, cursor(q)?, max + 1)
        .await?;
    let more = rows.len() > max as usize;
    rows.truncate(max as usize);
    let next = more
        .then(|| {
            rows.last()
                .map(|r| URL_SAFE_NO_PAD.encode(format!("{}:{}", r.ended_at, r.seq)))
        })
        .flatten();
    let items = rows
        .iter()
        .map(|row| match r.profile {
            Profile::CdrBatch => crate::render::cdr::batch_item(&row.event.event, r.privacy),
            _ => crate::render::webex::batch_item(&row.event.event, r.privacy),
        })
        .collect();
    let mut headers = HeaderMap::new();
    if let Some(n) = &next {
        if let Ok(v) = HeaderValue::from_str(&next_link(s, uri, q, n)) {
            headers.insert(axum::http::header::LINK, v);
        }
    }
    Ok((
        headers,
        Json(Records {
            items,
            next_cursor: next,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/partners/{pid}/reconciliation/records", tag = "reconciliation",
    params(("pid" = String, Path), ("orgId" = String, Query, description = "the tenant"), ("startTime" = String, Query, description = "YYYY-MM-DDTHH:MM:SS.mmmZ; calls that ended at or after"),
        ("endTime" = String, Query, description = "YYYY-MM-DDTHH:MM:SS.mmmZ; after startTime, at least 5 min ago"),
        ("cursor" = Option<String>, Query, description = "a page's `next_cursor` (the `Link` header carries it)"), ("max" = Option<u32>, Query, description = "records a page, 1–500, default 500"),
        ("profile" = Option<String>, Query, description = "webex-cdr or cdr-batch; default: the feed's"),
        ("feed" = Option<String>, Query)),
    responses((status = 200, body = Records, headers(("link" = String, description = "the next page: <…>; rel=\"next\""))), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn partner_records(
    State(s): State<AppState>,
    p: Principal,
    Path(pid): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<(HeaderMap, Json<Records>)> {
    s.visible_partner(&p, &pid).await?;
    let org = q.get("orgId").ok_or_else(|| {
        ApiError::bad_request(
            "org_required",
            "name the tenant: `orgId=…` (from the counts endpoint)",
        )
    })?;
    let scope = scope(&s, &pid, &q)?;
    // The feed's own format and privacy rules apply here too: the records are what the
    // webhook would send.
    let feed = s.cache.for_partner(&pid).first().cloned();
    let profile = record_profile(&q, feed.as_ref().map(|i| i.valid.spec.profile))?;
    let privacy = feed
        .map(|i| i.valid.spec.privacy.clone())
        .unwrap_or_default();
    let query = RecordQuery {
        tenant_id: org,
        scope: Some(scope),
        profile,
        privacy: &privacy,
    };
    records(&s, query, &uri, &q).await
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/reconciliation/records", tag = "reconciliation",
    params(("tid" = String, Path), ("startTime" = String, Query, description = "YYYY-MM-DDTHH:MM:SS.mmmZ; calls that ended at or after"),
        ("endTime" = String, Query, description = "YYYY-MM-DDTHH:MM:SS.mmmZ; after startTime, at least 5 min ago"),
        ("cursor" = Option<String>, Query, description = "a page's `next_cursor` (the `Link` header carries it)"), ("max" = Option<u32>, Query, description = "records a page, 1–500, default 500"),
        ("profile" = Option<String>, Query, description = "webex-cdr (default) or cdr-batch")),
    responses((status = 200, body = Records, headers(("link" = String, description = "the next page: <…>; rel=\"next\""))), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn tenant_records(
    State(s): State<AppState>,
    p: Principal,
    Path(tid): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<(HeaderMap, Json<Records>)> {
    s.visible_tenant(&p, &tid).await?;
    let query = RecordQuery {
        tenant_id: &tid,
        scope: None,
        profile: record_profile(&q, None)?,
        privacy: &Default::default(),
    };
    records(&s, query, &uri, &q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start: &str, end: &str) -> HashMap<String, String> {
        HashMap::from([
            ("startTime".to_string(), start.to_string()),
            ("endTime".to_string(), end.to_string()),
        ])
    }

    #[test]
    fn each_window_rule_is_refused_with_its_own_code() {
        let now = crate::time::parse_rfc3339_ms("2026-11-22T12:00:00Z").unwrap_or_default();
        let code = |start: &str, end: &str| window(&q(start, end), now, true).err().map(|e| e.code);
        assert_eq!(
            code("2026-11-22T10:00:00.000Z", "2026-11-22T11:00:00.000Z"),
            None
        );
        assert_eq!(
            code("2026-11-22T10:00:00Z", "2026-11-22T11:00:00.000Z"),
            Some("invalid_time")
        );
        assert_eq!(
            code("2026-11-22T11:00:00.000Z", "2026-11-22T10:00:00.000Z"),
            Some("window_order")
        );
        assert_eq!(
            code("2026-11-22T09:00:00.000Z", "2026-11-22T10:00:00.001Z"),
            Some("window_too_long")
        );
        assert_eq!(
            code("2026-11-20T11:59:59.999Z", "2026-11-20T12:30:00.000Z"),
            Some("window_too_old")
        );
        assert_eq!(
            code("2026-11-22T11:30:00.000Z", "2026-11-22T11:55:00.001Z"),
            Some("window_too_recent")
        );
        // Records take any window in the 48 hours; only the counts are capped at an hour.
        let records = window(
            &q("2026-11-20T12:00:00.000Z", "2026-11-22T11:55:00.000Z"),
            now,
            false,
        );
        assert!(records.is_ok(), "{:?}", records.err().map(|e| e.code));
    }
}
