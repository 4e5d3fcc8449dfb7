//! Live calls: a stream integration's events as they happen, in a table the page's script
//! keeps up to date from the stream itself (Server-Sent Events through the console's session,
//! resumed by the browser with `Last-Event-ID` when the connection drops).

use std::collections::HashMap;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::common::*;
use crate::api::integrations::{self, StreamQuery};
use crate::console::session::Session;
use crate::console::view::{error_page, page};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn live(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
) -> Page {
    let (owner, i) = load(&s, &sess, &path).await?;
    if !i.settings.destination.is_stream() {
        let e = ApiError::conflict(
            "not_a_stream",
            "live calls are shown for stream integrations; create one with destination stream",
        );
        return Err(error_page(Some(&sess), e, &ibase(&owner, &i)));
    }
    let base = ibase(&owner, &i);
    let ctx = json!({
        "base": owner.base(),
        "i": value(&i),
        "back": base,
        "events": format!("{base}/live/events"),
    });
    Ok(page(StatusCode::OK, "live.html", Some(&sess), ctx).into_response())
}

/// The stream, as the API serves it, for the signed-in user.
pub async fn events(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    q: Query<StreamQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let owner = match OwnerPath::from(&path) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let params = owner.api_params(&path);
    let credential = integrations::Credential::Session {
        sid: sess.sid.clone(),
        portal: sess.portal,
        token: sess.token.clone(),
        expires_at: sess.expires_at,
    };
    match integrations::open(
        s,
        sess.principal.clone(),
        credential,
        params,
        q.0,
        &headers,
        ws,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
