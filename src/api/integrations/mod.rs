//! Integrations of a tenant or a partner: create, list, read, change, delete ([`crud`]), and
//! the actions on one ([`actions`]: verify, test, disable, enable, rotate the signing secret).

mod actions;
mod common;
mod crud;
mod preview;
mod stream;

use axum::routing::{get, post};
use axum::Router;

pub(crate) use actions::*;
pub(crate) use common::*;
pub(crate) use crud::*;
pub(crate) use preview::*;
pub(crate) use stream::*;

use crate::api::AppState;

pub fn router() -> Router<AppState> {
    routes("/v1/tenants/{tid}/integrations")
        .route("/v1/tenants/{tid}/integrations/{iid}/stream", get(stream))
        .merge(routes("/v1/partners/{pid}/integrations"))
        .route("/v1/templates/preview", post(preview))
}

fn routes(base: &str) -> Router<AppState> {
    Router::new()
        .route(base, post(create).get(list))
        .route(
            &format!("{base}/{{iid}}"),
            get(read).patch(update).delete(remove),
        )
        .route(&format!("{base}/{{iid}}/verify"), post(verify))
        .route(&format!("{base}/{{iid}}/test"), post(test))
        .route(&format!("{base}/{{iid}}/disable"), post(disable))
        .route(&format!("{base}/{{iid}}/enable"), post(enable))
        .route(
            &format!("{base}/{{iid}}/rotate-signing-secret"),
            post(rotate),
        )
}
