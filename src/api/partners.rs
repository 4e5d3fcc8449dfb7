//! Partners: resellers that manage several tenants.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{AppState, LazyBody};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::tenancy::{check_frame_ancestors, check_slug, Partner, Role};
use crate::serve::body::typed;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/partners", post(create))
        .route("/v1/partners/{pid}", get(read).patch(update))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartnerIn {
    id: Option<String>,
    name: String,
    /// Origins whose pages may frame the console of this partner's tenants.
    #[serde(default)]
    frame_ancestors: Vec<String>,
}

/// What a partner may change: its name (operators only) and the origins that may frame its
/// tenants' console.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartnerPatch {
    name: Option<String>,
    /// e.g. `["https://admin.example-pbx.com"]`; `[]` allows none beyond the node's default.
    #[schema(max_items = 20, example = json!(["https://admin.example-pbx.com"]))]
    frame_ancestors: Option<Vec<String>>,
}

/// A partner as the API shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PartnerOut {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub frame_ancestors: Vec<String>,
}

fn out(p: &Partner) -> PartnerOut {
    PartnerOut {
        id: p.id.clone(),
        name: p.name.clone(),
        created_at: crate::time::format_ms(p.created_at),
        frame_ancestors: p.frame_ancestors.clone(),
    }
}

#[utoipa::path(post, path = "/v1/partners", tag = "partners", request_body = PartnerIn,
    responses((status = 201, body = PartnerOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: LazyBody,
) -> ApiResult<(StatusCode, Json<PartnerOut>)> {
    p.require(p.role == Role::Operator, "create partners")?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let input: PartnerIn = typed(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_partner")?;
    let id = input.id.unwrap_or_else(|| crate::model::ids::new_id("ptn"));
    check_slug("id", &id).map_err(|m| ApiError::unprocessable("invalid_partner", m))?;
    let name = crate::model::tenancy::check_label("name", &input.name)
        .map_err(|m| ApiError::unprocessable("invalid_partner", m))?;
    let frame_ancestors = check_frame_ancestors(&input.frame_ancestors)
        .map_err(|m| ApiError::unprocessable("invalid_partner", m))?;
    let partner = Partner {
        id,
        name,
        created_at: s.now_ms(),
        frame_ancestors,
    };
    s.store.create_partner(partner.clone()).await?;
    Ok((StatusCode::CREATED, Json(out(&partner))))
}

#[utoipa::path(get, path = "/v1/partners/{pid}", tag = "partners", params(("pid" = String, Path)),
    responses((status = 200, body = PartnerOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(
    State(s): State<AppState>,
    p: Principal,
    Path(pid): Path<String>,
) -> ApiResult<Json<PartnerOut>> {
    let visible = p.role == Role::Operator
        || (p.role == Role::PartnerAdmin && p.partner_id.as_deref() == Some(pid.as_str()));
    let partner = match visible {
        true => s.store.get_partner(&pid).await?,
        false => None,
    };
    partner
        .map(|x| Json(out(&x)))
        .ok_or_else(|| ApiError::not_found(&format!("partner `{pid}`")))
}

#[utoipa::path(patch, path = "/v1/partners/{pid}", tag = "partners", params(("pid" = String, Path)), request_body = PartnerPatch,
    responses((status = 200, body = PartnerOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(pid): Path<String>,
    body: LazyBody,
) -> ApiResult<Json<PartnerOut>> {
    let mut partner = s.visible_partner(&p, &pid).await?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let patch: PartnerPatch = typed(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_partner")?;
    if let Some(name) = patch.name {
        p.require(p.role == Role::Operator, "rename partners")?;
        partner.name = crate::model::tenancy::check_label("name", &name)
            .map_err(|m| ApiError::unprocessable("invalid_partner", m))?;
    }
    if let Some(list) = patch.frame_ancestors {
        partner.frame_ancestors = check_frame_ancestors(&list)
            .map_err(|m| ApiError::unprocessable("invalid_partner", m))?;
    }
    if !s.store.update_partner(partner.clone()).await? {
        return Err(ApiError::not_found(&format!("partner `{pid}`")));
    }
    Ok(Json(out(&partner)))
}
