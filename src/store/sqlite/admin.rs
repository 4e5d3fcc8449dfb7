//! Partners, tenants, tokens and integrations: small writes and reads.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::internal;
use crate::model::tenancy::{Partner, Role, Tenant, TokenRecord};
use crate::store::{
    IntegrationHealth, IntegrationRecord, IntegrationStatus, StoreError, StoreResult,
};

fn conflict_on_unique(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(format!("{what} already exists"))
        }
        other => internal(other),
    }
}

pub fn create_partner(c: &Connection, p: &Partner) -> StoreResult<()> {
    c.execute(
        "INSERT INTO partners (id, name, created_at) VALUES (?1, ?2, ?3)",
        params![p.id, p.name, p.created_at],
    )
    .map_err(conflict_on_unique("a partner with this id"))?;
    Ok(())
}

pub fn get_partner(c: &Connection, id: &str) -> StoreResult<Option<Partner>> {
    c.query_row(
        "SELECT id, name, created_at FROM partners WHERE id = ?1",
        [id],
        |r| {
            Ok(Partner {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(internal)
}

pub fn create_tenant(c: &Connection, t: &Tenant) -> StoreResult<()> {
    c.execute(
        "INSERT INTO tenants (id, name, partner_id, max_integrations, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            t.id,
            t.name,
            t.partner_id,
            t.max_integrations,
            t.created_at,
            t.updated_at
        ],
    )
    .map_err(conflict_on_unique("a tenant with this id"))?;
    Ok(())
}

fn tenant_row(r: &Row) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        partner_id: r.get(2)?,
        max_integrations: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

pub fn get_tenant(c: &Connection, id: &str) -> StoreResult<Option<Tenant>> {
    c.query_row(
        "SELECT id, name, partner_id, max_integrations, created_at, updated_at FROM tenants WHERE id = ?1",
        [id],
        tenant_row,
    )
    .optional()
    .map_err(internal)
}

pub fn update_tenant(c: &Connection, t: &Tenant) -> StoreResult<()> {
    let n = c
        .execute(
            "UPDATE tenants SET name = ?2, partner_id = ?3, max_integrations = ?4, updated_at = ?5 WHERE id = ?1",
            params![t.id, t.name, t.partner_id, t.max_integrations, t.updated_at],
        )
        .map_err(internal)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn delete_tenant(c: &Connection, id: &str) -> StoreResult<bool> {
    let n = c
        .execute("DELETE FROM tenants WHERE id = ?1", [id])
        .map_err(internal)?;
    if n == 0 {
        return Ok(false);
    }
    c.execute("DELETE FROM tokens WHERE tenant_id = ?1", [id])
        .map_err(internal)?;
    let ids: Vec<String> = {
        let mut st = c
            .prepare("SELECT id FROM integrations WHERE tenant_id = ?1")
            .map_err(internal)?;
        let rows = st.query_map([id], |r| r.get(0)).map_err(internal)?;
        rows.collect::<Result<_, _>>().map_err(internal)?
    };
    for iid in ids {
        delete_integration(c, &iid)?;
    }
    // Its recordings go with it (the caller removes their files): a new tenant of the same id
    // inherits nothing.
    c.execute("DELETE FROM recordings WHERE tenant_id = ?1", [id])
        .map_err(internal)?;
    Ok(true)
}

pub fn create_token(c: &Connection, t: &TokenRecord) -> StoreResult<()> {
    c.execute(
        "INSERT INTO tokens (id, hash, role, tenant_id, partner_id, name, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.id,
            &t.hash[..],
            t.role.as_str(),
            t.tenant_id,
            t.partner_id,
            t.name,
            t.created_at
        ],
    )
    .map_err(conflict_on_unique("this token"))?;
    Ok(())
}

pub fn find_token(c: &Connection, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
    let row = c
        .query_row(
            "SELECT id, role, tenant_id, partner_id, name, created_at FROM tokens WHERE hash = ?1",
            [&hash[..]],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()
        .map_err(internal)?;
    Ok(
        row.and_then(|(id, role, tenant_id, partner_id, name, created_at)| {
            Some(TokenRecord {
                id,
                hash: *hash,
                role: Role::parse(&role)?,
                tenant_id,
                partner_id,
                name,
                created_at,
            })
        }),
    )
}

pub fn has_token_named(c: &Connection, name: &str) -> StoreResult<bool> {
    c.query_row(
        "SELECT 1 FROM tokens WHERE name = ?1 LIMIT 1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
    .map_err(internal)
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

fn select_integrations(c: &Connection, id: Option<&str>) -> StoreResult<Vec<IntegrationRecord>> {
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
