//! What a person does to an integration from its page: send a test, rotate the signing
//! secret, disable, re-enable, redeliver; and one delivery's page with its request.

// A page's error is the page to show instead (`Result<Response, Response>`, as axum handlers
// return it); boxing it would buy nothing on a console request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Form, Json};
use serde_json::{json, Value};

use super::common::*;
use crate::api::{deliveries, integrations};
use crate::console::form::Fields;
use crate::console::session::Session;
use crate::console::view::{error_page, page, redirect};
use crate::serve::body::LazyBody;
use crate::state::AppState;

pub async fn test_send(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    check_csrf(&sess, &Fields(f))?;
    let (owner, i) = load(&s, &sess, &path).await?;
    let test = |st, p, at| integrations::test(st, p, at, LazyBody::ready(json!({})));
    let Json(r) = as_user(&s, &sess, &owner, &path, test)
        .await
        .map_err(fail(&sess, &owner.base()))?;
    let success = r.success;
    let show = |v: Option<String>| v.unwrap_or_else(|| "—".to_string());
    let facts = vec![
        ("Event type", r.event_type),
        ("Response", show(r.status_code.map(|c| c.to_string()))),
        ("Time", format!("{} ms", r.duration_ms)),
        ("Error class", show(r.error_class)),
        ("Error", show(r.error)),
        ("Response excerpt", show(r.response_excerpt)),
    ];
    Ok(page(
        StatusCode::OK,
        "result.html",
        Some(&sess),
        json!({
            "heading": if success { "Test event delivered" } else { "Test event failed" },
            "error": (!success).then_some("The receiver did not accept the test event; see below."),
            "notice": success.then_some("The receiver answered 2xx."),
            "facts": facts, "next": ibase(&owner, &i),
        }),
    ))
}

pub async fn rotate(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    check_csrf(&sess, &Fields(f))?;
    let (owner, i) = load(&s, &sess, &path).await?;
    let Json(r) = as_user(&s, &sess, &owner, &path, integrations::rotate)
        .await
        .map_err(fail(&sess, &owner.base()))?;
    Ok(page(
        StatusCode::OK,
        "result.html",
        Some(&sess),
        json!({
            "heading": "Signing secret rotated",
            "notice": "The previous secret keeps signing alongside the new one for 24 hours.",
            "secret": r.signing_secret, "secret_label": "New signing secret",
            "next": ibase(&owner, &i),
        }),
    ))
}

pub async fn disable(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    let f = Fields(f);
    check_csrf(&sess, &f)?;
    let (owner, i) = load(&s, &sess, &path).await?;
    let body = match f.text("reason") {
        Some(r) => json!({"reason": r}),
        None => json!({}),
    };
    let _disabled = as_user(&s, &sess, &owner, &path, |st, p, at| {
        integrations::disable(st, p, at, LazyBody::ready(body))
    })
    .await
    .map_err(fail(&sess, &ibase(&owner, &i)))?;
    Ok(back_with_notice(&owner, &i, "Disabled"))
}

pub async fn enable(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    let f = Fields(f);
    check_csrf(&sess, &f)?;
    let (owner, i) = load(&s, &sess, &path).await?;
    let mut body = json!({"resend": f.get("resend").is_some()});
    if let Some(secret) = f.get("secret") {
        body["secret"] = json!(secret);
    }
    let Json(r) = as_user(&s, &sess, &owner, &path, |st, p, at| {
        integrations::enable(st, p, at, LazyBody::ready(body))
    })
    .await
    .map_err(fail(&sess, &ibase(&owner, &i)))?;
    let notice = format!(
        "Re-enabled; {} deliveries queued again",
        r.resent.unwrap_or(0)
    );
    Ok(back_with_notice(&owner, &i, &notice))
}

pub async fn redeliver_range(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    let f = Fields(f);
    check_csrf(&sess, &f)?;
    let (owner, i) = load(&s, &sess, &path).await?;
    let body = json!({
        "since": f.get("since").and_then(utc),
        "until": f.get("until").and_then(utc),
    });
    let (_, Json(r)) = as_user(&s, &sess, &owner, &path, |st, p, at| {
        deliveries::redeliver_range(st, p, at, LazyBody::ready(body))
    })
    .await
    .map_err(fail(&sess, &ibase(&owner, &i)))?;
    let notice = format!("{} failed deliveries queued again", r.queued);
    Ok(back_with_notice(&owner, &i, &notice))
}

pub async fn delivery(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
) -> Page {
    let (owner, i) = load(&s, &sess, &path).await?;
    let ib = ibase(&owner, &i);
    let Json(d) = as_user(&s, &sess, &owner, &path, deliveries::read)
        .await
        .map_err(fail(&sess, &ib))?;
    let job = s
        .store
        .delivery_job(&d.delivery.id)
        .await
        .map_err(|e| error_page(Some(&sess), e.into(), &ib))?;
    let integration = s.cache.get(&i.id);
    let mut attempts: Vec<Value> = d.attempts_log.iter().map(value).collect();
    if let (Some(job), Some(integration)) = (job, integration) {
        for (a, shown) in d.attempts_log.iter().zip(&mut attempts) {
            let at = crate::time::parse_rfc3339_ms(&a.started_at).unwrap_or_else(|| s.now_ms());
            // A payload that cannot be rendered was never sent: the attempt's error says why.
            let Ok(out) = crate::deliver::attempt::rebuild(
                &s.dispatcher.sender(),
                &integration,
                &job,
                a.attempt,
                at,
            ) else {
                continue;
            };
            let headers: Vec<(String, String)> = out
                .headers
                .into_iter()
                .map(|(k, v)| match k.as_str() {
                    "authorization" => (k, "Bearer ••••••".to_string()),
                    // Custom header values are write-only, like the secret.
                    _ if integration
                        .valid
                        .spec
                        .headers
                        .keys()
                        .any(|h| h.eq_ignore_ascii_case(&k)) =>
                    {
                        let hint = crate::model::settings::header_hint(&v);
                        (k, hint)
                    }
                    _ => (k, v),
                })
                .chain(
                    out.content_type
                        .map(|ct| ("content-type".into(), ct.into())),
                )
                .collect();
            shown["request"] = json!({
                "method": format!("{:?}", out.method).to_uppercase(),
                "url": out.url.as_str(),
                "headers": headers,
                "body": String::from_utf8_lossy(&out.body),
            });
        }
    }
    Ok(page(
        StatusCode::OK,
        "delivery.html",
        Some(&sess),
        json!({
            "i": value(&i), "ibase": ib, "d": value(&d), "attempts": attempts,
            "can_manage": can_manage(&sess, &owner),
        }),
    ))
}

pub async fn redeliver_one(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    check_csrf(&sess, &Fields(f))?;
    let (owner, i) = load(&s, &sess, &path).await?;
    let ib = ibase(&owner, &i);
    let _queued = as_user(&s, &sess, &owner, &path, deliveries::redeliver_one)
        .await
        .map_err(fail(&sess, &ib))?;
    let did = path.get("did").cloned().unwrap_or_default();
    Ok(redirect(&format!("{ib}/deliveries/{}", urlencode(&did))))
}
