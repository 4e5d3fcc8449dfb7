//! The HTTP API: one file per resource, each with its request/response shapes and handlers.
//! Errors become responses only in [`crate::error`].

pub(crate) mod body;
pub(crate) mod deliveries;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod integrations;
pub mod openapi;
pub(crate) mod partners;
pub(crate) mod reconciliation;
pub(crate) mod recordings;
pub(crate) mod sources;
pub(crate) mod tenants;
pub(crate) mod tokens;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use parking_lot::RwLock;

pub use body::LazyBody;

use crate::auth::{Principal, Tokens};
use crate::cache::IntegrationCache;
use crate::config::Config;
use crate::deliver::client::HttpClient;
use crate::deliver::Dispatcher;
use crate::error::{ApiError, ApiResult};
use crate::model::tenancy::Tenant;
use crate::security::seal::Sealer;
use crate::security::ssrf::{DestinationPolicy, Lookup};
use crate::store::DynStore;
use body::BodyBudget;

#[derive(Clone)]
pub struct AppState(pub Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    pub store: DynStore,
    pub cache: Arc<IntegrationCache>,
    pub dispatcher: Arc<Dispatcher>,
    pub sealer: Sealer,
    pub client: HttpClient,
    pub tokens: Tokens,
    pub lookup: Lookup,
    pub policy: DestinationPolicy,
    /// Signs and checks recording download links.
    pub links: crate::security::links::Links,
    /// Tenants known to exist, with their partner, so ingest checks them (and routes partner
    /// feeds) without a query per event.
    pub known_tenants: RwLock<HashMap<String, Option<String>>>,
    /// Integrations this node could not open (sealed with another key, or unreadable): while
    /// there are any, the node is not ready and refuses events rather than drop their
    /// deliveries.
    pub unopened: Unopened,
    /// Request bodies held in memory at once, and how long one may take to arrive.
    pub bodies: BodyBudget,
}

/// Ids of integrations this node could not open.
#[derive(Default)]
pub struct Unopened(RwLock<std::collections::BTreeSet<String>>);

impl Unopened {
    pub fn add(&self, id: &str) {
        self.0.write().insert(id.to_string());
    }
    pub fn ids(&self) -> Vec<String> {
        self.0.read().iter().cloned().collect()
    }
    /// The integration was opened (or is gone).
    pub fn resolved(&self, id: &str) {
        self.0.write().remove(id);
    }
    /// 503 while any integration cannot be opened: an event accepted now could miss it.
    pub fn check(&self) -> ApiResult<()> {
        let ids = self.0.read();
        if ids.is_empty() {
            return Ok(());
        }
        let list: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
        Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!(
                "this node cannot open integration(s) {} (is CALLHOOK_SEAL_KEY the same on every node?), so it cannot route events; send them to another node",
                list.join(", ")
            ),
        ))
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// The tenant, if it exists and the caller may see it; 404 otherwise.
    pub async fn visible_tenant(&self, p: &Principal, tenant_id: &str) -> ApiResult<Tenant> {
        self.store
            .get_tenant(tenant_id)
            .await?
            .filter(|t| p.sees_tenant(t) && p.role != crate::model::tenancy::Role::Ingest)
            .ok_or_else(|| ApiError::not_found(&format!("tenant `{tenant_id}`")))
    }

    /// The partner, if it exists and the caller may see it (operators, its own partner
    /// admins); 404 otherwise.
    pub async fn visible_partner(
        &self,
        p: &Principal,
        partner_id: &str,
    ) -> ApiResult<crate::model::tenancy::Partner> {
        use crate::model::tenancy::Role;
        let allowed = p.role == Role::Operator
            || (p.role == Role::PartnerAdmin && p.partner_id.as_deref() == Some(partner_id));
        let found = match allowed {
            true => self.store.get_partner(partner_id).await?,
            false => None,
        };
        found.ok_or_else(|| ApiError::not_found(&format!("partner `{partner_id}`")))
    }

    pub async fn tenant_exists(&self, tenant_id: &str) -> ApiResult<bool> {
        Ok(self.tenant_partner(tenant_id).await?.is_some())
    }

    /// `None` when the tenant does not exist, else its partner (if any).
    pub async fn tenant_partner(&self, tenant_id: &str) -> ApiResult<Option<Option<String>>> {
        if let Some(p) = self.known_tenants.read().get(tenant_id) {
            return Ok(Some(p.clone()));
        }
        let found = self.store.get_tenant(tenant_id).await?;
        if let Some(t) = &found {
            self.known_tenants
                .write()
                .insert(t.id.clone(), t.partner_id.clone());
        }
        Ok(found.map(|t| t.partner_id))
    }
}

pub fn router(state: AppState) -> Router {
    use body::{limited, FORM_BODY_BYTES, SETTINGS_BODY_BYTES};
    let events_limit = state.config.max_body_bytes;
    let recording_limit = usize::try_from(state.config.max_recording_bytes).unwrap_or(usize::MAX);
    let settings = Router::new()
        .merge(health::router())
        .merge(partners::router())
        .merge(tenants::router())
        .merge(tokens::router())
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
        .merge(limited(crate::console::router(), FORM_BODY_BYTES))
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no_route",
                "no such endpoint; the API lives under /v1 (see /v1/openapi.json)",
            )
        })
        .layer(axum::middleware::map_response(
            crate::error::envelope_every_error,
        ))
        .with_state(state)
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
