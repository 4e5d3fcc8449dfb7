//! Liveness and readiness.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{extract::State, Json, Router};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "the process is up", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Ready when every integration could be opened and the store answers a round trip.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = Health), (status = 503, description = "the store does not answer", body = Health)))]
pub(crate) async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    if let Err(e) = s.unopened.check() {
        tracing::warn!(error = %e.message, "not ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "integrations cannot be opened".into(),
            }),
        );
    }
    match s.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ready".into(),
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "store unavailable".into(),
                }),
            )
        }
    }
}

/// Prometheus text. Unauthenticated, like most scrape targets: it holds counts, never data.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
              (status = 500, description = "the store did not answer for the queue gauges", body = crate::error::ErrorBody)))]
pub(crate) async fn metrics(
    State(s): State<AppState>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), crate::error::ApiError> {
    let (pending, oldest) = s.store.pending_stats().await?;
    let now = s.now_ms();
    let integrations = s.cache.all();
    let disabled = integrations
        .iter()
        .filter(|i| i.status == crate::store::IntegrationStatus::Disabled)
        .count() as u64;
    let gauges = crate::metrics::Gauges {
        queued_in_memory: s.dispatcher.queued_in_memory() as u64,
        retries_in_memory: s.dispatcher.retries_in_memory() as u64,
        body_bytes_held: s.bodies.held() as u64,
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
