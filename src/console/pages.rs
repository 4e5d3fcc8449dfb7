//! The console's pages. Each one calls the API handler that does the same thing and shows its
//! result (or its error, in the API's words) as HTML.

// A page's error is the page to show instead (`Result<Response, Response>`, as axum handlers
// return it); boxing it would buy nothing on a console request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::{json, Map, Value};

use super::form::{self, Fields, PRIVACY_TARGETS};
use super::session::{self, Session};
use super::view::{error_page, page, redirect};
use crate::api::integrations::Params;
use crate::api::{deliveries, integrations, reconciliation, AppState};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::model::event::EventKind;
use crate::model::tenancy::Role;
use crate::serve::body::{diff_patch, LazyBody};
use crate::store::{DeliveryFilter, DeliveryStatus};

type Page = Result<Response, Response>;

/// Settled deliveries the success rate on the list page is taken over.
const RATE_WINDOW: u32 = 100;

const PROFILES: [(&str, &str); 7] = [
    ("canonical", "canonical (callhook's own event)"),
    ("recording.v2", "recording.v2"),
    ("recording.v1", "recording.v1"),
    ("call-history", "call-history"),
    ("cdr", "cdr"),
    ("call-state", "call-state"),
    ("cdr-batch", "cdr-batch (batch mode)"),
];

/// Whose pages a path names: `t` (tenant) or `p` (partner) and the id.
struct OwnerPath {
    kind: &'static str,
    id: String,
}

impl OwnerPath {
    fn from(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        let kind = match params.get("kind").map(String::as_str) {
            Some("t") => "t",
            Some("p") => "p",
            _ => return Err(ApiError::not_found("page")),
        };
        Ok(OwnerPath {
            kind,
            id: params.get("oid").cloned().unwrap_or_default(),
        })
    }

    fn partner(&self) -> bool {
        self.kind == "p"
    }

    fn base(&self) -> String {
        format!("/console/{}/{}", self.kind, self.id)
    }

    /// The path parameters the API handlers expect.
    fn api_params(&self, extra: &HashMap<String, String>) -> Params {
        let mut p = Params::new();
        let key = if self.partner() { "pid" } else { "tid" };
        p.insert(key.into(), self.id.clone());
        for k in ["iid", "did"] {
            if let Some(v) = extra.get(k) {
                p.insert(k.into(), v.clone());
            }
        }
        p
    }

    fn label(&self) -> String {
        match self.partner() {
            true => format!("partner {}", self.id),
            false => format!("tenant {}", self.id),
        }
    }
}

/// Calls an API handler as the signed-in user, with the path parameters of `path`: the
/// console does what the API does, checked by the same code.
async fn as_user<T, F, Fut>(
    s: &AppState,
    sess: &Session,
    owner: &OwnerPath,
    path: &HashMap<String, String>,
    handler: F,
) -> Result<T, ApiError>
where
    F: FnOnce(State<AppState>, Principal, Path<Params>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    handler(
        State(s.clone()),
        sess.principal.clone(),
        Path(owner.api_params(path)),
    )
    .await
}

/// Back to the integration's page, with a line saying what happened.
fn back_with_notice(owner: &OwnerPath, i: &Value, notice: &str) -> Response {
    redirect(&format!("{}?notice={}", ibase(owner, i), urlencode(notice)))
}

/// An API answer as a template value.
fn value<T: serde::Serialize>(t: T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn fail<'a>(s: &'a Session, back: &str) -> impl FnOnce(ApiError) -> Response + 'a {
    let back = back.to_string();
    move |e| error_page(Some(s), e, &back)
}

