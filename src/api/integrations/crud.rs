//! Creating, listing, reading, changing and deleting integrations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use super::common::*;
use crate::api::{AppState, LazyBody};
use crate::auth::Principal;
use crate::cache::{Integration, SigningSecret};
use crate::deliver::challenge;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::integration::{IntegrationSpec, Verification};
use crate::model::settings::{check_shape, header_hint, validate};
use crate::render::sign::generate_secret;
use crate::serve::body::{merge_patch, typed};
use crate::store::StoreError;

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
    p.require(
        p.integrations.is_none(),
        "create integrations: this session is limited to some of the tenant's integrations",
    )?;
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
    check_template(&valid)?;
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
    check_broker_server(&s, &valid)?;
    check_egress(&s, &valid)?;
    check_client_identity(&valid)?;
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

/// `feed` belongs to partner integrations; a partner integration always has one. Operational
/// events are a tenant's, about its own integrations: a partner feed never receives them.
pub(crate) fn check_feed(owner: &Owner, spec: &IntegrationSpec) -> ApiResult<()> {
    if matches!(owner, Owner::Partner(_)) && spec.event_types.iter().any(|k| k.is_operational()) {
        return Err(ApiError::unprocessable(
            "invalid_setting",
            "operational event types (integration.*, delivery.exhausted) are for tenant integrations; a partner feed carries calls",
        ));
    }
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

/// A partner feed is, unless the request says otherwise, seed 003's: analytics, Webex Calling
/// records (`webex-cdr`) of the calls that ended 10–5 minutes before each 5-minute boundary.
pub(crate) fn partner_defaults(body: &mut Map<String, Value>) {
    body.entry("feed").or_insert(json!("analytics"));
    // Webex signs with the partner's secret and never sends it.
    body.entry("secret_use").or_insert(json!("webex-signature"));
    body.entry("event_types")
        .or_insert(json!(["call.completed"]));
    let profile = body.entry("profile").or_insert(json!("webex-cdr")).clone();
    if profile == json!("cdr-batch") || profile == json!("webex-cdr") {
        let delivery = body.entry("delivery").or_insert(json!({}));
        if let Value::Object(d) = delivery {
            // A feed asked for in real time gets no window.
            if d.entry("mode").or_insert(json!("batch")) == &json!("batch") {
                d.entry("interval_s").or_insert(json!(300));
                d.entry("delay_s").or_insert(json!(300));
            }
        }
    }
}

pub(crate) fn limit_reached(tid: &str, max: u32) -> ApiError {
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
        Owner::Tenant(t) => s
            .cache
            .for_tenant(&t.id)
            .iter()
            .filter(|i| p.sees_integration(&i.id))
            .map(|i| out(i))
            .collect(),
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
    // The client key is write-only too: left out, or its hint sent back, it stays.
    if let Some(Value::Object(tls)) = merged.get_mut("tls") {
        let given = tls.get("client_key").and_then(Value::as_str);
        if given.is_none() || given == Some(KEY_HINT) {
            match current
                .valid
                .spec
                .tls
                .as_ref()
                .and_then(|t| t.client_key.clone())
            {
                Some(old) => tls.insert("client_key".into(), Value::String(old)),
                None => tls.remove("client_key"),
            };
        }
    }
    check_shape(&merged).map_err(setting)?;
    let spec: IntegrationSpec = typed(merged, StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting")?;
    check_feed(&owner, &spec)?;
    // A session limited to some integrations would hear, through operational events, of the
    // tenant's other integrations: it may keep the types it has, not add these.
    let adds_operational = spec
        .event_types
        .iter()
        .any(|k| k.is_operational() && !current.valid.spec.event_types.contains(k));
    p.require(
        !(adds_operational && p.integrations.is_some()),
        "subscribe to operational events from a session limited to some integrations",
    )?;
    let valid = validate(spec, secret.is_some(), s.policy).map_err(setting)?;
    check_template(&valid)?;
    check_broker_server(&s, &valid)?;
    check_egress(&s, &valid)?;
    check_client_identity(&valid)?;
    let old = &current.valid.spec;
    // A broker destination is where it goes too: its subject, stream or user.
    let moved = valid.spec.url != old.url || valid.spec.destination != old.destination;
    if moved {
        check_destination(&s, &valid).await?;
    }
    // Seed 001 sends the challenge on saving: run again whenever what the receiver sees with
    // it changed — where it goes and from where, its headers, the additional payload that comes
    // with the token, and the secret or how it is used.
    let rechallenge = valid.spec.verification == Verification::Challenge
        && (moved
            || valid.spec.headers != old.headers
            || valid.spec.delivery.egress != old.delivery.egress
            || valid.spec.custom_data != old.custom_data
            || valid.spec.secret_use != old.secret_use
            || valid.spec.tls != old.tls
            || secret != current.secret
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
