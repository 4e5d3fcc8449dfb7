//! A partner's reconciliation page: calls per organisation in a window.

// A page's error is the page to show instead (`Result<Response, Response>`, as axum handlers
// return it); boxing it would buy nothing on a console request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::common::*;
use crate::api::reconciliation;
use crate::console::session::Session;
use crate::console::view::{error_page, page};
use crate::error::ApiError;
use crate::state::AppState;

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