/// Cookies are `Secure` when the console is served over https (per `CALLHOOK_PUBLIC_URL`).
fn secure_cookies(s: &AppState) -> bool {
    s.config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

fn check_csrf(s: &Session, f: &Fields) -> Result<(), Response> {
    if s.csrf_ok(f.get("csrf")) {
        return Ok(());
    }
    Err(error_page(
        Some(s),
        ApiError::forbidden(
            "the form has expired or did not come from this console; reload the page and try again",
        ),
        "/console",
    ))
}

fn can_manage(s: &Session, owner: &OwnerPath) -> bool {
    match owner.partner() {
        true => matches!(s.principal.role, Role::Operator | Role::PartnerAdmin),
        false => s.principal.manages_tenant(),
    }
}

/// `2026-11-22T10:00` (a datetime-local input, read as UTC) as RFC 3339.
fn utc(local: &str) -> Option<String> {
    let v = local.trim();
    match v.len() {
        0 => None,
        16 => Some(format!("{v}:00Z")),
        19 => Some(format!("{v}Z")),
        _ => Some(v.to_string()),
    }
}

// --- signing in and out

pub async fn login_form() -> Response {
    page(StatusCode::OK, "login.html", None, json!({}))
}

pub async fn login(State(s): State<AppState>, Form(f): Form<Vec<(String, String)>>) -> Response {
    let f = Fields(f);
    let token = f.text("token").unwrap_or_default();
    let refused = |message: &str| {
        page(
            StatusCode::UNAUTHORIZED,
            "login.html",
            None,
            json!({"error": message}),
        )
    };
    match s.principal(token).await {
        Ok(p) if p.role == Role::Ingest => {
            refused("ingest tokens only send events; sign in with an admin or viewer token")
        }
        Ok(_) => {
            let cookie = session::seal_cookie(&s.sealer, token, s.now_ms());
            let secure = secure_cookies(&s);
            let mut r = redirect("/console");
            if let Ok(v) = session::set_cookie(Some(&cookie), secure).parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            refused("that token is not valid; check it was copied whole (it starts with chk_)")
        }
        Err(e) => error_page(None, e, "/console/login"),
    }
}

pub async fn logout(
    State(s): State<AppState>,
    sess: Session,
    Form(f): Form<Vec<(String, String)>>,
) -> Page {
    check_csrf(&sess, &Fields(f))?;
    // Ended here for every copy of the cookie, not only in this browser.
    let now = s.now_ms();
    if let Err(e) = s.store.end_session(&sess.sid, sess.expires_at, now).await {
        return Err(error_page(Some(&sess), e.into(), "/console"));
    }
    let secure = secure_cookies(&s);
    let mut r = redirect("/console/login");
    if let Ok(v) = session::set_cookie(None, secure).parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// Tenant and partner tokens go straight to their integrations; operators choose.
pub async fn home(sess: Session) -> Response {
    let p = &sess.principal;
    match (p.role, &p.tenant_id, &p.partner_id) {
        (Role::Operator, _, _) => page(StatusCode::OK, "home.html", Some(&sess), json!({})),
        (_, Some(t), _) => redirect(&format!("/console/t/{}", urlencode(t))),
        (_, None, Some(pa)) => redirect(&format!("/console/p/{}", urlencode(pa))),
        _ => page(StatusCode::OK, "home.html", Some(&sess), json!({})),
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn open(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    let kind = match q.get("kind").map(String::as_str) {
        Some("p") => "p",
        _ => "t",
    };
    match q.get("id").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Some(id) => redirect(&format!("/console/{kind}/{}", urlencode(id))),
        None => page(
            StatusCode::BAD_REQUEST,
            "home.html",
            Some(&sess),
            json!({"error": "enter the id of a tenant or partner"}),
        ),
    }
}

// --- integrations

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
    for i in value(listed)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let iid = i["id"].as_str().unwrap_or_default().to_string();
        let recent = s
            .store
            .list_deliveries(
                &iid,
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
        let mut row = i.clone();
        row["last"] = json!(recent.first());
        row["rate"] = json!(rate);
        items.push(row);
    }
    Ok(page(
        StatusCode::OK,
        "integrations.html",
        Some(&sess),
        json!({
            "owner_label": owner.label(), "base": owner.base(), "items": items,
            "can_manage": can_manage(&sess, &owner), "is_partner": owner.partner(),
            "window": RATE_WINDOW,
        }),
    ))
}

fn form_page(
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
                &["keep", "remove", "mask"]
            } else {
                &["keep", "remove"]
            };
            json!({"name": t.as_str(), "is_number": t.is_number(), "actions": actions})
        })
        .collect();
    let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
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
        defaults.insert("profile".into(), json!("cdr-batch"));
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
        Ok((_, Json(created))) => Ok(created_page(&sess, &owner, &value(created))),
        Err(e) if e.status.is_client_error() => Err(again(e.message)),
        Err(e) => Err(error_page(Some(&sess), e, &owner.base())),
    }
}

fn created_page(sess: &Session, owner: &OwnerPath, created: &Value) -> Response {
    let iid = created["id"].as_str().unwrap_or_default();
    page(
        StatusCode::CREATED,
        "result.html",
        Some(sess),
        json!({
            "heading": format!("Created {}", created["name"].as_str().unwrap_or_default()),
            "notice": "The integration is active. Verify signatures with this signing secret.",
            "secret": created["signing_secret"], "secret_label": "Signing secret",
            "next": format!("{}/integrations/{iid}", owner.base()),
        }),
    )
}

/// The integration as the API shows it, and the owner; 404 page when not visible.
async fn load(
    s: &AppState,
    sess: &Session,
    path: &HashMap<String, String>,
) -> Result<(OwnerPath, Value), Response> {
    let owner = OwnerPath::from(path).map_err(fail(sess, "/console"))?;
    let Json(i) = as_user(s, sess, &owner, path, integrations::read)
        .await
        .map_err(fail(sess, &owner.base()))?;
    Ok((owner, value(i)))
}

fn ibase(owner: &OwnerPath, i: &Value) -> String {
    format!(
        "{}/integrations/{}",
        owner.base(),
        i["id"].as_str().unwrap_or_default()
    )
}

