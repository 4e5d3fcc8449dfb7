//! Console sessions: the API token sealed into an HttpOnly, SameSite=Strict cookie, and a
//! CSRF token derived from that cookie for every form.
//!
//! The cookie holds the token itself (sealed, so it cannot be read or forged) and a random
//! session id, not a copy of its rights: every request resolves the token again, so a revoked
//! token or a deleted tenant ends the session at once. Signing out records the session id as
//! ended in the store, so a copy of the cookie stops working too, on every node. Nothing else
//! is stored server-side, so sessions survive restarts.
//!
//! A session a portal link opened holds no token: its cookie names a stored grant (tenant, role,
//! scope), read on every request, so the platform can end it from the API.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::model::tenancy::Role;
use crate::security::seal::Sealer;
use crate::state::AppState;

pub const COOKIE: &str = "callhook_session";
/// How long a sign-in lasts.
pub const SESSION_MS: i64 = 8 * 3600 * 1000;

#[derive(Serialize, Deserialize)]
pub struct Sealed {
    pub token: String,
    pub expires_at: i64,
    /// Random; recorded as ended when the user signs out. Cookies made before sessions had
    /// ids have none and are refused.
    #[serde(default)]
    pub sid: String,
    /// A session a portal link opened: no token; `sid` names its stored grant.
    #[serde(default)]
    pub portal: bool,
}

/// The cookie value for `token`, valid until `now + SESSION_MS`.
pub fn seal_cookie(sealer: &Sealer, token: &str, now: i64) -> String {
    let body = serde_json::to_vec(&Sealed {
        token: token.to_string(),
        expires_at: now + SESSION_MS,
        sid: hex::encode(crate::security::random_bytes::<16>()),
        portal: false,
    })
    .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(sealer.seal(&body))
}

/// The cookie value of portal session `sid`, valid until `expires_at` (the session's own end).
pub fn seal_portal_cookie(sealer: &Sealer, sid: &str, expires_at: i64) -> String {
    let body = serde_json::to_vec(&Sealed {
        token: String::new(),
        expires_at,
        sid: sid.to_string(),
        portal: true,
    })
    .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(sealer.seal(&body))
}

/// The session inside a cookie value, if it was sealed by this key and has not expired.
pub fn open_session(sealer: &Sealer, value: &str, now: i64) -> Option<Sealed> {
    let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
    let plain = sealer.open(&sealed).ok()?;
    let s: Sealed = serde_json::from_slice(&plain).ok()?;
    (s.expires_at > now && !s.sid.is_empty()).then_some(s)
}

/// The token inside a cookie value, if it was sealed by this key and has not expired.
pub fn open_cookie(sealer: &Sealer, value: &str, now: i64) -> Option<String> {
    open_session(sealer, value, now).map(|s| s.token)
}

