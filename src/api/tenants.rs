//! Tenants: the platform's customers, each with its own integrations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{AppState, LazyBody};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::tenancy::{check_slug, Role, Tenant};
use crate::serve::body::typed;

/// How long deleting a tenant waits for its call data to be removed before it answers (the
/// removal goes on either way; until it is done, the id cannot be taken again).
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(create))
        .route("/v1/tenants/{tid}", get(read).patch(update).delete(remove))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantIn {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    partner_id: Option<String>,
    #[schema(minimum = 1, maximum = 10000)]
    max_integrations: Option<u32>,
}

/// Every field optional; `null` clears `partner_id` or `max_integrations`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: Option<String>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    partner_id: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    max_integrations: Option<Option<u32>>,
}

/// `absent` → None, `null` → Some(None), value → Some(Some(v)).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A tenant as the API shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TenantOut {
    pub id: String,
    pub name: String,
    pub partner_id: Option<String>,
    /// The most integrations the tenant may have (1–10000); `null`: the service's default
    /// (`CALLHOOK_DEFAULT_MAX_INTEGRATIONS`, 100).
    pub max_integrations: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

pub(crate) fn out(t: &Tenant) -> TenantOut {
    TenantOut {
        id: t.id.clone(),
        name: t.name.clone(),
        partner_id: t.partner_id.clone(),
        max_integrations: t.max_integrations,
        created_at: crate::time::format_ms(t.created_at),
        updated_at: crate::time::format_ms(t.updated_at),
    }
}

/// The most a tenant's `max_integrations` may be: each integration is evaluated for every
/// event of the tenant.
const MAX_INTEGRATIONS_LIMIT: u32 = 10_000;

fn check_max(max: Option<u32>) -> ApiResult<Option<u32>> {
    match max {
        Some(n) if !(1..=MAX_INTEGRATIONS_LIMIT).contains(&n) => Err(ApiError::unprocessable(
            "invalid_tenant",
            format!(
                "`max_integrations` must be 1–{MAX_INTEGRATIONS_LIMIT}, or null for the default"
            ),
        )),
        other => Ok(other),
    }
}

fn check_name(name: &str) -> ApiResult<String> {
    crate::model::tenancy::check_label("name", name)
        .map_err(|m| ApiError::unprocessable("invalid_tenant", m))
}

