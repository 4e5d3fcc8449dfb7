//! Partners and tenants ([`Tenancy`]).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::catalog::delete_integration;
use super::*;
use crate::model::tenancy::{Partner, Tenant};
use crate::store::ports::*;
use crate::store::*;

#[async_trait]
impl Tenancy for SqliteStore {
    async fn create_partner(&self, partner: Partner) -> StoreResult<()> {
        self.write(move |c| create_partner(c, &partner)).await
    }
    async fn get_partner(&self, id: &str) -> StoreResult<Option<Partner>> {
        let id = owned(id);
        self.read(move |c| get_partner(c, &id)).await
    }
    async fn update_partner(&self, partner: Partner) -> StoreResult<bool> {
        self.write(move |c| update_partner(c, &partner)).await
    }
    async fn set_partner_logo(
        &self,
        id: &str,
        logo: Option<(String, Vec<u8>)>,
    ) -> StoreResult<bool> {
        let id = owned(id);
        self.write(move |c| {
            set_partner_logo(
                c,
                &id,
                logo.as_ref().map(|(t, b)| (t.as_str(), b.as_slice())),
            )
        })
        .await
    }
    async fn partner_logo(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        let id = owned(id);
        self.read(move |c| partner_logo(c, &id)).await
    }
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        self.write(move |c| create_tenant(c, &tenant)).await
    }
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let id = owned(id);
        self.read(move |c| get_tenant(c, &id)).await
    }
    async fn update_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        self.write(move |c| update_tenant(c, &tenant)).await
    }
    async fn delete_tenant(&self, id: &str) -> StoreResult<bool> {
        let id = owned(id);
        self.write(move |c| delete_tenant(c, &id)).await
    }
}

pub fn create_partner(c: &Connection, p: &Partner) -> StoreResult<()> {
    c.execute(
        "INSERT INTO partners (id, name, created_at, frame_ancestors, brand)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            p.id,
            p.name,
            p.created_at,
            list_text(&p.frame_ancestors),
            brand_text(&p.brand)
        ],
    )
    .map_err(conflict_on_unique("a partner with this id"))?;
    Ok(())
}

pub fn get_partner(c: &Connection, id: &str) -> StoreResult<Option<Partner>> {
    c.query_row(
        "SELECT id, name, created_at, frame_ancestors, brand, logo_type FROM partners WHERE id = ?1",
        [id],
        |r| {
            Ok(Partner {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                frame_ancestors: list_from(r.get(3)?),
                brand: brand_from(r.get(4)?, r.get(5)?),
            })
        },
    )
    .optional()
    .map_err(internal)
}

pub fn update_partner(c: &Connection, p: &Partner) -> StoreResult<bool> {
    c.execute(
        "UPDATE partners SET name = ?2, frame_ancestors = ?3, brand = ?4 WHERE id = ?1",
        params![
            p.id,
            p.name,
            list_text(&p.frame_ancestors),
            brand_text(&p.brand)
        ],
    )
    .map(|n| n > 0)
    .map_err(internal)
}

pub fn set_partner_logo(
    c: &Connection,
    id: &str,
    logo: Option<(&str, &[u8])>,
) -> StoreResult<bool> {
    c.execute(
        "UPDATE partners SET logo_type = ?2, logo = ?3 WHERE id = ?1",
        params![id, logo.map(|(t, _)| t), logo.map(|(_, b)| b)],
    )
    .map(|n| n > 0)
    .map_err(internal)
}

pub fn partner_logo(c: &Connection, id: &str) -> StoreResult<Option<Vec<u8>>> {
    c.query_row("SELECT logo FROM partners WHERE id = ?1", [id], |r| {
        r.get::<_, Option<Vec<u8>>>(0)
    })
    .optional()
    .map(Option::flatten)
    .map_err(internal)
}

use crate::store::shared::{brand_from, brand_text};

fn list_text(list: &[String]) -> Option<String> {
    (!list.is_empty()).then(|| serde_json::to_string(list).unwrap_or_default())
}

fn list_from(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn create_tenant(c: &Connection, t: &Tenant) -> StoreResult<()> {
    let purging = c
        .query_row(
            "SELECT 1 FROM tenant_purges WHERE tenant_id = ?1",
            [&t.id],
            |_| Ok(()),
        )
        .optional()
        .map_err(internal)?;
    if purging.is_some() {
        return Err(StoreError::Conflict(crate::store::shared::purging_tenant(
            &t.id,
        )));
    }
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

pub(super) fn tenant_row(r: &Row) -> rusqlite::Result<Tenant> {
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
    for table in ["portal_links", "portal_sessions"] {
        c.execute(&format!("DELETE FROM {table} WHERE tenant_id = ?1"), [id])
            .map_err(internal)?;
    }
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
    // Its recordings go with it (the caller removes their files), and its call data in steps
    // (`upkeep::purge_deleted_tenant`) that keep its id taken until they are done: a new tenant
    // of the same id inherits nothing.
    c.execute("DELETE FROM recordings WHERE tenant_id = ?1", [id])
        .map_err(internal)?;
    c.execute(
        "INSERT OR IGNORE INTO tenant_purges (tenant_id) VALUES (?1)",
        [id],
    )
    .map_err(internal)?;
    Ok(true)
}
