//! Partners, tenants, tokens and integrations on PostgreSQL.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{execute, query, query_opt, PgError, PgResult};
use crate::model::tenancy::{Partner, Role, Tenant, TokenRecord};
use crate::store::{IntegrationHealth, IntegrationRecord, IntegrationStatus, StoreError};

fn conflict_on_unique(what: &str) -> impl Fn(PgError) -> PgError + '_ {
    move |e| {
        if e.is_unique_violation() {
            PgError::Store(StoreError::Conflict(format!("{what} already exists")))
        } else {
            e
        }
    }
}

pub async fn create_partner<C: GenericClient>(c: &C, p: &Partner) -> PgResult<()> {
    execute(
        c,
        "INSERT INTO partners (id, name, created_at) VALUES ($1, $2, $3)",
        &[&p.id, &p.name, &p.created_at],
    )
    .await
    .map_err(conflict_on_unique("a partner with this id"))?;
    Ok(())
}

pub async fn get_partner<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<Partner>> {
    Ok(query_opt(
        c,
        "SELECT id, name, created_at FROM partners WHERE id = $1",
        &[&id],
    )
    .await?
    .map(|r| Partner {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
    }))
}

pub async fn create_tenant<C: GenericClient>(c: &C, t: &Tenant) -> PgResult<()> {
    let max = t.max_integrations.map(i64::from);
    execute(
        c,
        "INSERT INTO tenants (id, name, partner_id, max_integrations, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &t.id,
            &t.name,
            &t.partner_id,
            &max,
            &t.created_at,
            &t.updated_at,
        ],
    )
    .await
    .map_err(conflict_on_unique("a tenant with this id"))?;
    Ok(())
}

pub async fn get_tenant<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<Tenant>> {
    Ok(query_opt(
        c,
        "SELECT id, name, partner_id, max_integrations, created_at, updated_at FROM tenants WHERE id = $1",
        &[&id],
    )
    .await?
    .map(|r| Tenant {
        id: r.get(0),
        name: r.get(1),
        partner_id: r.get(2),
        max_integrations: r.get::<_, Option<i64>>(3).map(|m| m as u32),
        created_at: r.get(4),
        updated_at: r.get(5),
    }))
}

pub async fn update_tenant<C: GenericClient>(c: &C, t: &Tenant) -> PgResult<()> {
    let max = t.max_integrations.map(i64::from);
    let n = execute(
        c,
        "UPDATE tenants SET name = $2, partner_id = $3, max_integrations = $4, updated_at = $5 WHERE id = $1",
        &[&t.id, &t.name, &t.partner_id, &max, &t.updated_at],
    )
    .await?;
    if n == 0 {
        return Err(StoreError::NotFound.into());
    }
    Ok(())
}

/// Deletes a tenant with its tokens and integrations; `None` if there was no such tenant, else
/// the ids of the integrations deleted with it.
pub async fn delete_tenant<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<Vec<String>>> {
    if execute(c, "DELETE FROM tenants WHERE id = $1", &[&id]).await? == 0 {
        return Ok(None);
    }
    execute(c, "DELETE FROM tokens WHERE tenant_id = $1", &[&id]).await?;
    let ids: Vec<String> = query(
        c,
        "SELECT id FROM integrations WHERE tenant_id = $1",
        &[&id],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    for iid in &ids {
        delete_integration(c, iid).await?;
    }
    // Its recordings go with it (the caller removes their files): a new tenant of the same id
    // inherits nothing.
    execute(c, "DELETE FROM recordings WHERE tenant_id = $1", &[&id]).await?;
    Ok(Some(ids))
}

pub async fn create_token<C: GenericClient>(c: &C, t: &TokenRecord) -> PgResult<()> {
    execute(
        c,
        "INSERT INTO tokens (id, hash, role, tenant_id, partner_id, name, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &t.id,
            &&t.hash[..],
            &t.role.as_str(),
            &t.tenant_id,
            &t.partner_id,
            &t.name,
            &t.created_at,
        ],
    )
    .await
    .map_err(conflict_on_unique("this token"))?;
    Ok(())
}

pub async fn find_token<C: GenericClient>(c: &C, hash: &[u8; 32]) -> PgResult<Option<TokenRecord>> {
    let row = query_opt(
        c,
        "SELECT id, role, tenant_id, partner_id, name, created_at FROM tokens WHERE hash = $1",
        &[&&hash[..]],
    )
    .await?;
    Ok(row.and_then(|r| {
        Some(TokenRecord {
            id: r.get(0),
            hash: *hash,
            role: Role::parse(r.get(1))?,
            tenant_id: r.get(2),
            partner_id: r.get(3),
            name: r.get(4),
            created_at: r.get(5),
        })
    }))
}

pub async fn has_token_named<C: GenericClient>(c: &C, name: &str) -> PgResult<bool> {
    Ok(
        query_opt(c, "SELECT 1 FROM tokens WHERE name = $1 LIMIT 1", &[&name])
            .await?
            .is_some(),
    )
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

fn integration_row(r: &Row) -> IntegrationRecord {
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
