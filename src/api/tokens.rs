//! API tokens: created here, shown once, stored hashed; listed (never their secrets) and
//! revoked by whoever may create them in that scope.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{AppState, LazyBody};
use crate::auth::{generate_token, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::tenancy::{Role, TokenRecord};
use crate::serve::body::typed;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tokens", post(create).get(list))
        .route("/v1/tokens/{id}", delete(revoke))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenIn {
    /// operator, ingest, partner_admin, tenant_admin or tenant_viewer.
    #[schema(value_type = crate::model::tenancy::Role)]
    role: String,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    tenant_id: Option<String>,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    partner_id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
}

/// States in the API document which ids go with which role, as [`create`] checks them: a
/// platform-wide token names neither, a partner's its partner, a tenant's its tenant. The
/// generated `TokenIn` has both optional for every role, which reads as if any mix were taken.
pub(crate) fn state_roles(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let Some(schema) = doc.pointer_mut("/components/schemas/TokenIn") else {
        return;
    };
    let props = schema.get("properties").cloned().unwrap_or_default();
    let id = |field: &str| {
        let mut p = props.get(field).cloned().unwrap_or_else(|| json!({}));
        p["type"] = json!("string");
        p
    };
    let absent = json!({"type": "null"});
    let variant = |title: &str, roles: &[&str], tenant: &Value, partner: &Value| {
        let mut required = vec!["role", "name"];
        if tenant.get("type") == Some(&json!("string")) {
            required.push("tenant_id");
        }
        if partner.get("type") == Some(&json!("string")) {
            required.push("partner_id");
        }
        json!({
            "title": title,
            "type": "object",
            "required": required,
            "properties": {
                "role": {"enum": roles},
                "name": props.get("name").cloned().unwrap_or_else(|| json!({"type": "string"})),
                "tenant_id": tenant,
                "partner_id": partner,
            },
            "additionalProperties": false,
        })
    };
    *schema = json!({
        "description": "A token's role and whom it acts for: platform-wide (operator, ingest), a partner's (partner_admin), or a tenant's (ingest, tenant_admin, tenant_viewer).",
        "oneOf": [
            variant("platform-wide", &["operator", "ingest"], &absent, &absent),
            variant("a partner's", &["partner_admin"], &absent, &id("partner_id")),
            variant("a tenant's", &["ingest", "tenant_admin", "tenant_viewer"], &id("tenant_id"), &absent),
        ],
    });
}

/// A new API token: `token` is shown here once and stored only as its hash.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenOut {
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

/// A token as listed: who it acts as, never the token itself.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub role: String,
    pub tenant_id: Option<String>,
    pub partner_id: Option<String>,
    pub name: String,
    pub created_at: String,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> Self {
        TokenView {
            id: t.id,
            role: t.role.as_str().to_string(),
            tenant_id: t.tenant_id,
            partner_id: t.partner_id,
            name: t.name,
            created_at: crate::time::format_ms(t.created_at),
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
}

fn may_manage_tokens(p: &Principal) -> ApiResult<()> {
    p.require(
        matches!(
            p.role,
            Role::Operator | Role::PartnerAdmin | Role::TenantAdmin
        ),
        "list or revoke tokens",
    )
}

/// Whether `p` may see (and revoke) token `t`: operators every token, a partner admin its
/// partner's tokens and those of its partner's tenants, a tenant admin its tenant's.
async fn sees(s: &AppState, p: &Principal, t: &TokenRecord) -> ApiResult<bool> {
    Ok(match p.role {
        Role::Operator => true,
        Role::PartnerAdmin => {
            let own = p.partner_id.as_deref();
            if t.partner_id.is_some() {
                t.partner_id.as_deref() == own
            } else if let Some(tid) = &t.tenant_id {
                own.is_some() && s.tenant_partner(tid).await?.flatten().as_deref() == own
            } else {
                false
            }
        }
        Role::TenantAdmin => t.tenant_id.is_some() && t.tenant_id == p.tenant_id,
        _ => false,
    })
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(State(s): State<AppState>, p: Principal) -> ApiResult<Json<TokenList>> {
    may_manage_tokens(&p)?;
    let mut items = Vec::new();
    for t in s.store.list_tokens().await? {
        if sees(&s, &p, &t).await? {
            items.push(TokenView::from(t));
        }
    }
    Ok(Json(TokenList { items }))
}

/// Revokes a token: refused from the next request on, on every node (other nodes as soon as
/// the change notice reaches them).
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    may_manage_tokens(&p)?;
    let found = s
        .store
        .list_tokens()
        .await?
        .into_iter()
        .find(|t| t.id == id);
    let visible = match &found {
        Some(t) => sees(&s, &p, t).await?,
        None => false,
    };
    if !visible {
        return Err(ApiError::not_found(&format!("token `{id}`")));
    }
    s.store.delete_token(&id).await?;
    s.tokens.forget_id(&id);
    // What the token handed out goes with it: unopened portal links, and their sessions.
    s.store
        .end_portal_access(
            crate::store::PortalAccess::CreatedBy(id.clone()),
            s.now_ms(),
        )
        .await?;
    // Again: the portal sessions it opened have ended only now.
    s.tokens.withdrawn();
    Ok(StatusCode::NO_CONTENT)
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
    let name = crate::model::tenancy::check_label("name", &input.name)
        .map_err(|m| ApiError::unprocessable("invalid_token_request", m))?;
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
            if input.tenant_id.is_some() {
                return Err(ApiError::unprocessable(
                    "invalid_token_request",
                    "a partner_admin token covers all of its partner's tenants; leave `tenant_id` out",
                ));
            }
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
        id: crate::model::ids::new_id("tok"),
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
        created_at: s.now_ms(),
    };
    s.store.create_token(rec.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenOut {
            token,
            view: rec.into(),
        }),
    ))
}
