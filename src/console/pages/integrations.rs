//! An owner's integrations: the list with recent success rates, one integration's page, and
//! the forms that create, edit and delete them.

// A page's error is the page to show instead (`Result<Response, Response>`, as axum handlers
// return it); boxing it would buy nothing on a console request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Form, Json};
use serde_json::{json, Map, Value};

use super::common::*;
use crate::api::integrations::IntegrationOut;
use crate::api::{deliveries, integrations};
use crate::console::form::{self, Fields, PRIVACY_TARGETS};
use crate::console::session::Session;
use crate::console::view::{error_page, page, redirect};
use crate::model::event::EventKind;
use crate::serve::body::{diff_patch, LazyBody};
use crate::state::AppState;
use crate::store::{DeliveryFilter, DeliveryStatus};

pub async fn integrations(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
) -> Page {
    let owner = OwnerPath::from(&path).map_err(fail(&sess, "/console"))?;
    let Json(listed) = as_user(&s, &sess, &owner, &path, integrations::list)
        .await
        .map_err(fail(&sess, "/console"))?;
    let mut items = Vec::new();
    for i in listed.items {
        let recent = s
            .store
            .list_deliveries(
                &i.id,
                DeliveryFilter {
                    status: None,
                    since: None,
                    until: None,
                    before: None,
                    limit: RATE_WINDOW,
                },
            )
            .await
            .map_err(|e| error_page(Some(&sess), e.into(), "/console"))?;
        let ok = recent
            .iter()
            .filter(|d| d.status == DeliveryStatus::Succeeded)
            .count();
        let failed = recent
            .iter()
            .filter(|d| d.status == DeliveryStatus::Failed)
            .count();
        let rate = (ok + failed > 0).then(|| (ok * 100) / (ok + failed));
        let mut row = value(&i);
        row["last"] = json!(recent.first());
        row["rate"] = json!(rate);
        items.push(row);
    }
    // The tenant's charts (a partner's one feed integration has its own, on its page).
    let charts = match owner.partner() {
        true => Value::Null,
        // The list shows without its charts if they cannot be read.
        false => crate::api::stats::tenant_stats(&s, &sess.principal, &owner.id, 24)
            .await
            .map(|st| super::common::charts(&st))
            .unwrap_or(Value::Null),
    };
    Ok(page(
        StatusCode::OK,
        "integrations.html",
        Some(&sess),
        json!({
            "owner_label": owner.label(), "base": owner.base(), "items": items,
            "can_manage": can_manage(&sess, &owner), "is_partner": owner.partner(),
            "window": RATE_WINDOW, "charts": charts,
        }),
    ))
}

pub(crate) fn form_page(
    status: StatusCode,
    sess: &Session,
    owner: &OwnerPath,
    values: Map<String, Value>,
    editing: Option<(&str, bool)>,
    error: Option<String>,
) -> Response {
    let targets: Vec<Value> = PRIVACY_TARGETS
        .iter()
        .map(|t| {
            let actions: &[&str] = if t.is_number() {
                &["keep", "remove", "mask", "truncate"]
            } else {
                &["keep", "remove"]
            };
            json!({"name": t.as_str(), "is_number": t.is_number(), "actions": actions})
        })
        .collect();
    let kinds: Vec<&str> = EventKind::SUBSCRIBABLE.iter().map(|k| k.as_str()).collect();
    let base = owner.base();
    let (action, cancel) = match editing {
        Some((iid, _)) => (
            format!("{base}/integrations/{iid}/edit"),
            format!("{base}/integrations/{iid}"),
        ),
        None => (format!("{base}/integrations/new"), base.clone()),
    };
    page(
        status,
        "form.html",
        Some(sess),
        json!({
            "v": values, "kinds": kinds, "profiles": PROFILES, "privacy_targets": targets,
            "is_partner": owner.partner(), "editing": editing.is_some(),
            "has_secret": editing.is_some_and(|(_, has)| has),
            "action": action, "cancel": cancel, "error": error,
            "starter_template": super::preview::STARTER_TEMPLATE,
        }),
    )
}

pub async fn new_form(sess: Session, Path(path): Path<HashMap<String, String>>) -> Page {
    let owner = OwnerPath::from(&path).map_err(fail(&sess, "/console"))?;
    let mut defaults = form::values_from_settings(&json!({
        "event_types": ["call.completed"],
        "options": {},
    }));
    if owner.partner() {
        defaults.insert("profile".into(), json!("webex-cdr"));
        defaults.insert("delivery_mode".into(), json!("batch"));
        defaults.insert("interval_s".into(), json!("300"));
        defaults.insert("delay_s".into(), json!("300"));
    }
    Ok(form_page(
        StatusCode::OK,
        &sess,
        &owner,
        defaults,
        None,
        None,
    ))
}

pub async fn create(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    let owner = OwnerPath::from(&path).map_err(fail(&sess, "/console"))?;
    let f = Fields(f);
    check_csrf(&sess, &f)?;
    let values = form::values_from_fields(&f);
    let again = |e: String| {
        form_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &sess,
            &owner,
            values.clone(),
            None,
            Some(e),
        )
    };
    let mut settings = form::settings_from_fields(&f, owner.partner()).map_err(again)?;
    if let Some(secret) = f.text("secret") {
        settings.insert("secret".into(), json!(secret));
    }
    let result = as_user(&s, &sess, &owner, &path, |st, p, at| {
        integrations::create(st, p, at, LazyBody::ready(Value::Object(settings)))
    })
    .await;
    match result {
        Ok((_, Json(created))) => Ok(created_page(&sess, &owner, &created)),
        Err(e) if e.status.is_client_error() => Err(again(e.message)),
        Err(e) => Err(error_page(Some(&sess), e, &owner.base())),
    }
}

