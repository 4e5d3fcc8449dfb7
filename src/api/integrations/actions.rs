//! The actions on one integration: verify (the challenge again), test (a sample delivery),
//! disable, enable (with or without resending), rotate the signing secret.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::common::*;
use crate::api::{AppState, LazyBody};
use crate::auth::Principal;
use crate::cache::SigningSecret;
use crate::deliver::challenge;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::render::sign::generate_secret;
use crate::store::{IntegrationHealth, IntegrationStatus};

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
    responses((status = 200, body = crate::deliver::attempt::TestReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
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
    if i.valid.spec.destination.is_stream() {
        return Err(ApiError::conflict(
            "not_applicable",
            "a stream integration sends nothing to test; connect to its stream and send an event",
        ));
    }
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
    let was_disabled = i.status == IntegrationStatus::Disabled;
    let mut h = i.health();
    h.status = IntegrationStatus::Disabled;
    h.disabled_reason = Some(reason);
    h.updated_at = s.now_ms();
    let reason = h.disabled_reason.clone();
    s.dispatcher.apply_health(&iid, h).await;
    // Disabling what is disabled changes nothing to tell anyone about.
    if !was_disabled {
        s.dispatcher.notify(
            crate::model::event::EventKind::IntegrationDisabled,
            &iid,
            reason.as_deref(),
            None,
            true,
        );
    }
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
