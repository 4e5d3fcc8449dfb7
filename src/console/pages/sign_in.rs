//! Signing in and out, the home page, and single-use portal links.

// A page's error is the page to show instead (`Result<Response, Response>`, as axum handlers
// return it); boxing it would buy nothing on a console request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Form;
use serde_json::json;

use super::common::*;
use crate::console::form::Fields;
use crate::console::session::{self, Session};
use crate::console::view::{error_page, page, redirect};
use crate::model::tenancy::Role;
use crate::state::AppState;

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
    let ended = match (sess.portal, &sess.principal.tenant_id) {
        (true, Some(tid)) => s
            .store
            .end_portal_session(tid, &sess.sid, now)
            .await
            .map(drop),
        _ => s.store.end_session(&sess.sid, sess.expires_at, now).await,
    };
    if let Err(e) = ended {
        return Err(error_page(Some(&sess), e.into(), "/console"));
    }
    s.tokens.withdrawn();
    let secure = secure_cookies(&s);
    let mut r = redirect("/console/login");
    if let Ok(v) = session::set_cookie(None, secure).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    if sess.portal {
        if let Ok(v) = session::set_framed_cookie(None).parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
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

/// Opens a portal link when a person's browser navigates to it: a frame the platform's page
/// loads, or a page the person opened with a click. Anything else — a chat's link preview, a
/// mail scanner (some open links in a real browser, but no one clicks), a prefetch — gets a
/// page with a button instead, and the link stays unused. Browsers say what a request is for in
/// `Sec-Fetch-*` headers, which scripts cannot set; a client that sends none (an old browser)
/// still gets in with one click.
pub async fn portal(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    path: axum::extract::Path<String>,
) -> Response {
    if !opened_by_a_person(&headers) {
        return page(
            StatusCode::OK,
            "portal.html",
            None,
            json!({"action": format!("/console/portal/{}", urlencode(&path.0))}),
        );
    }
    redeem(State(s), path).await
}

fn opened_by_a_person(headers: &axum::http::HeaderMap) -> bool {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let prefetch = h("sec-purpose")
        .or(h("purpose"))
        .is_some_and(|p| p.contains("prefetch"));
    !prefetch
        && match h("sec-fetch-dest") {
            Some("iframe" | "frame") => true,
            Some("document") => h("sec-fetch-user") == Some("?1"),
            _ => false,
        }
}

/// Opens a portal link: once, before it expires, into a session of exactly its scope (the
/// button of [`portal`]'s page posts here).
pub async fn redeem(
    State(s): State<AppState>,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Response {
    let now = s.now_ms();
    let sid = hex::encode(crate::security::random_bytes::<16>());
    let expires_at = now + crate::model::portal::SESSION_MS;
    let hash = crate::auth::hash_token(&code);
    match s
        .store
        .redeem_portal_link(hash, &sid, expires_at, now)
        .await
    {
        Ok(Some(grant)) => {
            let cookie = session::seal_portal_cookie(&s.sealer, &grant.id, grant.expires_at);
            let home = format!("/console/t/{}", urlencode(&grant.tenant_id));
            // Where the tenant's console may be framed, the cookie must cross sites.
            let framed = !crate::console::frame::ancestors_for(&s, &home)
                .await
                .is_empty();
            let set = match framed {
                true => session::set_framed_cookie(Some(&cookie)),
                false => session::set_cookie(Some(&cookie), secure_cookies(&s)),
            };
            let mut r = redirect(&home);
            if let Ok(v) = set.parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(None) => page(
            StatusCode::GONE,
            "login.html",
            None,
            json!({"error": "this link has been used or has expired: links open once, within minutes; ask for a new one where you found it"}),
        ),
        Err(e) => error_page(None, e.into(), "/console/login"),
    }
}
