//! The web console: server-rendered pages over the same handlers as the JSON API, so every
//! rule (validation, the challenge, SSRF checks, who may do what) is enforced in one place.
//!
//! Templates (minijinja) and the stylesheet/script are compiled into the binary. Sign-in takes
//! an API token and keeps it sealed in an HttpOnly, SameSite=Strict cookie ([`session`]); every
//! form carries a CSRF token derived from that cookie, and a POST whose `Origin` is another
//! site is refused.

mod chart;
pub mod form;
pub mod frame;
mod pages;
pub mod session;
mod view;

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    use crate::serve::body::{limited, FORM_BODY_BYTES, INTEGRATION_FORM_BODY_BYTES};
    let owner = "/console/{kind}/{oid}";
    let one = "/console/{kind}/{oid}/integrations/{iid}";
    // An integration's settings may carry a template and a certificate chain; every other
    // form is small.
    let settings = Router::new()
        .route(
            &format!("{owner}/integrations/new"),
            get(pages::integrations::new_form).post(pages::integrations::create),
        )
        .route(
            &format!("{one}/edit"),
            get(pages::integrations::edit_form).post(pages::integrations::edit),
        )
        .route(
            "/console/template-preview",
            post(pages::preview::template_preview),
        );
    let forms = Router::new()
        .route("/console", get(pages::sign_in::home))
        .route("/console/", get(pages::sign_in::home))
        .route("/console/open", get(pages::sign_in::open))
        .route(
            "/console/login",
            get(pages::sign_in::login_form).post(pages::sign_in::login),
        )
        .route("/console/logout", post(pages::sign_in::logout))
        .route(
            "/console/portal/{code}",
            get(pages::sign_in::portal).post(pages::sign_in::redeem),
        )
        .route("/console/assets/{file}", get(view::asset))
        .route("/console/brand/{pid}/logo", get(frame::logo))
        .route(owner, get(pages::integrations::integrations))
        .route(
            &format!("{owner}/reconciliation"),
            get(pages::reconciliation::reconciliation),
        )
        .route(
            &format!("{owner}/notifications"),
            get(pages::notifications::notifications),
        )
        .route(one, get(pages::integrations::integration))
        .route(
            &format!("{one}/delete"),
            get(pages::integrations::confirm_delete).post(pages::integrations::delete),
        )
        .route(&format!("{one}/live"), get(pages::live::live))
        .route(&format!("{one}/live/events"), get(pages::live::events))
        .route(&format!("{one}/test"), post(pages::actions::test_send))
        .route(&format!("{one}/rotate"), post(pages::actions::rotate))
        .route(&format!("{one}/disable"), post(pages::actions::disable))
        .route(&format!("{one}/enable"), post(pages::actions::enable))
        .route(
            &format!("{one}/redeliver"),
            post(pages::actions::redeliver_range),
        )
        .route(
            &format!("{one}/deliveries/{{did}}"),
            get(pages::actions::delivery),
        )
        .route(
            &format!("{one}/deliveries/{{did}}/redeliver"),
            post(pages::actions::redeliver_one),
        );
    Router::new()
        .merge(limited(forms, FORM_BODY_BYTES))
        .merge(limited(settings, INTEGRATION_FORM_BODY_BYTES))
        .layer(middleware::from_fn(same_origin_posts))
        .layer(middleware::from_fn_with_state(state, frame::policy))
}

/// Defence in depth next to SameSite cookies and CSRF tokens: a form posted from another
/// origin is refused before any handler runs.
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok());
        if let Some(origin) = origin {
            let origin_host = origin.split_once("://").map(|(_, h)| h);
            if origin_host.is_none() || origin_host != host {
                return (
                    StatusCode::FORBIDDEN,
                    "cross-site form submissions are refused; use the console's own pages",
                )
                    .into_response();
            }
        }
    }
    next.run(req).await
}
