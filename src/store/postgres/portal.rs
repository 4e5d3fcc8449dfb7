//! Portal links and the sessions they open ([`Portal`]).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::*;
use crate::model::portal::{ids_from_text, ids_to_text, PortalLink, PortalSession};
use crate::model::tenancy::Role;
use crate::store::ports::*;

const SESSION_COLUMNS: &str =
    "id, tenant_id, role, integration_ids, created_at, expires_at, ended_at";

#[async_trait]
impl Portal for PgStore {
    async fn create_portal_link(&self, link: PortalLink) -> StoreResult<()> {
        in_tx!(self, |tx| create_link(&tx, &link).await?)
    }
    async fn redeem_portal_link(
        &self,
        hash: [u8; 32],
        session_id: &str,
        session_expires_at: i64,
        now: i64,
    ) -> StoreResult<Option<PortalSession>> {
        in_tx!(self, |tx| redeem(
            &tx,
            &hash,
            session_id,
            session_expires_at,
            now
        )
        .await?)
    }
    async fn portal_session(&self, id: &str) -> StoreResult<Option<PortalSession>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM portal_sessions WHERE id = $1");
        on_conn!(self, |c| query_opt(&c, &sql, &[&id])
            .await?
            .as_ref()
            .and_then(session_row))
    }
    async fn list_portal_sessions(
        &self,
        tenant_id: &str,
        now: i64,
    ) -> StoreResult<Vec<PortalSession>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM portal_sessions
             WHERE tenant_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id"
        );
        on_conn!(self, |c| query(&c, &sql, &[&tenant_id, &now])
            .await?
            .iter()
            .filter_map(session_row)
            .collect::<Vec<_>>())
    }
    async fn end_portal_access(&self, whose: PortalAccess, now: i64) -> StoreResult<()> {
        in_tx!(self, |tx| end_access(&tx, &whose, now).await?)
    }
    async fn end_portal_session(&self, tenant_id: &str, id: &str, now: i64) -> StoreResult<bool> {
        in_tx!(self, |tx| execute(
            &tx,
            "UPDATE portal_sessions SET ended_at = $3
             WHERE tenant_id = $1 AND id = $2 AND ended_at IS NULL",
            &[&tenant_id, &id, &now],
        )
        .await?
            > 0)
    }
}

async fn end_access<C: GenericClient>(c: &C, whose: &PortalAccess, now: i64) -> PgResult<()> {
    let (column, value) = whose.column();
    execute(
        c,
        &format!("DELETE FROM portal_links WHERE {column} = $1"),
        &[&value],
    )
    .await?;
    execute(
        c,
        &format!(
            "UPDATE portal_sessions SET ended_at = $2 WHERE {column} = $1 AND ended_at IS NULL"
        ),
        &[&value, &now],
    )
    .await?;
    Ok(())
}

async fn create_link<C: GenericClient>(c: &C, l: &PortalLink) -> PgResult<()> {
    // Links expire within an hour: those past it are dropped as new ones come.
    execute(
        c,
        "DELETE FROM portal_links WHERE expires_at <= $1",
        &[&l.created_at],
    )
    .await?;
    execute(
        c,
        "INSERT INTO portal_links
         (hash, tenant_id, role, integration_ids, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &&l.hash[..],
            &l.tenant_id,
            &l.role.as_str(),
            &ids_to_text(&l.integration_ids),
            &l.created_by,
            &l.created_at,
            &l.expires_at,
        ],
    )
    .await?;
    Ok(())
}

async fn redeem<C: GenericClient>(
    c: &C,
    hash: &[u8; 32],
    sid: &str,
    expires_at: i64,
    now: i64,
) -> PgResult<Option<PortalSession>> {
    let used = query_opt(
        c,
        "UPDATE portal_links SET used_at = $2
         WHERE hash = $1 AND used_at IS NULL AND expires_at > $2
         RETURNING tenant_id, role, integration_ids, created_by",
        &[&&hash[..], &now],
    )
    .await?;
    let Some(row) = used else {
        return Ok(None);
    };
    let (tenant_id, role, ids, created_by): (String, String, Option<String>, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    execute(
        c,
        "INSERT INTO portal_sessions
         (id, tenant_id, role, integration_ids, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &sid,
            &tenant_id,
            &role.as_str(),
            &ids,
            &created_by,
            &now,
            &expires_at,
        ],
    )
    .await?;
    Ok(Some(PortalSession::opened(
        sid, tenant_id, role, ids, now, expires_at,
    )))
}

fn session_row(r: &Row) -> Option<PortalSession> {
    Some(PortalSession {
        id: r.get(0),
        tenant_id: r.get(1),
        role: Role::parse(r.get::<_, &str>(2))?,
        integration_ids: ids_from_text(r.get(3)),
        created_at: r.get(4),
        expires_at: r.get(5),
        ended_at: r.get(6),
    })
}
