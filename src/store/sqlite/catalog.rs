//! Integrations and their health ([`Catalog`]).

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::*;
use crate::store::ports::*;
use crate::store::*;

#[async_trait]
impl Catalog for SqliteStore {
    async fn insert_integration(
        &self,
        rec: IntegrationRecord,
        max: Option<u32>,
    ) -> StoreResult<()> {
        self.write(move |c| insert_integration(c, &rec, max)).await
    }
    async fn update_integration(&self, rec: IntegrationRecord) -> StoreResult<()> {
        self.write(move |c| update_integration(c, &rec)).await
    }
    async fn delete_integration(&self, id: &str) -> StoreResult<bool> {
        let id = owned(id);
        self.write(move |c| delete_integration(c, &id)).await
    }
    async fn load_integrations(&self) -> StoreResult<Vec<IntegrationRecord>> {
        self.read(load_integrations).await
    }
    async fn get_integration(&self, id: &str) -> StoreResult<Option<IntegrationRecord>> {
        let id = owned(id);
        self.read(move |c| get_integration(c, &id)).await
    }
    async fn set_integration_health(&self, id: &str, health: IntegrationHealth) -> StoreResult<()> {
        let id = owned(id);
        self.write(move |c| set_health(c, &id, &health)).await
    }
}

pub fn insert_integration(
    c: &Connection,
    i: &IntegrationRecord,
    max: Option<u32>,
) -> StoreResult<()> {
    if let (Some(max), Some(tid)) = (max, &i.tenant_id) {
        // Counted inside the writer's transaction, so two concurrent creates cannot both pass.
        let n: u32 = c
            .query_row(
                "SELECT COUNT(*) FROM integrations WHERE tenant_id = ?1",
                [tid],
                |r| r.get(0),
            )
            .map_err(internal)?;
        if n >= max {
            return Err(StoreError::Conflict(format!(
                "tenant `{tid}` already has {n} integrations, its limit (max_integrations = {max}); delete one or raise the limit"
            )));
        }
    }
    c.execute(
        "INSERT INTO integrations (id, tenant_id, partner_id, spec, status, disabled_reason, secret_sealed,
            secret_hint, signing_sealed, failing_since, consecutive_failures, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            i.id, i.tenant_id, i.partner_id, i.spec_json, i.status.as_str(), i.disabled_reason,
            i.secret_sealed, i.secret_hint, i.signing_sealed, i.failing_since,
            i.consecutive_failures, i.created_at, i.updated_at
        ],
    )
    .map_err(conflict_on_unique("an integration with this id"))?;
    Ok(())
}

pub fn update_integration(c: &Connection, i: &IntegrationRecord) -> StoreResult<()> {
    let n = c
        .execute(
            "UPDATE integrations SET spec = ?2, status = ?3, disabled_reason = ?4, secret_sealed = ?5,
                secret_hint = ?6, signing_sealed = ?7, failing_since = ?8, consecutive_failures = ?9,
                updated_at = ?10
             WHERE id = ?1",
            params![
                i.id, i.spec_json, i.status.as_str(), i.disabled_reason, i.secret_sealed,
                i.secret_hint, i.signing_sealed, i.failing_since, i.consecutive_failures, i.updated_at
            ],
        )
        .map_err(internal)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn delete_integration(c: &Connection, id: &str) -> StoreResult<bool> {
    let n = c
        .execute("DELETE FROM integrations WHERE id = ?1", [id])
        .map_err(internal)?;
    c.execute(
        "UPDATE deliveries SET status = 'cancelled', lease_owner = NULL, lease_until = NULL
         WHERE integration_id = ?1 AND status IN ('pending', 'blocked', 'held')",
        [id],
    )
    .map_err(internal)?;
    Ok(n > 0)
}

pub fn load_integrations(c: &Connection) -> StoreResult<Vec<IntegrationRecord>> {
    select_integrations(c, None)
}

pub fn get_integration(c: &Connection, id: &str) -> StoreResult<Option<IntegrationRecord>> {
    Ok(select_integrations(c, Some(id))?.pop())
}

pub(super) fn select_integrations(
    c: &Connection,
    id: Option<&str>,
) -> StoreResult<Vec<IntegrationRecord>> {
    let mut st = c
        .prepare(
            "SELECT id, tenant_id, partner_id, spec, status, disabled_reason, secret_sealed, secret_hint,
                signing_sealed, failing_since, consecutive_failures, created_at, updated_at
             FROM integrations WHERE ?1 IS NULL OR id = ?1",
        )
        .map_err(internal)?;
    let rows = st
        .query_map([id], |r| {
            Ok(IntegrationRecord {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                partner_id: r.get(2)?,
                spec_json: r.get(3)?,
                status: IntegrationStatus::parse(&r.get::<_, String>(4)?),
                disabled_reason: r.get(5)?,
                secret_sealed: r.get(6)?,
                secret_hint: r.get(7)?,
                signing_sealed: r.get(8)?,
                failing_since: r.get(9)?,
                consecutive_failures: r.get(10)?,
                created_at: r.get(11)?,
                updated_at: r.get(12)?,
            })
        })
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}

pub fn set_health(c: &Connection, id: &str, h: &IntegrationHealth) -> StoreResult<()> {
    c.execute(
        "UPDATE integrations SET status = ?2, disabled_reason = ?3, failing_since = ?4,
            consecutive_failures = ?5, updated_at = ?6 WHERE id = ?1",
        params![
            id,
            h.status.as_str(),
            h.disabled_reason,
            h.failing_since,
            h.consecutive_failures,
            h.updated_at
        ],
    )
    .map_err(internal)?;
    Ok(())
}
