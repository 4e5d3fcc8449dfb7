//! API tokens: created here, shown once, stored hashed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::body::typed;
use super::{AppState, LazyBody};
use crate::auth::{generate_token, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::tenancy::{Role, TokenRecord};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tokens", post(create))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenIn {
    /// operator, ingest, partner_admin, tenant_admin or tenant_viewer.
    role: String,
    tenant_id: Option<String>,
    partner_id: Option<String>,
    name: String,
}

/// A new API token: `token` is shown here once and stored only as its hash.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenOut {
    pub id: String,
    pub token: String,
    pub role: String,
    pub tenant_id: Option<String>,
    pub partner_id: Option<String>,
    pub name: String,
    pub created_at: String,
}

#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = TokenIn,
    responses((status = 201, body = TokenOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: LazyBody,
) -> ApiResult<(StatusCode, Json<TokenOut>)> {
    p.require(
        matches!(
            p.role,
            Role::Operator | Role::PartnerAdmin | Role::TenantAdmin
        ),
        "create tokens",
    )?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let input: TokenIn = typed(
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_token_request",
    )?;
    let role = Role::parse(&input.role).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_token_request",
            "`role` must be one of operator, ingest, partner_admin, tenant_admin, tenant_viewer",
        )
    })?;
    let name = input.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::unprocessable(
            "invalid_token_request",
            "`name` must be 1–200 characters",
        ));
    }
    let scoped_to_tenant = matches!(role, Role::TenantAdmin | Role::TenantViewer)
        || (role == Role::Ingest && input.tenant_id.is_some());
    match role {
        Role::Operator | Role::Ingest if !scoped_to_tenant => {
            if input.tenant_id.is_some() || input.partner_id.is_some() {
                return Err(ApiError::unprocessable(
                    "invalid_token_request",
                    "an operator token has no tenant_id or partner_id",
                ));
            }
            p.require(p.role == Role::Operator, "create platform-wide tokens")?;
        }
        Role::PartnerAdmin => {
            let pid = input.partner_id.as_deref().ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_token_request",
                    "a partner_admin token needs `partner_id`",
                )
            })?;
            let own = p.role == Role::PartnerAdmin && p.partner_id.as_deref() == Some(pid);
            if !(p.role == Role::Operator || own) || s.store.get_partner(pid).await?.is_none() {
                return Err(ApiError::not_found(&format!("partner `{pid}`")));
            }
        }
        _ => {
            let tid = input.tenant_id.as_deref().ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_token_request",
                    format!("a {} token needs `tenant_id`", role.as_str()),
                )
            })?;
            if input.partner_id.is_some() {
                return Err(ApiError::unprocessable(
                    "invalid_token_request",
                    "a tenant token has no partner_id",
                ));
            }
            s.visible_tenant(&p, tid).await?;
            p.require(p.manages_tenant(), "create tokens")?;
        }
    }
    let (token, hash) = generate_token();
    let rec = TokenRecord {
        id: crate::ingest::new_id("tok"),
        hash,
        role,
        tenant_id: if scoped_to_tenant {
            input.tenant_id
        } else {
            None
        },
        partner_id: if role == Role::PartnerAdmin {
            input.partner_id
        } else {
            None
        },
        name,
        created_at: crate::time::now_ms(),
    };
    s.store.create_token(rec.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenOut {
            id: rec.id,
            token,
            role: role.as_str().to_string(),
            tenant_id: rec.tenant_id,
            partner_id: rec.partner_id,
            name: rec.name,
            created_at: crate::time::format_ms(rec.created_at),
        }),
    ))
}
