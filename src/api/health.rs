//! Liveness and readiness.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{extract::State, Json, Router};
use serde_json::{json, Value};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers a read and a write round trip.
async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store unavailable"})),
            )
        }
    }
}

/// Prometheus text. Unauthenticated, like most scrape targets: it holds counts, never data.
async fn metrics(
    State(s): State<AppState>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), crate::error::ApiError> {
    let (pending, oldest) = s.store.pending_stats().await?;
    let now = crate::time::now_ms();
    let integrations = s.cache.all();
    let disabled = integrations
        .iter()
        .filter(|i| i.status == crate::store::IntegrationStatus::Disabled)
        .count() as u64;
    let gauges = crate::metrics::Gauges {
        queued_in_memory: s.dispatcher.queued_in_memory() as u64,
        retries_in_memory: s.dispatcher.retries_in_memory() as u64,
        pending,
        oldest_pending_age_s: oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
        integrations: vec![
            ("active", integrations.len() as u64 - disabled),
            ("disabled", disabled),
        ],
    };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&gauges),
    ))
}
