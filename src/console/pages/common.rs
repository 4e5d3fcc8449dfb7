//! What the console's pages share: who the page acts for (`OwnerPath`), calling an API handler
//! as the signed-in user, CSRF checks, notices and error pages.

// A page's error is the page to show instead (`Result<Response, Response>`, as axum handlers
// return it); boxing it would buy nothing on a console request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde_json::Value;

use crate::api::integrations;
use crate::api::integrations::{IntegrationOut, Params};
use crate::auth::Principal;
use crate::console::form::Fields;
use crate::console::session::Session;
use crate::console::view::{error_page, redirect};
use crate::error::ApiError;
use crate::model::tenancy::Role;
use crate::state::AppState;

pub(crate) type Page = Result<Response, Response>;

/// Settled deliveries the success rate on the list page is taken over.
pub(crate) const RATE_WINDOW: u32 = 100;

pub(crate) const PROFILES: [(&str, &str); 9] = [
    ("canonical", "canonical (callhook's own event)"),
    ("recording.v2", "recording.v2"),
    ("recording.v1", "recording.v1"),
    ("call-history", "call-history"),
    ("cdr", "cdr"),
    ("call-state", "call-state"),
    ("webex-cdr", "webex-cdr (Webex Calling records)"),
    ("cdr-batch", "cdr-batch (batch mode)"),
    ("template", "template (your own JSON shape)"),
];

/// Whose pages a path names: `t` (tenant) or `p` (partner) and the id.
pub(crate) struct OwnerPath {
    pub(crate) kind: &'static str,
    pub(crate) id: String,
}

impl OwnerPath {
    pub(crate) fn from(params: &HashMap<String, String>) -> Result<Self, ApiError> {
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

    pub(crate) fn partner(&self) -> bool {
        self.kind == "p"
    }

    pub(crate) fn base(&self) -> String {
        format!("/console/{}/{}", self.kind, self.id)
    }

    /// The path parameters the API handlers expect.
    pub(crate) fn api_params(&self, extra: &HashMap<String, String>) -> Params {
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

    pub(crate) fn label(&self) -> String {
        match self.partner() {
            true => format!("partner {}", self.id),
            false => format!("tenant {}", self.id),
        }
    }
}

/// Calls an API handler as the signed-in user, with the path parameters of `path`: the
/// console does what the API does, checked by the same code.
pub(crate) async fn as_user<T, F, Fut>(
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
pub(crate) fn back_with_notice(owner: &OwnerPath, i: &IntegrationOut, notice: &str) -> Response {
    redirect(&format!("{}?notice={}", ibase(owner, i), urlencode(notice)))
}

/// An API answer as a template value.
pub(crate) fn value<T: serde::Serialize>(t: T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub(crate) fn fail<'a>(s: &'a Session, back: &str) -> impl FnOnce(ApiError) -> Response + 'a {
    let back = back.to_string();
    move |e| error_page(Some(s), e, &back)
}

/// Cookies are `Secure` when the console is served over https (per `CALLHOOK_PUBLIC_URL`).
pub(crate) fn secure_cookies(s: &AppState) -> bool {
    s.config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

pub(crate) fn check_csrf(s: &Session, f: &Fields) -> Result<(), Response> {
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

pub(crate) fn can_manage(s: &Session, owner: &OwnerPath) -> bool {
    match owner.partner() {
        true => matches!(s.principal.role, Role::Operator | Role::PartnerAdmin),
        false => s.principal.manages_tenant(),
    }
}

/// `2026-11-22T10:00` (a datetime-local input, read as UTC) as RFC 3339.
pub(crate) fn utc(local: &str) -> Option<String> {
    let v = local.trim();
    match v.len() {
        0 => None,
        16 => Some(format!("{v}:00Z")),
        19 => Some(format!("{v}Z")),
        _ => Some(v.to_string()),
    }
}

// --- signing in and out

pub(crate) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// --- integrations

/// The integration as the API shows it, and the owner; 404 page when not visible.
pub(crate) async fn load(
    s: &AppState,
    sess: &Session,
    path: &HashMap<String, String>,
) -> Result<(OwnerPath, IntegrationOut), Response> {
    let owner = OwnerPath::from(path).map_err(fail(sess, "/console"))?;
    let Json(i) = as_user(s, sess, &owner, path, integrations::read)
        .await
        .map_err(fail(sess, &owner.base()))?;
    Ok((owner, i))
}

pub(crate) fn ibase(owner: &OwnerPath, i: &IntegrationOut) -> String {
    format!("{}/integrations/{}", owner.base(), i.id)
}

pub(crate) fn has_secret(s: &AppState, iid: &str) -> bool {
    s.cache.get(iid).is_some_and(|i| i.secret.is_some())
}

// --- deliveries

// --- reconciliation

/// The two charts of the last day, as inline SVG for a template (`{{ charts.deliveries|safe }}`).
pub(crate) fn charts(stats: &crate::api::stats::Stats) -> Value {
    use crate::console::chart;
    let since = crate::time::parse_rfc3339_ms(&stats.since).unwrap_or(0);
    let until = crate::time::parse_rfc3339_ms(&stats.until).unwrap_or(since);
    let span = ((until - since) / 60_000 + 1).max(1);
    serde_json::json!({
        "deliveries": chart::deliveries(stats, since, span),
        "latency": chart::latency(stats, since, span),
    })
}
