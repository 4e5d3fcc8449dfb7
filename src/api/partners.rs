//! Partners: resellers that manage several tenants.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{AppState, LazyBody};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::tenancy::{
    check_brand, check_frame_ancestors, check_slug, logo_type, Brand, Partner, Role, MAX_LOGO_BYTES,
};
use crate::serve::body::typed;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/partners", post(create))
        .route("/v1/partners/{pid}", get(read).patch(update))
        .route(
            "/v1/partners/{pid}/logo",
            axum::routing::put(put_logo).delete(delete_logo),
        )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartnerIn {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
    /// Origins whose pages may frame the console of this partner's tenants.
    #[serde(default)]
    #[schema(schema_with = origins)]
    frame_ancestors: Vec<String>,
    /// What its tenants see in the console: `name`, `accent`.
    #[serde(default)]
    brand: BrandIn,
}

/// A partner's product name and accent colour (the logo is uploaded on its own).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BrandIn {
    #[schema(
        example = "Example PBX Webhooks",
        max_length = 60,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: Option<String>,
    #[schema(pattern = "^#[0-9a-fA-F]{6}$", example = "#0a7d5a")]
    accent: Option<String>,
}

fn brand_of(input: BrandIn, logo_type: Option<String>) -> ApiResult<Brand> {
    check_brand(input.name.as_deref(), input.accent.as_deref())
        .map_err(|m| ApiError::unprocessable("invalid_partner", m))?;
    Ok(Brand {
        name: input.name,
        accent: input.accent.map(|a| a.to_ascii_lowercase()),
        logo_type,
    })
}

/// What a partner may change: its name (operators only) and the origins that may frame its
/// tenants' console.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartnerPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: Option<String>,
    /// e.g. `["https://admin.example-pbx.com"]`; `[]` allows none beyond the node's default.
    #[schema(schema_with = origins)]
    frame_ancestors: Option<Vec<String>>,
    /// Replaces the name and accent colour (the logo stays).
    brand: Option<BrandIn>,
}

/// `https://host[:port]` origins, at most 20 (plain http only for loopback hosts, which the
/// schema leaves out).
fn origins() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(200))
                .pattern(Some(
                    "^https://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:]+\\])(:[1-9][0-9]{0,4})?/?$",
                )),
        )
        .max_items(Some(crate::model::tenancy::MAX_FRAME_ANCESTORS))
        .examples([serde_json::json!(["https://admin.example-pbx.com"])])
        .build()
}

/// A partner as the API shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PartnerOut {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub frame_ancestors: Vec<String>,
    pub brand: Brand,
    /// Where the console loads the logo from, when there is one.
    pub logo_url: Option<String>,
}

fn out(p: &Partner) -> PartnerOut {
    PartnerOut {
        id: p.id.clone(),
        name: p.name.clone(),
        created_at: crate::time::format_ms(p.created_at),
        frame_ancestors: p.frame_ancestors.clone(),
        brand: p.brand.clone(),
        logo_url: p.brand.logo_type.as_ref().map(|_| logo_path(&p.id)),
    }
}

/// The console's path to a partner's logo.
pub fn logo_path(pid: &str) -> String {
    format!("/console/brand/{pid}/logo")
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
        brand: brand_of(input.brand, None)?,
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
    if let Some(brand) = patch.brand {
        partner.brand = brand_of(brand, partner.brand.logo_type.take())?;
    }
    if !s.store.update_partner(partner.clone()).await? {
        return Err(ApiError::not_found(&format!("partner `{pid}`")));
    }
    Ok(Json(out(&partner)))
}

/// Uploads the partner's logo: PNG, JPEG or WebP (told from the bytes), at most 64 KiB.
#[utoipa::path(put, path = "/v1/partners/{pid}/logo", tag = "partners", params(("pid" = String, Path)),
    request_body(content = Vec<u8>, content_type = "image/png", description = "PNG, JPEG or WebP, at most 64 KiB"),
    responses((status = 200, body = PartnerOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn put_logo(
    State(s): State<AppState>,
    p: Principal,
    Path(pid): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<PartnerOut>> {
    // Who may, before a byte of the body is read.
    let partner = s.visible_partner(&p, &pid).await?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a logo is at most {} KiB", MAX_LOGO_BYTES / 1024),
        )
    };
    let bytes = axum::body::to_bytes(req.into_body(), MAX_LOGO_BYTES)
        .await
        .map_err(|_| too_large())?;
    let kind = logo_type(&bytes).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_logo",
            "the logo must be a PNG, JPEG or WebP image (SVG is not accepted: it can carry script)",
        )
    })?;
    if !s
        .store
        .set_partner_logo(&partner.id, Some((kind.to_string(), bytes.to_vec())))
        .await?
    {
        return Err(ApiError::not_found(&format!("partner `{pid}`")));
    }
    let updated = s.visible_partner(&p, &pid).await?;
    Ok(Json(out(&updated)))
}

#[utoipa::path(delete, path = "/v1/partners/{pid}/logo", tag = "partners", params(("pid" = String, Path)),
    responses((status = 204, description = "removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_logo(
    State(s): State<AppState>,
    p: Principal,
    Path(pid): Path<String>,
) -> ApiResult<StatusCode> {
    let partner = s.visible_partner(&p, &pid).await?;
    s.store.set_partner_logo(&partner.id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
