//! Partners and tenants ([`Tenancy`]); a tenant's edit or deletion is a configuration change
//! every node is told about.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::catalog::delete_integration;
use super::*;
use crate::model::tenancy::{Partner, Tenant};
use crate::store::ports::*;

#[async_trait]
impl Tenancy for PgStore {
    async fn create_partner(&self, partner: Partner) -> StoreResult<()> {
        in_tx!(self, |tx| create_partner(&tx, &partner).await?)
    }
    async fn get_partner(&self, id: &str) -> StoreResult<Option<Partner>> {
        on_conn!(self, |c| get_partner(&c, id).await?)
    }
    async fn update_partner(&self, partner: Partner) -> StoreResult<bool> {
        in_tx!(self, |tx| update_partner(&tx, &partner).await?)
    }
    async fn set_partner_logo(
        &self,
        id: &str,
        logo: Option<(String, Vec<u8>)>,
    ) -> StoreResult<bool> {
        in_tx!(self, |tx| set_partner_logo(
            &tx,
            id,
            logo.as_ref().map(|(t, b)| (t.as_str(), b.as_slice()))
        )
        .await?)
    }
    async fn partner_logo(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        on_conn!(self, |c| partner_logo(&c, id).await?)
    }
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        in_tx!(self, |tx| create_tenant(&tx, &tenant).await?)
    }
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        on_conn!(self, |c| get_tenant(&c, id).await?)
    }
    async fn update_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            update_tenant(&tx, &tenant).await?;
            notify(&tx, &self.instance, &Change::Tenant(tenant.id.clone())).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
    async fn delete_tenant(&self, id: &str) -> StoreResult<bool> {
        let versions = in_tx!(self, |tx| {
            let mut versions = Vec::new();
            if let Some(integrations) = delete_tenant(&tx, id).await? {
                for iid in integrations {
                    versions.push(notify(&tx, &self.instance, &Change::Integration(iid)).await?);
                }
                versions.push(notify(&tx, &self.instance, &Change::Tenant(id.to_string())).await?);
            }
            versions
        })?;
        if let (Some(first), Some(last)) = (versions.first(), versions.last()) {
            self.own_committed(*first, *last);
        }
        Ok(!versions.is_empty())
    }
}

pub async fn create_partner<C: GenericClient>(c: &C, p: &Partner) -> PgResult<()> {
    execute(
        c,
        "INSERT INTO partners (id, name, created_at, frame_ancestors, brand)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &p.id,
            &p.name,
            &p.created_at,
            &list_text(&p.frame_ancestors),
            &brand_text(&p.brand),
        ],
    )
    .await
    .map_err(conflict_on_unique("a partner with this id"))?;
    Ok(())
}

pub async fn get_partner<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<Partner>> {
    Ok(query_opt(
        c,
        "SELECT id, name, created_at, frame_ancestors, brand, logo_type FROM partners WHERE id = $1",
        &[&id],
    )
    .await?
    .map(|r| Partner {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
        frame_ancestors: list_from(r.get(3)),
        brand: brand_from(r.get(4), r.get(5)),
    }))
}

pub async fn update_partner<C: GenericClient>(c: &C, p: &Partner) -> PgResult<bool> {
    Ok(execute(
        c,
        "UPDATE partners SET name = $2, frame_ancestors = $3, brand = $4 WHERE id = $1",
        &[
            &p.id,
            &p.name,
            &list_text(&p.frame_ancestors),
            &brand_text(&p.brand),
        ],
    )
    .await?
        > 0)
}

pub async fn set_partner_logo<C: GenericClient>(
    c: &C,
    id: &str,
    logo: Option<(&str, &[u8])>,
) -> PgResult<bool> {
    Ok(execute(
        c,
        "UPDATE partners SET logo_type = $2, logo = $3 WHERE id = $1",
        &[&id, &logo.map(|(t, _)| t), &logo.map(|(_, b)| b)],
    )
    .await?
        > 0)
}

pub async fn partner_logo<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<Vec<u8>>> {
    Ok(
        query_opt(c, "SELECT logo FROM partners WHERE id = $1", &[&id])
            .await?
            .and_then(|r| r.get::<_, Option<Vec<u8>>>(0)),
    )
}

use crate::store::shared::{brand_from, brand_text};

fn list_text(list: &[String]) -> Option<String> {
    (!list.is_empty()).then(|| serde_json::to_string(list).unwrap_or_default())
}

fn list_from(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
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
    // Looked at after the insert, in its transaction: an insert that waited for a deletion of
    // the same id to commit sees that deletion's reservation here, and is undone.
    let purging = query_opt(
        c,
        "SELECT 1 FROM tenant_purges WHERE tenant_id = $1",
        &[&t.id],
    )
    .await?;
    if purging.is_some() {
        return Err(StoreError::Conflict(crate::store::shared::purging_tenant(&t.id)).into());
    }
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
    execute(c, "DELETE FROM portal_links WHERE tenant_id = $1", &[&id]).await?;
    execute(
        c,
        "DELETE FROM portal_sessions WHERE tenant_id = $1",
        &[&id],
    )
    .await?;
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
    // Its recordings go with it (the caller removes their files), and its call data in steps
    // (`upkeep::purge_deleted_tenant`) that keep its id taken until they are done: a new tenant
    // of the same id inherits nothing.
    execute(c, "DELETE FROM recordings WHERE tenant_id = $1", &[&id]).await?;
    execute(
        c,
        "INSERT INTO tenant_purges (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&id],
    )
    .await?;
    Ok(Some(ids))
}
