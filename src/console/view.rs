//! Rendering: the templates and assets compiled into the binary, and the headers every console
//! response carries.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde_json::Value;

use super::session::Session;
use crate::error::ApiError;

const TEMPLATES: [(&str, &str); 14] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("portal.html", include_str!("templates/portal.html")),
    ("home.html", include_str!("templates/home.html")),
    ("error.html", include_str!("templates/error.html")),
    (
        "integrations.html",
        include_str!("templates/integrations.html"),
    ),
    ("form.html", include_str!("templates/form.html")),
    (
        "integration.html",
        include_str!("templates/integration.html"),
    ),
    ("delivery.html", include_str!("templates/delivery.html")),
    (
        "confirm_delete.html",
        include_str!("templates/confirm_delete.html"),
    ),
    ("result.html", include_str!("templates/result.html")),
    (
        "reconciliation.html",
        include_str!("templates/reconciliation.html"),
    ),
    (
        "notifications.html",
        include_str!("templates/notifications.html"),
    ),
    ("live.html", include_str!("templates/live.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        // A broken template is a build mistake the unit tests catch; at run time it shows as
        // a 500 on that page only.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "console template does not parse");
        }
    }
    env
});

/// Strict CSP: only the console's own script and stylesheet, no inline script, no framing; the
/// script may call back to the console only (the template preview).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self'; connect-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: with it, browsers send `Origin: null` on form posts, and the
    // same-origin check could not tell the console's own forms from a sandboxed attacker's.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Renders `template` with `ctx` plus who is signed in and the CSRF token.
pub fn page(
    status: StatusCode,
    template: &str,
    session: Option<&Session>,
    mut ctx: Value,
) -> Response {
    if let (Value::Object(m), Some(s)) = (&mut ctx, session) {
        m.insert("who".into(), Value::String(s.who()));
        m.insert("csrf".into(), Value::String(s.csrf.clone()));
        if let Some(b) = &s.brand {
            m.insert("brand".into(), b.clone());
        }
    }
    let rendered = ENV
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)));
    match rendered {
        Ok(html) => harden((status, axum::response::Html(html)).into_response()),
        Err(e) => {
            tracing::error!(template, error = %e, "console page failed to render");
            harden(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the server log has the details",
                )
                    .into_response(),
            )
        }
    }
}

/// An API error as a console page: the same status and message the API would give.
pub fn error_page(session: Option<&Session>, e: ApiError, back: &str) -> Response {
    let heading = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::CONFLICT => "Conflict",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    page(
        e.status,
        "error.html",
        session,
        serde_json::json!({"heading": heading, "error": e.message, "back": back}),
    )
}

pub fn redirect(to: &str) -> Response {
    harden(axum::response::Redirect::to(to).into_response())
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut r = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name} does not parse");
        }
    }

    #[test]
    fn values_are_escaped() {
        let r = ENV
            .get_template("error.html")
            .and_then(|t| {
                t.render(minijinja::Value::from_serialize(
                    serde_json::json!({"heading": "<script>x</script>", "error": "a&b"}),
                ))
            })
            .unwrap_or_default();
        assert!(r.contains("&lt;script&gt;x&lt;&#x2f;script&gt;"), "{r}");
        assert!(r.contains("a&amp;b"));
    }
}
