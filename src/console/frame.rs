//! How the console appears inside a platform: the partner's logo, and who may show the
//! console in a frame: nobody by default (`frame-ancestors 'none'`,
//! `X-Frame-Options: DENY`); the origins in `CALLHOOK_FRAME_ANCESTORS` for every tenant; and a
//! partner's own `frame_ancestors` for its tenants' pages — the platform's admin UI embedding
//! its customers' console. Sessions opened by portal links for such tenants get a cookie a
//! cross-site frame can carry (`SameSite=None; Secure; Partitioned`); CSRF protection is the
//! same (a token per session, and same-origin form posts: the frame's forms post from the
//! console's own origin).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// The origins that may frame the page at `path`: the node's, and the partner's of the tenant
/// or partner the path names.
pub async fn ancestors_for(s: &AppState, path: &str) -> Vec<String> {
    let mut out = s.config.frame_ancestors().unwrap_or_default();
    let mut parts = path.trim_start_matches('/').split('/');
    let partner = match (parts.next(), parts.next(), parts.next()) {
        (Some("console"), Some("t"), Some(tid)) => {
            s.tenant_partner(tid).await.ok().flatten().flatten()
        }
        (Some("console"), Some("p"), Some(pid)) => Some(pid.to_string()),
        _ => None,
    };
    if let Some(pid) = partner {
        if let Ok(Some(p)) = s.store.get_partner(&pid).await {
            for origin in p.frame_ancestors {
                if !out.contains(&origin) {
                    out.push(origin);
                }
            }
        }
    }
    out
}

/// Opens the page's `frame-ancestors` to the origins allowed to frame it (if any).
pub async fn policy(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut r = next.run(req).await;
    // Only a page the caller may see names its partner's origins: an error page (another
    // tenant's, one that does not exist) keeps `'none'` and tells nothing.
    if !r.status().is_success() {
        return r;
    }
    let Some(csp) = r
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        return r;
    };
    let allowed = ancestors_for(&s, &path).await;
    if allowed.is_empty() {
        return r;
    }
    let opened = csp.replace(
        "frame-ancestors 'none'",
        &format!("frame-ancestors {}", allowed.join(" ")),
    );
    if let Ok(v) = HeaderValue::from_str(&opened) {
        let h = r.headers_mut();
        h.insert(header::CONTENT_SECURITY_POLICY, v);
        // Superseded by frame-ancestors in every current browser; DENY would win in old ones.
        h.remove(header::X_FRAME_OPTIONS);
    }
    r
}

/// A partner's logo, for the console's header. Not secret (it is the platform's own mark);
/// served as the type its bytes were checked to be, never sniffed.
pub async fn logo(
    State(s): State<AppState>,
    axum::extract::Path(pid): axum::extract::Path<String>,
) -> Response {
    use axum::response::IntoResponse;
    let kind = match s.store.get_partner(&pid).await {
        Ok(Some(p)) => p.brand.logo_type,
        _ => None,
    };
    let bytes = match kind {
        Some(_) => s.store.partner_logo(&pid).await.ok().flatten(),
        None => None,
    };
    match (kind, bytes) {
        (Some(kind), Some(bytes)) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'".to_string(),
                ),
                (header::CACHE_CONTROL, "public, max-age=300".to_string()),
            ],
            bytes,
        )
            .into_response(),
        _ => (axum::http::StatusCode::NOT_FOUND, "no logo").into_response(),
    }
}