/// The CSRF token of a session: an HMAC of its cookie, so it needs no storage and changes
/// with every sign-in.
pub fn csrf_for(sealer: &Sealer, cookie: &str) -> String {
    let key = sealer.derive_key("console-csrf");
    match <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key) {
        Ok(mut mac) => {
            mac.update(cookie.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` for a session a cross-site frame carries (or, with `None`, one that ends it):
/// the platform's page embeds the console. Browsers keep it only over https (or localhost),
/// partitioned by the embedding site.
pub fn set_framed_cookie(value: Option<&str>) -> String {
    let (v, age) = match value {
        Some(v) => (v, SESSION_MS / 1000),
        None => ("", 0),
    };
    format!(
        "{COOKIE}={v}; Path=/console; HttpOnly; SameSite=None; Secure; Partitioned; Max-Age={age}"
    )
}

/// `Set-Cookie` for a new session (or, with `None`, one that ends it).
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_MS / 1000
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// A signed-in console user.
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    /// The session's id and when its cookie expires (for signing out).
    pub sid: String,
    pub expires_at: i64,
    /// Opened by a portal link (signing out ends its stored grant).
    pub portal: bool,
    /// The API token it was signed in with (none for a portal session): a live stream looks
    /// again, while it runs, whether it still stands.
    pub token: Option<String>,
    /// The look of the partner whose tenant (or who) is signed in, if it set one.
    pub brand: Option<serde_json::Value>,
}

impl Session {
    /// Whether a submitted form carries this session's CSRF token.
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted
            .is_some_and(|s| crate::security::constant_time_eq(s.as_bytes(), self.csrf.as_bytes()))
    }

    /// A label for the page header: who is signed in.
    pub fn who(&self) -> String {
        let p = &self.principal;
        match (p.role, &p.tenant_id, &p.partner_id) {
            (Role::Operator, _, _) => "operator".into(),
            (_, Some(t), _) => format!("{} of tenant {t}", p.role.as_str()),
            (_, None, Some(pa)) => format!("{} of partner {pa}", p.role.as_str()),
            _ => p.role.as_str().into(),
        }
    }
}

/// The partner's brand for what `p` sees: its own partner's, or its tenant's partner's.
async fn brand_of(state: &AppState, p: &Principal) -> Option<serde_json::Value> {
    let pid = match (&p.partner_id, &p.tenant_id) {
        (Some(pid), _) => pid.clone(),
        (None, Some(tid)) => state.tenant_partner(tid).await.ok().flatten().flatten()?,
        _ => return None,
    };
    let partner = state.store.get_partner(&pid).await.ok().flatten()?;
    let b = partner.brand;
    if b == Default::default() {
        return None;
    }
    Some(serde_json::json!({
        "name": b.name,
        "accent": b.accent,
        "logo": b.logo_type.as_ref().map(|_| crate::api::partners::logo_path(&pid)),
    }))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/console/login").into_response();
        let cookie = cookie_value(&parts.headers, COOKIE).ok_or_else(to_login)?;
        let now = state.now_ms();
        let sealed = open_session(&state.sealer, &cookie, now).ok_or_else(to_login)?;
        let token = (!sealed.portal).then(|| sealed.token.clone());
        let principal = if sealed.portal {
            // The grant is read on every request: ended from the API, or its tenant deleted,
            // the next page is the sign-in page.
            let grant = match state.store.portal_session(&sealed.sid).await {
                Ok(Some(g)) if g.active(now) => g,
                _ => return Err(to_login()),
            };
            Principal::of_portal(grant)
        } else {
            if !matches!(state.store.session_ended(&sealed.sid).await, Ok(false)) {
                return Err(to_login());
            }
            state
                .principal(&sealed.token)
                .await
                .map_err(|_| to_login())?
        };
        if principal.role == Role::Ingest {
            return Err(to_login());
        }
        let brand = brand_of(state, &principal).await;
        Ok(Session {
            brand,
            csrf: csrf_for(&state.sealer, &cookie),
            principal,
            sid: sealed.sid,
            expires_at: sealed.expires_at,
            portal: sealed.portal,
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_open_only_with_their_key_and_before_expiry() {
        let sealer = Sealer::from_key([7; 32]);
        let value = seal_cookie(&sealer, "chk_token", 1_000);
        assert_eq!(
            open_cookie(&sealer, &value, 2_000).as_deref(),
            Some("chk_token")
        );
        assert_eq!(open_cookie(&sealer, &value, 1_000 + SESSION_MS), None);
        assert_eq!(open_cookie(&Sealer::from_key([8; 32]), &value, 2_000), None);
        let mut tampered = value.clone().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert_eq!(open_cookie(&sealer, &tampered, 2_000), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        let sealer = Sealer::from_key([7; 32]);
        let a = csrf_for(&sealer, "cookie-a");
        assert_eq!(a, csrf_for(&sealer, "cookie-a"));
        assert_ne!(a, csrf_for(&sealer, "cookie-b"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn cookie_header_is_parsed_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "other=1; callhook_session=abc; x=2"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie_value(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&h, "missing"), None);
    }
}