pub(crate) fn created_page(
    sess: &Session,
    owner: &OwnerPath,
    created: &IntegrationOut,
) -> Response {
    page(
        StatusCode::CREATED,
        "result.html",
        Some(sess),
        json!({
            "heading": format!("Created {}", created.settings.name),
            "notice": "The integration is active. Verify signatures with this signing secret.",
            "secret": created.signing_secret, "secret_label": "Signing secret",
            "next": format!("{}/integrations/{}", owner.base(), created.id),
        }),
    )
}

pub async fn integration(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let (owner, i) = load(&s, &sess, &path).await?;
    let ib = ibase(&owner, &i);
    let mut query = HashMap::new();
    let mut filter_query = String::new();
    for key in ["status", "since", "until"] {
        let Some(v) = q.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
            continue;
        };
        let api_value = match key {
            "status" => v.to_string(),
            _ => utc(v).unwrap_or_default(),
        };
        query.insert(key.to_string(), api_value);
        filter_query.push_str(&format!("{key}={}&", urlencode(v)));
    }
    if let Some(c) = q.get("cursor") {
        query.insert("cursor".into(), c.clone());
    }
    let listed = as_user(&s, &sess, &owner, &path, |st, p, at| {
        deliveries::list(st, p, at, Query(query))
    })
    .await;
    let (items, next_cursor, error) = match listed {
        Ok(Json(v)) => (value(v.items), value(v.next_cursor), None),
        Err(e) if e.status.is_client_error() => (json!([]), Value::Null, Some(e.message)),
        Err(e) => return Err(error_page(Some(&sess), e, &owner.base())),
    };
    let statuses = [
        "pending",
        "blocked",
        "held",
        "succeeded",
        "failed",
        "cancelled",
    ];
    let charts = crate::api::stats::of(&s, std::slice::from_ref(&i.id), 24)
        .await
        .map(|st| super::common::charts(&st))
        .map_err(|e| error_page(Some(&sess), e, &owner.base()))?;
    Ok(page(
        StatusCode::OK,
        "integration.html",
        Some(&sess),
        json!({
            "charts": charts,
            "i": value(&i), "base": owner.base(), "ibase": ib, "can_manage": can_manage(&sess, &owner),
            "has_secret": has_secret(&s, &i.id), "deliveries": items, "next_cursor": next_cursor,
            "statuses": statuses, "filter": q, "filter_query": filter_query, "error": error,
            "notice": q.get("notice"),
        }),
    ))
}

pub async fn edit_form(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
) -> Page {
    let (owner, i) = load(&s, &sess, &path).await?;
    let values = form::values_from_settings(&settings_of(&i));
    Ok(form_page(
        StatusCode::OK,
        &sess,
        &owner,
        values,
        Some((&i.id, has_secret(&s, &i.id))),
        None,
    ))
}

/// The stored settings of an integration as the API shows them, without its state: the JSON
/// the form maps to and from.
pub(crate) fn settings_of(i: &IntegrationOut) -> Value {
    value(&i.settings)
}

pub async fn edit(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    let f = Fields(f);
    check_csrf(&sess, &f)?;
    let (owner, i) = load(&s, &sess, &path).await?;
    let iid = i.id.clone();
    let values = form::values_from_fields(&f);
    let had_secret = has_secret(&s, &iid);
    let again = |e: String| {
        form_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &sess,
            &owner,
            values.clone(),
            Some((&iid, had_secret)),
            Some(e),
        )
    };
    let mut desired = form::settings_from_fields(&f, owner.partner()).map_err(again)?;
    // The form has no broker fields: a broker destination set through the API is kept.
    if let Some(destination) = settings_of(&i).get("destination") {
        desired.insert("destination".into(), destination.clone());
    }
    let mut patch = diff_patch(&settings_of(&i), &Value::Object(desired));
    if f.get("remove_secret").is_some() {
        patch["secret"] = Value::Null;
    } else if let Some(secret) = f.text("secret") {
        patch["secret"] = json!(secret);
    }
    let result = as_user(&s, &sess, &owner, &path, |st, p, at| {
        integrations::update(st, p, at, LazyBody::ready(patch))
    })
    .await;
    match result {
        Ok(_) => Ok(back_with_notice(&owner, &i, "Saved")),
        Err(e) if e.status.is_client_error() => Err(again(e.message)),
        Err(e) => Err(error_page(Some(&sess), e, &owner.base())),
    }
}

pub async fn confirm_delete(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
) -> Page {
    let (owner, i) = load(&s, &sess, &path).await?;
    Ok(page(
        StatusCode::OK,
        "confirm_delete.html",
        Some(&sess),
        json!({"i": value(&i), "ibase": ibase(&owner, &i)}),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    check_csrf(&sess, &Fields(f))?;
    let owner = OwnerPath::from(&path).map_err(fail(&sess, "/console"))?;
    as_user(&s, &sess, &owner, &path, integrations::remove)
        .await
        .map_err(fail(&sess, &owner.base()))?;
    Ok(redirect(&owner.base()))
}
