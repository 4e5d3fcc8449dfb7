//! API tokens and who may do what.
//!
//! Tokens are 32 random bytes (`chk_…`), shown once and stored as their SHA-256: they are
//! high-entropy, so a fast hash is as safe as a slow one and costs nothing per request. Looked-up
//! tokens are cached in memory. A token of one tenant or partner never sees another's objects:
//! the API answers 404, as for something that does not exist.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::model::tenancy::{Role, Tenant};
use crate::store::Access;

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new token and its hash.
pub fn generate_token() -> (String, [u8; 32]) {
    let token = format!(
        "chk_{}",
        URL_SAFE_NO_PAD.encode(crate::security::random_bytes::<32>())
    );
    let hash = hash_token(&token);
    (token, hash)
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub token_id: String,
    pub role: Role,
    pub tenant_id: Option<String>,
    pub partner_id: Option<String>,
    /// Only these of its tenant's integrations (a portal session's scope); `None`: all.
    pub integrations: Option<std::sync::Arc<[String]>>,
}

impl Principal {
    /// Who a console session opened by a portal link is: its grant's tenant, role and scope.
    pub fn of_portal(grant: crate::model::portal::PortalSession) -> Principal {
        Principal {
            token_id: format!("portal:{}", grant.id),
            role: grant.role,
            tenant_id: Some(grant.tenant_id),
            partner_id: None,
            integrations: grant.integration_ids.map(Into::into),
        }
    }

    /// Whether the tenant exists for this caller at all (otherwise: 404).
    pub fn sees_tenant(&self, t: &Tenant) -> bool {
        self.sees_tenant_of(&t.id, t.partner_id.as_deref())
    }

    /// [`Self::sees_tenant`] for tenant `id` of partner `partner`.
    pub fn sees_tenant_of(&self, id: &str, partner: Option<&str>) -> bool {
        match self.role {
            Role::Operator => true,
            Role::PartnerAdmin => {
                self.partner_id.is_some() && partner == self.partner_id.as_deref()
            }
            Role::TenantAdmin | Role::TenantViewer | Role::Ingest => {
                self.tenant_id.as_deref() == Some(id)
            }
        }
    }

    /// Whether the caller sees integration `id` of a tenant it sees: a portal session may be
    /// limited to some.
    pub fn sees_integration(&self, id: &str) -> bool {
        self.integrations
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|i| i == id))
    }

    /// Whether the caller may change the tenant's integrations (it sees the tenant).
    pub fn manages_tenant(&self) -> bool {
        matches!(
            self.role,
            Role::Operator | Role::PartnerAdmin | Role::TenantAdmin
        )
    }

    pub fn require(&self, ok: bool, what: &str) -> Result<(), ApiError> {
        if ok {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "a {} token cannot {what}",
                self.role.as_str()
            )))
        }
    }
}

/// The bootstrap operator token (from configuration) and a cache of stored tokens.
pub struct Tokens {
    pub bootstrap: Option<[u8; 32]>,
    cache: RwLock<HashMap<[u8; 32], Principal>>,
    /// Bumped whenever access is withdrawn on this node (a token, a session, a tenant): what
    /// stays open past its first request (live streams) looks again whether it still stands.
    withdrawn: tokio::sync::watch::Sender<u64>,
}

impl Tokens {
    pub fn new(bootstrap: Option<&str>) -> Self {
        Tokens {
            bootstrap: bootstrap.map(hash_token),
            cache: RwLock::new(HashMap::new()),
            withdrawn: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Forgets every cached token (they are looked up again).
    pub fn forget_all(&self) {
        self.cache.write().clear();
        self.withdrawn();
    }

    /// Forgets a revoked token, so its next request is looked up (and refused).
    pub fn forget_id(&self, token_id: &str) {
        self.cache.write().retain(|_, p| p.token_id != token_id);
        self.withdrawn();
    }

    pub fn forget_tenant(&self, tenant_id: &str) {
        self.cache
            .write()
            .retain(|_, p| p.tenant_id.as_deref() != Some(tenant_id));
        self.withdrawn();
    }

    /// Says access was withdrawn (also for sessions ended, which are not cached here).
    pub fn withdrawn(&self) {
        self.withdrawn.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever access is withdrawn on this node.
    pub fn withdrawals(&self) -> tokio::sync::watch::Receiver<u64> {
        self.withdrawn.subscribe()
    }
}

/// Who a token belongs to: the bootstrap operator, a cached token, or one looked up by hash.
/// Used by the API's `Authorization` header and by the console's session cookie alike, so a
/// revoked token ends a console session too.
pub async fn principal_for_token(
    tokens: &Tokens,
    store: &dyn Access,
    token: &str,
) -> Result<Principal, ApiError> {
    let hash = hash_token(token);
    if let Some(b) = &tokens.bootstrap {
        if crate::security::constant_time_eq(b, &hash) {
            return Ok(Principal {
                token_id: "bootstrap".into(),
                role: Role::Operator,
                tenant_id: None,
                partner_id: None,
                integrations: None,
            });
        }
    }
    if let Some(p) = tokens.cache.read().get(&hash) {
        return Ok(p.clone());
    }
    // Looked up by its hash: the comparison that matters happens on a digest the caller
    // cannot steer byte by byte.
    let rec = store
        .find_token(hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the API token is not valid"))?;
    let p = Principal {
        token_id: rec.id,
        role: rec.role,
        tenant_id: rec.tenant_id,
        partner_id: rec.partner_id,
        integrations: None,
    };
    tokens.cache.write().insert(hash, p.clone());
    Ok(p)
}
