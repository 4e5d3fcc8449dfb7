//! Integrations and their health ([`Catalog`]); every change is a notice to the other nodes.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::*;
use crate::store::ports::*;

#[async_trait]
impl Catalog for PgStore {
    async fn insert_integration(
        &self,
        rec: IntegrationRecord,
        max: Option<u32>,
    ) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            insert_integration(&tx, &rec, max).await?;
            notify(&tx, &self.instance, &Change::Integration(rec.id.clone())).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
    async fn update_integration(&self, rec: IntegrationRecord) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            update_integration(&tx, &rec).await?;
            notify(&tx, &self.instance, &Change::Integration(rec.id.clone())).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
    async fn delete_integration(&self, id: &str) -> StoreResult<bool> {
        let (found, v) = in_tx!(self, |tx| {
            let found = delete_integration(&tx, id).await?;
            let v = notify(&tx, &self.instance, &Change::Integration(id.to_string())).await?;
            (found, v)
        })?;
        self.own_committed(v, v);
        Ok(found)
    }
    async fn load_integrations(&self) -> StoreResult<Vec<IntegrationRecord>> {
        on_conn!(self, |c| load_integrations(&c, None).await?)
    }
    async fn get_integration(&self, id: &str) -> StoreResult<Option<IntegrationRecord>> {
        on_conn!(self, |c| load_integrations(&c, Some(id)).await?.pop())
    }
    async fn set_integration_health(&self, id: &str, health: IntegrationHealth) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            // Disabled or re-activated changes routing (held or sent); failing or recovered not.
            let status_changed = set_health(&tx, id, &health).await?;
            let change = Change::Integration(id.to_string());
            notify_with(&tx, &self.instance, &change, status_changed).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
}

pub async fn insert_integration<C: GenericClient>(
    c: &C,
    i: &IntegrationRecord,
    max: Option<u32>,
) -> PgResult<()> {
    if let (Some(max), Some(tid)) = (max, &i.tenant_id) {
        // Two nodes creating at once for one tenant: the tenant's row lock makes the count and
        // the insert one step.
        query(c, "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", &[tid]).await?;
        let n: i64 = query(
            c,
            "SELECT COUNT(*) FROM integrations WHERE tenant_id = $1",
            &[tid],
        )
        .await?
        .first()
        .map(|r| r.get(0))
        .unwrap_or(0);
        if n >= max as i64 {
            return Err(StoreError::Conflict(format!(
                "tenant `{tid}` already has {n} integrations, its limit (max_integrations = {max}); delete one or raise the limit"
            ))
            .into());
        }
    }
    let failures = i.consecutive_failures as i64;
    execute(
        c,
        "INSERT INTO integrations (id, tenant_id, partner_id, spec, status, disabled_reason, secret_sealed,
            secret_hint, signing_sealed, failing_since, consecutive_failures, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &i.id, &i.tenant_id, &i.partner_id, &i.spec_json, &i.status.as_str(), &i.disabled_reason,
            &i.secret_sealed, &i.secret_hint, &i.signing_sealed, &i.failing_since,
            &failures, &i.created_at, &i.updated_at,
        ],
    )
    .await
    .map_err(conflict_on_unique("an integration with this id"))?;
    Ok(())
}

pub async fn update_integration<C: GenericClient>(c: &C, i: &IntegrationRecord) -> PgResult<()> {
    let failures = i.consecutive_failures as i64;
    let n = execute(
        c,
        "UPDATE integrations SET spec = $2, status = $3, disabled_reason = $4, secret_sealed = $5,
            secret_hint = $6, signing_sealed = $7, failing_since = $8, consecutive_failures = $9,
            updated_at = $10
         WHERE id = $1",
        &[
            &i.id,
            &i.spec_json,
            &i.status.as_str(),
            &i.disabled_reason,
            &i.secret_sealed,
            &i.secret_hint,
            &i.signing_sealed,
            &i.failing_since,
            &failures,
            &i.updated_at,
        ],
    )
    .await?;
    if n == 0 {
        return Err(StoreError::NotFound.into());
    }
    Ok(())
}

pub async fn delete_integration<C: GenericClient>(c: &C, id: &str) -> PgResult<bool> {
    let n = execute(c, "DELETE FROM integrations WHERE id = $1", &[&id]).await?;
    execute(
        c,
        "UPDATE deliveries SET status = 'cancelled', lease_owner = NULL, lease_until = NULL
         WHERE integration_id = $1 AND status IN ('pending', 'blocked', 'held')",
        &[&id],
    )
    .await?;
    Ok(n > 0)
}

pub(super) fn integration_row(r: &Row) -> IntegrationRecord {
    IntegrationRecord {
        id: r.get(0),
        tenant_id: r.get(1),
        partner_id: r.get(2),
        spec_json: r.get(3),
        status: IntegrationStatus::parse(r.get(4)),
        disabled_reason: r.get(5),
        secret_sealed: r.get(6),
        secret_hint: r.get(7),
        signing_sealed: r.get(8),
        failing_since: r.get(9),
        consecutive_failures: r.get::<_, i64>(10) as u32,
        created_at: r.get(11),
        updated_at: r.get(12),
    }
}

/// Every integration, or the one with `id`.
pub async fn load_integrations<C: GenericClient>(
    c: &C,
    id: Option<&str>,
) -> PgResult<Vec<IntegrationRecord>> {
    Ok(query(
        c,
        "SELECT id, tenant_id, partner_id, spec, status, disabled_reason, secret_sealed, secret_hint,
            signing_sealed, failing_since, consecutive_failures, created_at, updated_at
         FROM integrations WHERE $1::text IS NULL OR id = $1",
        &[&id],
    )
    .await?
    .iter()
    .map(integration_row)
    .collect())
}

/// Writes an integration's health; returns whether its status (active / disabled) changed.
pub async fn set_health<C: GenericClient>(
    c: &C,
    id: &str,
    h: &IntegrationHealth,
) -> PgResult<bool> {
    let before: Option<String> = query_opt(
        c,
        "SELECT status FROM integrations WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?
    .map(|r| r.get(0));
    let failures = h.consecutive_failures as i64;
    execute(
        c,
        "UPDATE integrations SET status = $2, disabled_reason = $3, failing_since = $4,
            consecutive_failures = $5, updated_at = $6 WHERE id = $1",
        &[
            &id,
            &h.status.as_str(),
            &h.disabled_reason,
            &h.failing_since,
            &failures,
            &h.updated_at,
        ],
    )
    .await?;
    Ok(before.as_deref() != Some(h.status.as_str()))
}
