//! The HTTP API: one file per resource, each with its request/response shapes and handlers.
//! Errors become responses only in [`crate::error`].

pub(crate) mod catalogue;
pub(crate) mod deliveries;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod integrations;
pub(crate) mod notifications;
pub mod openapi;
pub(crate) mod partners;
pub(crate) mod portal;
pub(crate) mod reconciliation;
pub(crate) mod recordings;
pub(crate) mod sources;
pub(crate) mod stats;
pub(crate) mod tenants;
pub(crate) mod tokens;

use axum::Router;

pub use crate::serve::body::LazyBody;
pub use crate::state::{AppInner, AppState, Unopened};

use crate::error::{ApiError, ApiResult};

/// The API's routes, each group with its body limit (the console's are merged beside them in
/// [`crate::app`]).
pub fn router(config: &crate::config::Config) -> Router<AppState> {
    use crate::serve::body::{limited, SETTINGS_BODY_BYTES};
    let events_limit = config.max_body_bytes;
    let recording_limit = usize::try_from(config.max_recording_bytes).unwrap_or(usize::MAX);
    let settings = Router::new()
        .merge(health::router())
        .merge(partners::router())
        .merge(tenants::router())
        .merge(tokens::router())
        .merge(portal::router())
        .merge(notifications::router())
        .merge(stats::router())
        .merge(catalogue::router())
        .merge(integrations::router())
        .merge(deliveries::router())
        .merge(reconciliation::router())
        .merge(openapi::router());
    Router::new()
        .merge(limited(settings, SETTINGS_BODY_BYTES))
        .merge(limited(
            events::router().merge(sources::router()),
            events_limit,
        ))
        .merge(limited(recordings::router(), recording_limit))
}

/// Parses an optional RFC 3339 query parameter.
pub(crate) fn time_param(name: &str, value: Option<&String>) -> ApiResult<Option<i64>> {
    match value {
        None => Ok(None),
        Some(v) => crate::time::parse_rfc3339_ms(v).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_time",
                format!("`{name}` must be an RFC 3339 time such as 2026-11-22T10:00:00.000Z"),
            )
        }),
    }
}

/// The `limit` query parameter of a paged list: 1–500, `default` when absent.
pub(crate) fn limit_param(value: Option<&String>, default: u32) -> ApiResult<u32> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", "`limit` must be a number from 1 to 500")
            }),
    }
}
