//! Integrations of a tenant: create, list, read, change, delete, and the actions on one
//! (verify, test, disable, enable, rotate the signing secret).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::{AppState, LazyBody};
use crate::auth::Principal;
use crate::cache::{Integration, SigningSecret};
use crate::deliver::challenge;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::integration::{
    check_secret, check_shape, header_hint, validate, IntegrationSpec, SettingError, ValidSpec,
    Verification,
};
use crate::model::tenancy::{Partner, Role, Tenant};
use crate::render::sign::generate_secret;
use crate::security::ssrf::{resolve_allowed, ResolveError};
use crate::serve::body::{merge_patch, typed};
use crate::store::{IntegrationHealth, IntegrationStatus, StoreError};
use crate::time::format_ms;
use std::collections::HashMap;

/// How long the previous signing secret keeps signing after a rotation.
const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;

pub fn router() -> Router<AppState> {
    routes("/v1/tenants/{tid}/integrations").merge(routes("/v1/partners/{pid}/integrations"))
}

fn routes(base: &str) -> Router<AppState> {
    Router::new()
        .route(base, post(create).get(list))
        .route(
            &format!("{base}/{{iid}}"),
            get(read).patch(update).delete(remove),
        )
        .route(&format!("{base}/{{iid}}/verify"), post(verify))
        .route(&format!("{base}/{{iid}}/test"), post(test))
        .route(&format!("{base}/{{iid}}/disable"), post(disable))
        .route(&format!("{base}/{{iid}}/enable"), post(enable))
        .route(
            &format!("{base}/{{iid}}/rotate-signing-secret"),
            post(rotate),
        )
}

/// An integration as the API shows it: its settings and its state. `signing_secret` appears
/// once, when it is created or rotated; `resent` only in the answer to `enable`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct IntegrationOut {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    #[serde(flatten)]
    pub settings: IntegrationSpec,
    /// active or disabled.
    pub status: String,
    pub disabled_reason: Option<String>,
    /// The last characters of the receiver's secret, if one is set.
    pub secret_hint: Option<String>,
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resent: Option<u64>,
}

pub(crate) fn out(i: &Integration) -> IntegrationOut {
    IntegrationOut {
        id: i.id.clone(),
        tenant_id: match &i.partner_id {
            Some(_) => None,
            None => i.tenant_id.clone(),
        },
        partner_id: i.partner_id.clone(),
        settings: {
            let mut spec = i.valid.spec.clone();
            for v in spec.headers.values_mut() {
                *v = header_hint(v);
            }
            spec
        },
        status: i.status.as_str().to_string(),
        disabled_reason: i.disabled_reason.clone(),
        secret_hint: i.secret_hint.clone(),
        failing_since: i.failing_since.map(format_ms),
        created_at: format_ms(i.created_at),
        updated_at: format_ms(i.updated_at),
        signing_secret: None,
        resent: None,
    }
}

/// Settings of a new integration: every setting, plus the write-only `secret`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // the OpenAPI shape of the body; `create` reads it as JSON
pub(crate) struct IntegrationIn {
    #[serde(flatten)]
    settings: IntegrationSpec,
    /// Sent to the receiver as `Authorization: Bearer …`; never shown again.
    secret: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct IntegrationList {
    pub items: Vec<IntegrationOut>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Verified {
    pub verified: bool,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct DisableIn {
    /// Up to 500 characters, kept with the status.
    reason: Option<String>,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct EnableIn {
    /// Required when the integration has a secret: proves the caller knows it.
    secret: Option<String>,
    /// Resend held and failed deliveries (default true).
    resend: Option<bool>,
}

/// An action's body is an object of the named fields only: a misspelt field is refused, not
/// ignored.
fn only_fields(body: &Value, allowed: &[&str]) -> ApiResult<()> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "the body must be a JSON object",
        ));
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        let takes = match allowed {
            [] => "no fields".to_string(),
            some => format!("only {}", some.join(", ")),
        };
        return Err(ApiError::unprocessable(
            "invalid_request",
            format!("unknown field `{k}`: this action takes {takes}"),
        ));
    }
    Ok(())
}

fn setting(e: SettingError) -> ApiError {
    ApiError::unprocessable(e.code, e.message)
}

