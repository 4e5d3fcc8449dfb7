//! What the integration handlers share: the answer's shape, whose integration a path names
//! and who may manage it, secrets and destinations taken from a request.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::api::AppState;
use crate::auth::Principal;
use crate::cache::Integration;
use crate::error::{ApiError, ApiResult};
use crate::model::integration::{Egress, IntegrationSpec, ValidSpec};
use crate::model::settings::{check_secret, header_hint, SettingError};
use crate::model::tenancy::{Partner, Role, Tenant};
use crate::security::ssrf::{resolve_allowed, ResolveError};
use crate::time::format_ms;

/// How long the previous signing secret keeps signing after a rotation.
pub(crate) const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;

/// An integration as the API shows it: its settings and its state. `signing_secret` appears
/// once, when it is created or rotated; `resent` only in the answer to `enable`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct IntegrationOut {
    pub id: String,
    /// The id in GUID form, as `cdr` payloads carry it in `triggerId` (seed 002); the API
    /// accepts it wherever it accepts the id.
    pub trigger_id: Option<String>,
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
        trigger_id: crate::model::ids::guid(&i.id),
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
            if let Some(key) = spec.tls.as_mut().and_then(|t| t.client_key.as_mut()) {
                *key = KEY_HINT.into();
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
    /// Sent to the receiver as `Authorization: Bearer …`; never shown again. 8–512 printable
    /// ASCII characters, no spaces.
    #[schema(pattern = "^[!-~]{8,512}$")]
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
pub(crate) fn only_fields(body: &Value, allowed: &[&str]) -> ApiResult<()> {
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

pub(crate) fn setting(e: SettingError) -> ApiError {
    ApiError::unprocessable(e.code, e.message)
}

/// A template must render the example event of every type the integration takes.
pub(crate) fn check_template(valid: &ValidSpec) -> ApiResult<()> {
    crate::render::samples::check_template(valid)
        .map_err(|m| ApiError::unprocessable("invalid_template", m))
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

/// A path parameter. An integration (`iid`) may be named by its id or by the GUID form of it
/// that `cdr` payloads carry as `triggerId`.
pub(crate) fn param<'a>(params: &'a Params, name: &str) -> std::borrow::Cow<'a, str> {
    let value = params.get(name).map(String::as_str).unwrap_or_default();
    if name == "iid" && value.len() == 36 {
        return std::borrow::Cow::Owned(crate::model::ids::from_guid("int", value));
    }
    std::borrow::Cow::Borrowed(value)
}

/// The owner named by the path, if the caller may see it; 404 otherwise.
pub(crate) async fn owner_of(s: &AppState, p: &Principal, params: &Params) -> ApiResult<Owner> {
    if let Some(tid) = params.get("tid") {
        return Ok(Owner::Tenant(s.visible_tenant(p, tid).await?));
    }
    let pid = param(params, "pid");
    Ok(Owner::Partner(s.visible_partner(p, &pid).await?))
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
        .get(&iid)
        .filter(|i| owner.holds(i) && p.sees_integration(&i.id))
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
pub(crate) fn take_secret(body: &mut Map<String, Value>) -> ApiResult<Option<Option<String>>> {
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

/// What the API shows of a client key; sent back, it keeps the key.
pub(crate) const KEY_HINT: &str = "…";

/// A client certificate and key that do not make a pair are refused at save (422), rather than
/// found out at the first handshake.
pub(crate) fn check_client_identity(v: &ValidSpec) -> ApiResult<()> {
    if let Some(tls) = &v.spec.tls {
        let key = tls.client_key.as_deref().unwrap_or_default();
        crate::deliver::client::check_identity(&tls.client_certificate, key)
            .map_err(|m| ApiError::unprocessable("invalid_tls", m))?;
    }
    Ok(())
}

/// A broker destination must be one of the servers the operator listed.
pub(crate) fn check_broker_server(s: &AppState, v: &ValidSpec) -> ApiResult<()> {
    match s.client.refuses_broker_server(&v.spec.destination, &v.url) {
        None => Ok(()),
        Some(message) => Err(ApiError::unprocessable(
            "invalid_url",
            format!("`url`: {message}"),
        )),
    }
}

/// `delivery.egress: fixed` needs the node's egress proxy: refused (422) on a node without one,
/// rather than saved and never sent.
pub(crate) fn check_egress(s: &AppState, v: &ValidSpec) -> ApiResult<()> {
    if v.spec.delivery.egress == Some(Egress::Fixed) && !s.client.has_fixed_egress() {
        return Err(ApiError::unprocessable(
            "egress_unavailable",
            "`delivery.egress` fixed sends through the egress proxy, and this node has none; ask the operator to set CALLHOOK_EGRESS_PROXY, or use direct",
        ));
    }
    Ok(())
}

/// The save-time half of the SSRF guard: every address the host resolves to must be allowed.
pub(crate) async fn check_destination(s: &AppState, v: &ValidSpec) -> ApiResult<()> {
    // A broker is one of the servers the operator listed (see `check_broker_server`).
    if !v.spec.destination.is_http() {
        return Ok(());
    }
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

pub(crate) fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::unprocessable(
            "invalid_setting",
            "the body must be a JSON object of settings",
        )),
    }
}