fn has_secret(s: &AppState, iid: &str) -> bool {
    s.cache.get(iid).is_some_and(|i| i.secret.is_some())
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
    let iid = i["id"].as_str().unwrap_or_default().to_string();
    Ok(page(
        StatusCode::OK,
        "integration.html",
        Some(&sess),
        json!({
            "i": i, "base": owner.base(), "ibase": ib, "can_manage": can_manage(&sess, &owner),
            "has_secret": has_secret(&s, &iid), "deliveries": items, "next_cursor": next_cursor,
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
    let iid = i["id"].as_str().unwrap_or_default();
    let values = form::values_from_settings(&i);
    Ok(form_page(
        StatusCode::OK,
        &sess,
        &owner,
        values,
        Some((iid, has_secret(&s, iid))),
        None,
    ))
}

/// The stored settings of an integration as the API shows them, without its state.
fn settings_of(i: &Value) -> Value {
    let mut v = i.clone();
    if let Value::Object(m) = &mut v {
        for k in [
            "id",
            "tenant_id",
            "partner_id",
            "status",
            "disabled_reason",
            "secret_hint",
            "failing_since",
            "created_at",
            "updated_at",
        ] {
            m.shift_remove(k);
        }
    }
    v
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
    let iid = i["id"].as_str().unwrap_or_default().to_string();
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
    let desired = form::settings_from_fields(&f, owner.partner()).map_err(again)?;
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
        json!({"i": i, "ibase": ibase(&owner, &i)}),
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
    let r = value(r);
    let success = r["success"].as_bool().unwrap_or(false);
    let show = |v: &Value| match v {
        Value::Null => "—".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let facts = vec![
        ("Event type", show(&r["event_type"])),
        ("Response", show(&r["status_code"])),
        ("Time", format!("{} ms", show(&r["duration_ms"]))),
        ("Error class", show(&r["error_class"])),
        ("Error", show(&r["error"])),
        ("Response excerpt", show(&r["response_excerpt"])),
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
            "secret": value(r)["signing_secret"], "secret_label": "New signing secret",
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

// --- deliveries

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
    let d = value(d);
    let did = d["id"].as_str().unwrap_or_default().to_string();
    let iid = i["id"].as_str().unwrap_or_default().to_string();
    let job = s
        .store
        .delivery_job(&did)
        .await
        .map_err(|e| error_page(Some(&sess), e.into(), &ib))?;
    let integration = s.cache.get(&iid);
    let mut attempts = d["attempts_log"].as_array().cloned().unwrap_or_default();
    if let (Some(job), Some(integration)) = (job, integration) {
        for a in &mut attempts {
            let n = a["attempt"].as_u64().unwrap_or(1) as u32;
            let at = a["started_at"]
                .as_str()
                .and_then(crate::time::parse_rfc3339_ms)
                .unwrap_or_else(crate::time::now_ms);
            let out =
                crate::deliver::attempt::rebuild(&s.dispatcher.sender(), &integration, &job, n, at);
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
                        let hint = crate::model::integration::header_hint(&v);
                        (k, hint)
                    }
                    _ => (k, v),
                })
                .chain(
                    out.content_type
                        .map(|ct| ("content-type".into(), ct.into())),
                )
                .collect();
            a["request"] = json!({
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
            "i": i, "ibase": ib, "d": d, "attempts": attempts,
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

// --- reconciliation

pub async fn reconciliation(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let owner = OwnerPath::from(&path).map_err(fail(&sess, "/console"))?;
    if !owner.partner() {
        return Err(error_page(
            Some(&sess),
            ApiError::not_found("page"),
            &owner.base(),
        ));
    }
    let hour = q.get("hour").map(|h| h.trim()).filter(|h| !h.is_empty());
    let mut ctx = json!({"base": owner.base(), "hour": hour, "counts": null});
    if let Some(hour) = hour {
        let start = utc(hour)
            .and_then(|t| crate::time::parse_rfc3339_ms(&t))
            .map(|ms| ms - ms.rem_euclid(3_600_000));
        match start {
            None => ctx["error"] = json!("choose the hour as a date and time"),
            Some(start) => {
                let fmt = |ms: i64| crate::time::format_ms(ms);
                let mut query = HashMap::new();
                query.insert("startTime".to_string(), fmt(start));
                query.insert("endTime".to_string(), fmt(start + 3_600_000));
                let counted = reconciliation::counts(
                    State(s.clone()),
                    sess.principal.clone(),
                    Path(owner.id.clone()),
                    Query(query),
                )
                .await;
                match counted {
                    Ok((_, Json(v))) => {
                        ctx["counts"] = value(v.cdr_counts);
                        ctx["window"] =
                            json!(format!("{} – {}", fmt(start), fmt(start + 3_600_000)));
                    }
                    Err(e) if e.status.is_client_error() => ctx["error"] = json!(e.message),
                    Err(e) => return Err(error_page(Some(&sess), e, &owner.base())),
                }
            }
        }
    }
    Ok(page(StatusCode::OK, "reconciliation.html", Some(&sess), ctx).into_response())
}
