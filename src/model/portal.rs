//! Portal links and the console sessions they open: a platform hands its customer a single-use,
//! short-lived link into the console, scoped to one tenant, one role and optionally some of its
//! integrations. No API token is involved: the session is a stored grant, ended from the API.

use super::tenancy::Role;

/// The longest a link may stay unopened.
pub const MAX_LINK_TTL_S: u32 = 3600;
/// How long an unopened link lasts when the request does not say.
pub const DEFAULT_LINK_TTL_S: u32 = 600;
/// The most integrations one link may be scoped to.
pub const MAX_SCOPED_INTEGRATIONS: usize = 100;
/// How long a session a link opened lasts (as a signed-in console session does).
pub const SESSION_MS: i64 = 8 * 3600 * 1000;

/// A link as stored: the SHA-256 of its code, never the code.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalLink {
    pub hash: [u8; 32],
    pub tenant_id: String,
    pub role: Role,
    /// `None`: every integration of the tenant; otherwise only these (and no new ones).
    pub integration_ids: Option<Vec<String>>,
    /// The token that made it.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A console session opened by a link.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalSession {
    pub id: String,
    pub tenant_id: String,
    pub role: Role,
    pub integration_ids: Option<Vec<String>>,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

impl PortalSession {
    /// The session a link opens: the link's tenant, role and scope (as stored), from `now`.
    pub fn opened(
        id: &str,
        tenant_id: String,
        role: Role,
        integration_ids: Option<String>,
        now: i64,
        expires_at: i64,
    ) -> PortalSession {
        PortalSession {
            id: id.to_string(),
            tenant_id,
            role,
            integration_ids: ids_from_text(integration_ids),
            created_at: now,
            expires_at,
            ended_at: None,
        }
    }

    pub fn active(&self, now: i64) -> bool {
        self.ended_at.is_none() && self.expires_at > now
    }
}

/// The roles a link may grant: a customer's, never a partner's or the operator's.
pub fn link_role(role: &str) -> Result<Role, String> {
    match Role::parse(role) {
        Some(r @ (Role::TenantAdmin | Role::TenantViewer)) => Ok(r),
        _ => Err(format!(
            "`role` must be tenant_admin or tenant_viewer (a portal link opens a customer's console), not `{role}`"
        )),
    }
}

/// The link's lifetime in seconds: 1 to [`MAX_LINK_TTL_S`], [`DEFAULT_LINK_TTL_S`] if unset.
pub fn link_ttl_s(ttl_s: Option<i64>) -> Result<u32, String> {
    match ttl_s {
        None => Ok(DEFAULT_LINK_TTL_S),
        Some(t) if (1..=MAX_LINK_TTL_S as i64).contains(&t) => Ok(t as u32),
        Some(t) => Err(format!(
            "`ttl_s` must be 1–{MAX_LINK_TTL_S} seconds (a link is short-lived), not {t}"
        )),
    }
}

/// Integration ids as stored (one text column): a JSON array, or NULL for all.
pub fn ids_to_text(ids: &Option<Vec<String>>) -> Option<String> {
    ids.as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_default())
}

pub fn ids_from_text(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| serde_json::from_str(&t).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_grant_only_customer_roles_for_at_most_an_hour() {
        assert_eq!(link_role("tenant_viewer"), Ok(Role::TenantViewer));
        assert!(link_role("operator").is_err());
        assert!(link_role("partner_admin").is_err());
        assert_eq!(link_ttl_s(None), Ok(DEFAULT_LINK_TTL_S));
        assert_eq!(link_ttl_s(Some(3600)), Ok(3600));
        assert!(link_ttl_s(Some(3601)).is_err());
        assert!(link_ttl_s(Some(0)).is_err());
    }

    #[test]
    fn scope_round_trips_through_its_column() {
        let ids = Some(vec!["int_a".to_string(), "int_b".to_string()]);
        assert_eq!(ids_from_text(ids_to_text(&ids)), ids);
        assert_eq!(ids_from_text(ids_to_text(&None)), None);
    }
}
