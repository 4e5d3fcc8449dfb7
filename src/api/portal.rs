//! Portal links: the platform (its operator, or the tenant's partner admin) asks for a
//! single-use, short-lived link into the console for one of its customers, and hands it over
//! (or opens it in an iframe of its own page). No API token reaches the browser: opening the
//! link starts a console session that is a stored grant — a tenant, a role, optionally some
//! integrations — which the platform can list and end here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use super::integrations::param;
use super::{AppState, LazyBody};
use crate::auth::{hash_token, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::portal::{self, PortalLink, PortalSession, MAX_SCOPED_INTEGRATIONS};
use crate::model::tenancy::{Role, Tenant};
use crate::serve::body::typed;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tid}/portal-links", post(create_link))
        .route(
            "/v1/tenants/{tid}/portal-sessions",
            axum::routing::get(list_sessions),
        )
        .route(
            "/v1/tenants/{tid}/portal-sessions/{sid}",
            delete(end_session),
        )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortalLinkIn {
    /// tenant_admin or tenant_viewer.
    #[schema(example = "tenant_admin", schema_with = portal_role)]
    role: String,
    /// How long the link may wait to be opened: 1–3600 s (default 600).
    #[schema(minimum = 1, maximum = 3600)]
    ttl_s: Option<i64>,
    /// Only these integrations of the tenant (ids or trigger GUIDs; 1–100), and no new ones.
    #[schema(min_items = 1, max_items = 100)]
    integration_ids: Option<Vec<String>>,
}

fn portal_role() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["tenant_admin", "tenant_viewer"]))
        .build()
}

/// A link to open once, before `expires_at`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PortalLinkOut {
    pub url: String,
    pub expires_at: String,
}

/// A console session a portal link opened.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PortalSessionView {
    pub id: String,
    pub role: String,
    pub integration_ids: Option<Vec<String>>,
    pub created_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
    /// Neither ended nor expired.
    pub active: bool,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PortalSessionList {
    pub items: Vec<PortalSessionView>,
}

fn view(s: PortalSession, now: i64) -> PortalSessionView {
    PortalSessionView {
        active: s.active(now),
        id: s.id,
        role: s.role.as_str().to_string(),
        integration_ids: s.integration_ids,
        created_at: crate::time::format_ms(s.created_at),
        expires_at: crate::time::format_ms(s.expires_at),
        ended_at: s.ended_at.map(crate::time::format_ms),
    }
}

/// The platform's side of a tenant: operators, and the admin of the tenant's partner. A
/// tenant's own tokens cannot hand out links (they would outlive the token's revocation).
async fn platform_tenant(s: &AppState, p: &Principal, tid: &str) -> ApiResult<Tenant> {
    let tenant = s.visible_tenant(p, tid).await?;
    p.require(
        matches!(p.role, Role::Operator | Role::PartnerAdmin),
        "manage portal links and sessions (the platform does: an operator or the tenant's partner admin)",
    )?;
    Ok(tenant)
}

#[utoipa::path(post, path = "/v1/tenants/{tid}/portal-links", tag = "portal", params(("tid" = String, Path)),
    request_body = PortalLinkIn,
    responses((status = 201, body = PortalLinkOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create_link(
    State(s): State<AppState>,
    p: Principal,
    Path(tid): Path<String>,
    body: LazyBody,
) -> ApiResult<(StatusCode, Json<PortalLinkOut>)> {
    let tenant = platform_tenant(&s, &p, &tid).await?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let input: PortalLinkIn = typed(
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_portal_link",
    )?;
    let invalid = |m: String| ApiError::unprocessable("invalid_portal_link", m);
    let role = portal::link_role(&input.role).map_err(invalid)?;
    let ttl_s = portal::link_ttl_s(input.ttl_s).map_err(invalid)?;
    let integration_ids = match input.integration_ids {
        None => None,
        Some(ids) => {
            if ids.is_empty() || ids.len() > MAX_SCOPED_INTEGRATIONS {
                return Err(invalid(format!(
                    "`integration_ids` lists 1–{MAX_SCOPED_INTEGRATIONS} integrations (leave it out for all of the tenant's)"
                )));
            }
            let mut known = Vec::with_capacity(ids.len());
            for id in ids {
                let mut params = super::integrations::Params::new();
                params.insert("iid".into(), id.clone());
                let iid = param(&params, "iid").into_owned();
                let theirs = s
                    .cache
                    .get(&iid)
                    .is_some_and(|i| i.tenant_id.as_deref() == Some(tenant.id.as_str()));
                if !theirs {
                    return Err(invalid(format!(
                        "`integration_ids`: `{id}` is not an integration of tenant `{}`",
                        tenant.id
                    )));
                }
                if !known.contains(&iid) {
                    known.push(iid);
                }
            }
            Some(known)
        }
    };
    let code = URL_SAFE_NO_PAD.encode(crate::security::random_bytes::<32>());
    let now = s.now_ms();
    let expires_at = now + i64::from(ttl_s) * 1000;
    s.store
        .create_portal_link(PortalLink {
            hash: hash_token(&code),
            tenant_id: tenant.id,
            role,
            integration_ids,
            created_by: p.token_id.clone(),
            created_at: now,
            expires_at,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PortalLinkOut {
            url: format!("{}/console/portal/{code}", s.links.base()),
            expires_at: crate::time::format_ms(expires_at),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/portal-sessions", tag = "portal", params(("tid" = String, Path)),
    responses((status = 200, body = PortalSessionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_sessions(
    State(s): State<AppState>,
    p: Principal,
    Path(tid): Path<String>,
) -> ApiResult<Json<PortalSessionList>> {
    let tenant = platform_tenant(&s, &p, &tid).await?;
    let now = s.now_ms();
    let items = s
        .store
        .list_portal_sessions(&tenant.id, now)
        .await?
        .into_iter()
        .map(|x| view(x, now))
        .collect();
    Ok(Json(PortalSessionList { items }))
}

/// Ends a session at once: its next page is the sign-in page, on every node.
#[utoipa::path(delete, path = "/v1/tenants/{tid}/portal-sessions/{sid}", tag = "portal",
    params(("tid" = String, Path), ("sid" = String, Path)),
    responses((status = 204, description = "ended"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn end_session(
    State(s): State<AppState>,
    p: Principal,
    Path((tid, sid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = platform_tenant(&s, &p, &tid).await?;
    if s.store
        .end_portal_session(&tenant.id, &sid, s.now_ms())
        .await?
    {
        s.tokens.withdrawn();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(&format!(
            "active portal session `{sid}`"
        )))
    }
}