/// Whose integrations a path names: a tenant's (`{tid}`) or a partner's feed (`{pid}`).
pub(crate) enum Owner {
    Tenant(Tenant),
    Partner(Partner),
}

impl Owner {
    fn holds(&self, i: &Integration) -> bool {
        match self {
            Owner::Tenant(t) => i.tenant_id.as_deref() == Some(t.id.as_str()),
            Owner::Partner(p) => {
                i.partner_id.as_deref() == Some(p.id.as_str()) && i.tenant_id.is_none()
            }
        }
    }
}

pub(crate) type Params = HashMap<String, String>;

pub(crate) fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or_default()
}

/// The owner named by the path, if the caller may see it; 404 otherwise.
pub(crate) async fn owner_of(s: &AppState, p: &Principal, params: &Params) -> ApiResult<Owner> {
    if let Some(tid) = params.get("tid") {
        return Ok(Owner::Tenant(s.visible_tenant(p, tid).await?));
    }
    let pid = param(params, "pid");
    Ok(Owner::Partner(s.visible_partner(p, pid).await?))
}

/// The owner and its integration `iid`; 404 for anything else.
pub(crate) async fn owned(
    s: &AppState,
    p: &Principal,
    params: &Params,
) -> ApiResult<(Owner, Arc<Integration>)> {
    let owner = owner_of(s, p, params).await?;
    let iid = param(params, "iid");
    let i = s
        .cache
        .get(iid)
        .filter(|i| owner.holds(i))
        .ok_or_else(|| ApiError::not_found(&format!("integration `{iid}`")))?;
    Ok((owner, i))
}

/// Tenant integrations are changed by tenant and partner admins and operators; partner feeds by
/// partner admins and operators.
pub(crate) fn manage(p: &Principal, owner: &Owner) -> ApiResult<()> {
    let ok = match owner {
        Owner::Tenant(_) => p.manages_tenant(),
        Owner::Partner(_) => matches!(p.role, Role::Operator | Role::PartnerAdmin),
    };
    p.require(ok, "change integrations")
}

/// `secret` is write-only and kept out of the stored settings: absent, `null` (remove) or a value.
fn take_secret(body: &mut Map<String, Value>) -> ApiResult<Option<Option<String>>> {
    match body.remove("secret") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => {
            check_secret(&s).map_err(setting)?;
            Ok(Some(Some(s)))
        }
        Some(_) => Err(ApiError::unprocessable(
            "invalid_setting",
            "`secret` must be a string (or null to remove it)",
        )),
    }
}

/// The save-time half of the SSRF guard: every address the host resolves to must be allowed.
async fn check_destination(s: &AppState, v: &ValidSpec) -> ApiResult<()> {
    if let Some(url::Host::Domain(host)) = v.url.host() {
        resolve_allowed(&s.lookup, host, s.policy)
            .await
            .map_err(|e| match e {
                ResolveError::Refused(m) | ResolveError::Dns(m) => {
                    ApiError::unprocessable("invalid_url", m)
                }
            })?;
    }
    Ok(())
}

fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::unprocessable(
            "invalid_setting",
            "the body must be a JSON object of settings",
        )),
    }
}

