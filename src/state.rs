//! What every request handler and background task shares: the store, the caches, the
//! dispatcher, the HTTP client, the sealing key. Built once in [`crate::app`]; cloned cheaply
//! (one `Arc`). Also where a request's bearer token becomes a [`Principal`]: the extractor needs
//! the state, and the state sits above the pieces it holds.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use parking_lot::RwLock;

use crate::auth::{Principal, Tokens};
use crate::cache::IntegrationCache;
use crate::config::Config;
use crate::deliver::client::HttpClient;
use crate::deliver::Dispatcher;
use crate::error::{ApiError, ApiResult};
use crate::model::tenancy::Tenant;
use crate::security::seal::Sealer;
use crate::security::ssrf::{DestinationPolicy, Lookup};
use crate::serve::body::BodyBudget;
use crate::store::DynStore;

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
    /// The node's live streams: the tailer of the event log and its readers.
    pub streams: Arc<crate::deliver::stream::StreamHub>,
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
    /// The node's time (its [`crate::clock::Clock`]), in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// Who a token belongs to (see [`crate::auth::principal_for_token`]).
    pub async fn principal(&self, token: &str) -> Result<Principal, ApiError> {
        crate::auth::principal_for_token(&self.tokens, &*self.store, token).await
    }

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

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = api_token(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <api token>`"))?;
        if token.is_empty() {
            return Err(ApiError::unauthorized(
                "the Authorization header must be `Bearer <api token>` (or Basic with the token as password)",
            ));
        }
        state.principal(&token).await
    }
}

/// The API token a request's `Authorization` header carries: `None` without the header, empty
/// when it is not `Bearer <token>` or Basic.
pub fn api_token(headers: &axum::http::HeaderMap) -> Option<String> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    Some(match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim().to_string(),
        // For sources that can only send Basic (FreeSWITCH's `cred`): the password is the
        // token, the user name is ignored.
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
            base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|up| up.split_once(':').map(|(_, pw)| pw.to_string()))
                .unwrap_or_default()
        }
        _ => String::new(),
    })
}
