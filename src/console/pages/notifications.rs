//! A tenant's notifications: what callhook noticed about its integrations (failing, disabled,
//! recovered, deliveries that used up their retries), newest first.

// A page's error is the page to show instead (`Result<Response, Response>`, as axum handlers
// return it); boxing it would buy nothing on a console request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::common::*;
use crate::api::notifications;
use crate::console::session::Session;
use crate::console::view::{error_page, page};
use crate::error::ApiError;
use crate::state::AppState;

/// Notifications on one page.
const PAGE: u32 = 50;

pub async fn notifications(
    State(s): State<AppState>,
    sess: Session,
    Path(path): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let owner = OwnerPath::from(&path).map_err(fail(&sess, "/console"))?;
    if owner.partner() {
        return Err(error_page(
            Some(&sess),
            ApiError::not_found("page"),
            &owner.base(),
        ));
    }
    let cursor = q.get("cursor").map(String::as_str);
    let found = notifications::page(&s, &sess.principal, &owner.id, cursor, PAGE)
        .await
        .map_err(|e| error_page(Some(&sess), e, &owner.base()))?;
    let ctx = json!({
        "base": owner.base(),
        "items": value(found.items),
        "next_cursor": found.next_cursor,
    });
    Ok(page(StatusCode::OK, "notifications.html", Some(&sess), ctx).into_response())
}