#[utoipa::path(post, path = "/v1/tenants/{tid}/integrations", tag = "integrations", params(("tid" = String, Path)), request_body = IntegrationIn,
    responses((status = 201, body = IntegrationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, description = "a setting is refused, or the challenge failed (the message says why)", body = ErrorBody)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    body: LazyBody,
) -> ApiResult<(StatusCode, Json<IntegrationOut>)> {
    let owner = owner_of(&s, &p, &params).await?;
    manage(&p, &owner)?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let mut body = object(body)?;
    let secret = take_secret(&mut body)?.flatten();
    match &owner {
        Owner::Partner(partner) => {
            if !s.cache.for_partner(&partner.id).is_empty() {
                return Err(ApiError::conflict(
                    "partner_integration_exists",
                    format!(
                        "partner `{}` already has its one feed integration; change or delete it",
                        partner.id
                    ),
                ));
            }
            partner_defaults(&mut body);
        }
        Owner::Tenant(_) => {}
    }
    let body = Value::Object(body);
    check_shape(&body).map_err(setting)?;
    let spec: IntegrationSpec = typed(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting")?;
    check_feed(&owner, &spec)?;
    let valid = validate(spec, secret.is_some(), s.policy).map_err(setting)?;
    let max = match &owner {
        Owner::Tenant(t) => Some(
            t.max_integrations
                .unwrap_or(s.config.default_max_integrations),
        ),
        Owner::Partner(_) => None,
    };
    if let (Some(max), Owner::Tenant(t)) = (max, &owner) {
        if s.cache.for_tenant(&t.id).len() >= max as usize {
            return Err(limit_reached(&t.id, max));
        }
    }
    check_destination(&s, &valid).await?;
    if valid.spec.verification == Verification::Challenge {
        challenge::verify(&s.client, &valid, secret.as_deref())
            .await
            .map_err(setting)?;
    }
    let signing_secret = generate_secret();
    let now = s.now_ms();
    let (tenant_id, partner_id) = match &owner {
        Owner::Tenant(t) => (Some(t.id.clone()), None),
        Owner::Partner(p) => (None, Some(p.id.clone())),
    };
    let integration = Integration::new(
        crate::model::ids::new_id("int"),
        tenant_id,
        partner_id,
        valid,
        secret,
        vec![SigningSecret {
            secret: signing_secret.clone(),
            expires_at: None,
        }],
        now,
    );
    s.store
        .insert_integration(integration.to_record(&s.sealer), max)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => ApiError::conflict("integration_limit", m),
            other => other.into(),
        })?;
    let integration = s.cache.put(integration);
    let mut body = out(&integration);
    body.signing_secret = Some(signing_secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `feed` belongs to partner integrations; a partner integration always has one.
fn check_feed(owner: &Owner, spec: &IntegrationSpec) -> ApiResult<()> {
    match (owner, spec.feed) {
        (Owner::Tenant(_), Some(_)) => Err(ApiError::unprocessable(
            "invalid_setting",
            "`feed` is for partner integrations (/v1/partners/{pid}/integrations)",
        )),
        (Owner::Partner(_), None) => Err(ApiError::unprocessable(
            "invalid_setting",
            "a partner integration needs `feed`: analytics or billing",
        )),
        _ => Ok(()),
    }
}

/// A partner feed is, unless the request says otherwise, seed 003's: analytics, `cdr-batch` of
/// calls that ended 10–5 minutes before each 5-minute boundary.
fn partner_defaults(body: &mut Map<String, Value>) {
    body.entry("feed").or_insert(json!("analytics"));
    body.entry("event_types")
        .or_insert(json!(["call.completed"]));
    let profile = body.entry("profile").or_insert(json!("cdr-batch")).clone();
    if profile == json!("cdr-batch") {
        let delivery = body.entry("delivery").or_insert(json!({}));
        if let Value::Object(d) = delivery {
            d.entry("mode").or_insert(json!("batch"));
            d.entry("interval_s").or_insert(json!(300));
            d.entry("delay_s").or_insert(json!(300));
        }
    }
}

fn limit_reached(tid: &str, max: u32) -> ApiError {
    ApiError::conflict(
        "integration_limit",
        format!("tenant `{tid}` already has its limit of {max} integrations (max_integrations); delete one or raise the limit"),
    )
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/integrations", tag = "integrations", params(("tid" = String, Path)),
    responses((status = 200, body = IntegrationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<Json<IntegrationList>> {
    let items: Vec<IntegrationOut> = match owner_of(&s, &p, &params).await? {
        Owner::Tenant(t) => s.cache.for_tenant(&t.id).iter().map(|i| out(i)).collect(),
        Owner::Partner(pa) => s.cache.for_partner(&pa.id).iter().map(|i| out(i)).collect(),
    };
    Ok(Json(IntegrationList { items }))
}

#[utoipa::path(get, path = "/v1/tenants/{tid}/integrations/{iid}", tag = "integrations", params(("tid" = String, Path), ("iid" = String, Path)),
    responses((status = 200, body = IntegrationOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<Json<IntegrationOut>> {
    let (_, i) = owned(&s, &p, &params).await?;
    Ok(Json(out(&i)))
}

#[utoipa::path(patch, path = "/v1/tenants/{tid}/integrations/{iid}", tag = "integrations", params(("tid" = String, Path), ("iid" = String, Path)), request_body(content = Object, description = "a JSON merge patch (RFC 7396) of the settings; `secret`: a value or null"),
    responses((status = 200, body = IntegrationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    body: LazyBody,
) -> ApiResult<Json<IntegrationOut>> {
    let (owner, current) = owned(&s, &p, &params).await?;
    let iid = param(&params, "iid").to_string();
    manage(&p, &owner)?;
    let (body, _share) = body.read(&s.bodies).await?.split();
    let mut patch = object(body)?;
    let secret = match take_secret(&mut patch)? {
        None => current.secret.clone(),
        Some(new) => new,
    };
    let mut merged = serde_json::to_value(&current.valid.spec).map_err(ApiError::internal)?;
    merge_patch(&mut merged, Value::Object(patch));
    // Header values are shown as hints: a hint sent back (a settings object read, edited and
    // sent whole) keeps the value it stands for.
    if let Some(Value::Object(headers)) = merged.get_mut("headers") {
        for (name, v) in headers.iter_mut() {
            if let Some(old) = current.valid.spec.headers.get(name) {
                if v.as_str() == Some(header_hint(old).as_str()) {
                    *v = Value::String(old.clone());
                }
            }
        }
    }
    check_shape(&merged).map_err(setting)?;
    let spec: IntegrationSpec = typed(merged, StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting")?;
    check_feed(&owner, &spec)?;
    let valid = validate(spec, secret.is_some(), s.policy).map_err(setting)?;
    let old = &current.valid.spec;
    let moved = valid.spec.url != old.url;
    if moved {
        check_destination(&s, &valid).await?;
    }
    let rechallenge = valid.spec.verification == Verification::Challenge
        && (moved
            || valid.spec.headers != old.headers
            || old.verification != Verification::Challenge);
    if rechallenge {
        challenge::verify(&s.client, &valid, secret.as_deref())
            .await
            .map_err(setting)?;
    }
    let mut next = (*current).clone();
    next.valid = valid;
    next.set_secret(secret);
    next.updated_at = s.now_ms();
    s.store
        .update_integration(next.to_record(&s.sealer))
        .await?;
    let next = s.cache.put(next);
    s.dispatcher.integration_changed(&iid);
    Ok(Json(out(&next)))
}

#[utoipa::path(delete, path = "/v1/tenants/{tid}/integrations/{iid}", tag = "integrations", params(("tid" = String, Path), ("iid" = String, Path)),
    responses((status = 204, description = "deleted; its pending deliveries are cancelled"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<StatusCode> {
    let (owner, _) = owned(&s, &p, &params).await?;
    let iid = param(&params, "iid").to_string();
    manage(&p, &owner)?;
    s.store.delete_integration(&iid).await?;
    s.cache.remove(&iid);
    s.dispatcher.integration_changed(&iid);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/tenants/{tid}/integrations/{iid}/verify", tag = "integrations", params(("tid" = String, Path), ("iid" = String, Path)),
    responses((status = 200, body = Verified), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn verify(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<Json<Verified>> {
    let (owner, i) = owned(&s, &p, &params).await?;
    manage(&p, &owner)?;
    challenge::verify(&s.client, &i.valid, i.secret.as_deref())
        .await
        .map_err(setting)?;
    Ok(Json(Verified { verified: true }))
}

/// Sends a sample event now and reports what came back; nothing is stored.
#[utoipa::path(post, path = "/v1/tenants/{tid}/integrations/{iid}/test", tag = "integrations", params(("tid" = String, Path), ("iid" = String, Path)),
    responses((status = 200, body = crate::deliver::attempt::TestReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn test(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    body: LazyBody,
) -> ApiResult<Json<crate::deliver::attempt::TestReport>> {
    let (owner, i) = owned(&s, &p, &params).await?;
    manage(&p, &owner)?;
    let (body, _share) = body.read_optional(&s.bodies).await?.split();
    only_fields(&body, &[])?;
    let report = crate::deliver::attempt::send_sample(&s.dispatcher.sender(), &i, s.now_ms()).await;
    Ok(Json(report))
}

#[utoipa::path(post, path = "/v1/tenants/{tid}/integrations/{iid}/disable", tag = "integrations", params(("tid" = String, Path), ("iid" = String, Path)), request_body(content = Option<DisableIn>),
    responses((status = 200, body = IntegrationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn disable(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    body: LazyBody,
) -> ApiResult<Json<IntegrationOut>> {
    let (owner, i) = owned(&s, &p, &params).await?;
    let iid = param(&params, "iid").to_string();
    manage(&p, &owner)?;
    let (body, _share) = body.read_optional(&s.bodies).await?.split();
    only_fields(&body, &["reason"])?;
    let reason = match body.get("reason") {
        None | Some(Value::Null) => "disabled by an administrator".to_string(),
        Some(Value::String(r)) if r.len() <= 500 => format!("disabled by an administrator: {r}"),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "`reason` must be a string of at most 500 characters",
            ))
        }
    };
    let mut h = i.health();
    h.status = IntegrationStatus::Disabled;
    h.disabled_reason = Some(reason);
    h.updated_at = s.now_ms();
    let reason = h.disabled_reason.clone();
    s.dispatcher.apply_health(&iid, h).await;
    s.dispatcher
        .notify("integration.disabled", &iid, reason.as_deref(), None);
    let now = s
        .cache
        .get(&iid)
        .ok_or_else(|| ApiError::not_found("integration"))?;
    Ok(Json(out(&now)))
}

#[utoipa::path(post, path = "/v1/tenants/{tid}/integrations/{iid}/enable", tag = "integrations", params(("tid" = String, Path), ("iid" = String, Path)), request_body(content = Option<EnableIn>),
    responses((status = 200, body = IntegrationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn enable(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    body: LazyBody,
) -> ApiResult<Json<IntegrationOut>> {
    let (owner, i) = owned(&s, &p, &params).await?;
    let iid = param(&params, "iid").to_string();
    manage(&p, &owner)?;
    let (body, _share) = body.read_optional(&s.bodies).await?.split();
    only_fields(&body, &["secret", "resend"])?;
    if let Some(expected) = &i.secret {
        let given = body.get("secret").and_then(Value::as_str).ok_or_else(|| {
            ApiError::unprocessable(
                "secret_required",
                "this integration has a secret: send it as `secret` to re-enable it",
            )
        })?;
        if !crate::security::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "secret_mismatch",
                "`secret` does not match the integration's secret",
            ));
        }
    }
    let resend = match body.get("resend") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "`resend` must be true or false",
            ))
        }
    };
    let now = s.now_ms();
    // Active in memory first: events ingested while the backlog is being re-queued are sent, not
    // held (a held one arriving after the re-queue would otherwise wait for the next enable).
    let h = IntegrationHealth {
        status: IntegrationStatus::Active,
        disabled_reason: None,
        failing_since: None,
        consecutive_failures: 0,
        updated_at: now,
    };
    s.cache.put(i.with_health(&h));
    s.dispatcher.reset_health(&iid);
    let resent = match s.store.enable_integration(&iid, resend, now).await {
        Ok(n) => n,
        Err(e) => {
            s.cache.put((*i).clone());
            return Err(e.into());
        }
    };
    s.dispatcher.note_due(&iid, now);
    let current = s
        .cache
        .get(&iid)
        .ok_or_else(|| ApiError::not_found("integration"))?;
    let mut v = out(&current);
    v.resent = Some(resent);
    Ok(Json(v))
}

#[utoipa::path(post, path = "/v1/tenants/{tid}/integrations/{iid}/rotate-signing-secret", tag = "integrations", params(("tid" = String, Path), ("iid" = String, Path)),
    responses((status = 200, body = IntegrationOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn rotate(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
) -> ApiResult<Json<IntegrationOut>> {
    let (owner, i) = owned(&s, &p, &params).await?;
    manage(&p, &owner)?;
    let now = s.now_ms();
    let fresh = generate_secret();
    let mut keys = vec![SigningSecret {
        secret: fresh.clone(),
        expires_at: None,
    }];
    // The current primary keeps signing for a grace period; older ones are dropped.
    if let Some(prev) = i.signing.iter().find(|k| k.expires_at.is_none()) {
        keys.push(SigningSecret {
            secret: prev.secret.clone(),
            expires_at: Some(now + ROTATION_GRACE_MS),
        });
    }
    let mut next = (*i).clone();
    next.set_signing(keys);
    next.updated_at = now;
    s.store
        .update_integration(next.to_record(&s.sealer))
        .await?;
    let next = s.cache.put(next);
    let mut v = out(&next);
    v.signing_secret = Some(fresh);
    Ok(Json(v))
}
