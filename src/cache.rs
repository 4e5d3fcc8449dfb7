//! Integrations in memory. Every request that changes an integration updates this cache before
//! it answers, so the change applies to every event ingested after the answer. Secrets are held
//! opened here (they are needed on every send) and sealed in the store.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::model::integration::{IntegrationSpec, ValidSpec};
use crate::security::decode_secret;
use crate::security::seal::Sealer;
use crate::store::{IntegrationHealth, IntegrationRecord, IntegrationStatus};

/// How a sealed client key is written in the stored settings.
const SEALED: &str = "sealed:";

/// A client key as the stored settings hold it: sealed, in base64.
fn open_key(stored: &str, sealer: &Sealer) -> Result<String, String> {
    let sealed = stored
        .strip_prefix(SEALED)
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or("the stored client key is not sealed")?;
    String::from_utf8(sealer.open(&sealed).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// A signing secret and, during a rotation, when it stops signing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SigningSecret {
    pub secret: String,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Integration {
    pub id: String,
    pub tenant_id: Option<String>,
    pub partner_id: Option<String>,
    pub valid: ValidSpec,
    pub status: IntegrationStatus,
    pub disabled_reason: Option<String>,
    /// The receiver's secret, sent as `Authorization: Bearer`.
    pub secret: Option<String>,
    pub secret_hint: Option<String>,
    pub signing: Vec<SigningSecret>,
    signing_keys: Vec<(Vec<u8>, Option<i64>)>,
    pub failing_since: Option<i64>,
    pub consecutive_failures: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Integration {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        tenant_id: Option<String>,
        partner_id: Option<String>,
        valid: ValidSpec,
        secret: Option<String>,
        signing: Vec<SigningSecret>,
        now: i64,
    ) -> Self {
        let mut i = Integration {
            id,
            tenant_id,
            partner_id,
            valid,
            status: IntegrationStatus::Active,
            disabled_reason: None,
            secret_hint: secret.as_deref().map(crate::model::settings::secret_hint),
            secret,
            signing: Vec::new(),
            signing_keys: Vec::new(),
            failing_since: None,
            consecutive_failures: 0,
            created_at: now,
            updated_at: now,
        };
        i.set_signing(signing);
        i
    }

    pub fn set_signing(&mut self, signing: Vec<SigningSecret>) {
        self.signing_keys = signing
            .iter()
            .filter_map(|s| Some((decode_secret(&s.secret)?, s.expires_at)))
            .collect();
        self.signing = signing;
    }

    pub fn set_secret(&mut self, secret: Option<String>) {
        self.secret_hint = secret.as_deref().map(crate::model::settings::secret_hint);
        self.secret = secret;
    }

    /// The HMAC keys that sign at `now` (two during a rotation).
    pub fn signing_keys(&self, now: i64) -> impl Iterator<Item = &[u8]> {
        self.signing_keys
            .iter()
            .filter(move |(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(k, _)| k.as_slice())
    }

    pub fn health(&self) -> IntegrationHealth {
        IntegrationHealth {
            status: self.status,
            disabled_reason: self.disabled_reason.clone(),
            failing_since: self.failing_since,
            consecutive_failures: self.consecutive_failures,
            updated_at: self.updated_at,
        }
    }

    pub fn with_health(&self, h: &IntegrationHealth) -> Integration {
        let mut next = self.clone();
        next.status = h.status;
        next.disabled_reason = h.disabled_reason.clone();
        next.failing_since = h.failing_since;
        next.consecutive_failures = h.consecutive_failures;
        next.updated_at = h.updated_at;
        next
    }

    pub fn from_record(rec: &IntegrationRecord, sealer: &Sealer) -> Result<Integration, String> {
        let mut spec: IntegrationSpec = serde_json::from_str(&rec.spec_json)
            .map_err(|e| format!("integration {}: {e}", rec.id))?;
        if let Some(key) = spec.tls.as_mut().and_then(|t| t.client_key.as_mut()) {
            *key = open_key(key, sealer).map_err(|e| format!("integration {}: {e}", rec.id))?;
        }
        let url = spec
            .parsed_url()
            .map_err(|e| format!("integration {}: {e}", rec.id))?;
        let secret = match &rec.secret_sealed {
            Some(s) => Some(
                String::from_utf8(sealer.open(s).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let signing: Vec<SigningSecret> = serde_json::from_slice(
            &sealer
                .open(&rec.signing_sealed)
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let mut i = Integration::new(
            rec.id.clone(),
            rec.tenant_id.clone(),
            rec.partner_id.clone(),
            ValidSpec { spec, url },
            secret,
            signing,
            rec.created_at,
        );
        i.status = rec.status;
        i.disabled_reason = rec.disabled_reason.clone();
        i.failing_since = rec.failing_since;
        i.consecutive_failures = rec.consecutive_failures;
        i.updated_at = rec.updated_at;
        Ok(i)
    }

    pub fn to_record(&self, sealer: &Sealer) -> IntegrationRecord {
        IntegrationRecord {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            partner_id: self.partner_id.clone(),
            spec_json: {
                let mut spec = self.valid.spec.clone();
                if let Some(key) = spec.tls.as_mut().and_then(|t| t.client_key.as_mut()) {
                    *key = format!("{SEALED}{}", STANDARD.encode(sealer.seal(key.as_bytes())));
                }
                serde_json::to_string(&spec).unwrap_or_default()
            },
            status: self.status,
            disabled_reason: self.disabled_reason.clone(),
            secret_sealed: self.secret.as_ref().map(|s| sealer.seal(s.as_bytes())),
            secret_hint: self.secret_hint.clone(),
            signing_sealed: sealer.seal(&serde_json::to_vec(&self.signing).unwrap_or_default()),
            failing_since: self.failing_since,
            consecutive_failures: self.consecutive_failures,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

type TenantList = Arc<Vec<Arc<Integration>>>;

#[derive(Default)]
pub struct IntegrationCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Arc<Integration>>,
    by_tenant: HashMap<String, TenantList>,
    /// Partner integrations (one per partner): few, checked for every call record.
    partners: TenantList,
}

impl IntegrationCache {
    pub fn get(&self, id: &str) -> Option<Arc<Integration>> {
        self.inner.read().by_id.get(id).cloned()
    }

    /// The tenant's integrations (a shared snapshot: cloning is one reference count).
    pub fn for_tenant(&self, tenant_id: &str) -> TenantList {
        self.inner
            .read()
            .by_tenant
            .get(tenant_id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn put(&self, integration: Integration) -> Arc<Integration> {
        let integration = Arc::new(integration);
        let mut inner = self.inner.write();
        inner
            .by_id
            .insert(integration.id.clone(), integration.clone());
        if let Some(tid) = integration.tenant_id.clone() {
            inner.rebuild_tenant(&tid);
        }
        if integration.partner_id.is_some() {
            inner.rebuild_partners();
        }
        integration
    }

    /// All partner integrations.
    pub fn partner_integrations(&self) -> TenantList {
        self.inner.read().partners.clone()
    }

    pub fn for_partner(&self, partner_id: &str) -> Vec<Arc<Integration>> {
        self.inner
            .read()
            .partners
            .iter()
            .filter(|i| i.partner_id.as_deref() == Some(partner_id))
            .cloned()
            .collect()
    }

    /// Every integration (the batch scheduler walks them).
    pub fn all(&self) -> Vec<Arc<Integration>> {
        self.inner.read().by_id.values().cloned().collect()
    }

    pub fn remove(&self, id: &str) {
        let mut inner = self.inner.write();
        if let Some(old) = inner.by_id.remove(id) {
            if let Some(tid) = &old.tenant_id {
                inner.rebuild_tenant(tid);
            }
            if old.partner_id.is_some() {
                inner.rebuild_partners();
            }
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.inner.read().by_id.keys().cloned().collect()
    }
}

impl Inner {
    fn rebuild_partners(&mut self) {
        let mut list: Vec<Arc<Integration>> = self
            .by_id
            .values()
            .filter(|i| i.partner_id.is_some())
            .cloned()
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        self.partners = Arc::new(list);
    }

    fn rebuild_tenant(&mut self, tenant_id: &str) {
        let mut list: Vec<Arc<Integration>> = self
            .by_id
            .values()
            .filter(|i| i.tenant_id.as_deref() == Some(tenant_id))
            .cloned()
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        if list.is_empty() {
            self.by_tenant.remove(tenant_id);
        } else {
            self.by_tenant.insert(tenant_id.to_string(), Arc::new(list));
        }
    }
}