async fn check_partner(s: &AppState, p: &Principal, partner_id: Option<&str>) -> ApiResult<()> {
    if p.role == Role::PartnerAdmin && partner_id != p.partner_id.as_deref() {
        return Err(ApiError::forbidden(
            "a partner_admin token can only manage tenants of its own partner",
        ));
    }
    if let Some(pid) = partner_id {
        if s.store.get_partner(pid).await?.is_none() {
            return Err(ApiError::unprocessable(
                "unknown_partner",
                format!("partner `{pid}` does not exist; create it first"),
            ));
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = TenantIn,
    responses((status = 201, body = TenantOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: LazyBody,
) -> ApiResult<(StatusCode, Json<TenantOut>)> {
    p.require(
        matches!(p.role, Role::Operator | Role::PartnerAdmin),
        "create tenants",
    )?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let input: TenantIn = typed(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_tenant")?;
    let id = input.id.unwrap_or_else(|| crate::model::ids::new_id("ten"));
    check_slug("id", &id).map_err(|m| ApiError::unprocessable("invalid_tenant", m))?;
    let partner_id = input.partner_id.or_else(|| {
        (p.role == Role::PartnerAdmin)
            .then(|| p.partner_id.clone())
            .flatten()
    });
    check_partner(&s, &p, partner_id.as_deref()).await?;
    let now = s.now_ms();
    let tenant = Tenant {
        id,
        name: check_name(&input.name)?,
        partner_id,
        max_integrations: check_max(input.max_integrations)?,
        created_at: now,
        updated_at: now,
    };
    s.store.create_tenant(tenant.clone()).await?;
    // Only once the id is this new tenant's: files a deleted tenant of the id left behind (the
    // node stopped between its rows and its files) are not inherited.
    super::recordings::remove_tenant_files(&s, &tenant.id).await;
    s.known_tenants
        .write()
        .insert(tenant.id.clone(), tenant.partner_id.clone());
    Ok((StatusCode::CREATED, Json(out(&tenant))))
}

#[utoipa::path(get, path = "/v1/tenants/{tid}", tag = "tenants", params(("tid" = String, Path)),
    responses((status = 200, body = TenantOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(
    State(s): State<AppState>,
    p: Principal,
    Path(tid): Path<String>,
) -> ApiResult<Json<TenantOut>> {
    Ok(Json(out(&s.visible_tenant(&p, &tid).await?)))
}

#[utoipa::path(patch, path = "/v1/tenants/{tid}", tag = "tenants", params(("tid" = String, Path)),
    request_body = TenantPatch,
    responses((status = 200, body = TenantOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(tid): Path<String>,
    body: LazyBody,
) -> ApiResult<Json<TenantOut>> {
    let mut tenant = s.visible_tenant(&p, &tid).await?;
    let before = tenant.partner_id.clone();
    p.require(
        matches!(p.role, Role::Operator | Role::PartnerAdmin),
        "change tenants",
    )?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let patch: TenantPatch = typed(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_tenant")?;
    if let Some(name) = patch.name {
        tenant.name = check_name(&name)?;
    }
    if let Some(pid) = patch.partner_id {
        p.require(p.role == Role::Operator, "move a tenant to another partner")?;
        check_partner(&s, &p, pid.as_deref()).await?;
        tenant.partner_id = pid;
    }
    if let Some(max) = patch.max_integrations {
        tenant.max_integrations = check_max(max)?;
    }
    let moved = tenant.partner_id != before;
    tenant.updated_at = s.now_ms();
    s.store.update_tenant(tenant.clone()).await?;
    // Known here before any stream looks again at who sees the tenant.
    s.known_tenants
        .write()
        .insert(tenant.id.clone(), tenant.partner_id.clone());
    if moved {
        // The old partner's admins no longer see it (their streams end), and its links into
        // this tenant and its customers' sessions end here.
        s.tokens.withdrawn();
        s.store
            .end_portal_access(
                crate::store::PortalAccess::Tenant(tenant.id.clone()),
                tenant.updated_at,
            )
            .await?;
        s.tokens.withdrawn();
    }
    Ok(Json(out(&tenant)))
}

#[utoipa::path(delete, path = "/v1/tenants/{tid}", tag = "tenants", params(("tid" = String, Path)),
    responses((status = 204, description = "deleted, with its integrations, tokens, sessions and recordings; its call data goes in steps, and its id stays taken until that is done"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(tid): Path<String>,
) -> ApiResult<StatusCode> {
    s.visible_tenant(&p, &tid).await?;
    p.require(
        matches!(p.role, Role::Operator | Role::PartnerAdmin),
        "delete tenants",
    )?;
    s.store.delete_tenant(&tid).await?;
    super::recordings::remove_tenant_files(&s, &tid).await;
    crate::cluster::recheck_unopened(&s).await;
    for i in s.cache.for_tenant(&tid).iter() {
        s.cache.remove(&i.id);
        s.dispatcher.integration_changed(&i.id);
    }
    s.known_tenants.write().remove(&tid);
    s.tokens.forget_tenant(&tid);
    // Its call data goes in small steps, in a task of its own: the answer waits a little for
    // it (a small tenant's id is free again at once), never for long.
    let store = s.store.clone();
    let purge = tokio::spawn(async move {
        if let Err(e) = crate::retention::purge_deleted_tenants(&store, Some(&tid)).await {
            tracing::warn!(error = %e, "could not remove a deleted tenant's call data; the next retention round goes on");
        }
    });
    let _ = tokio::time::timeout(PURGE_WAIT, purge).await;
    Ok(StatusCode::NO_CONTENT)
}
