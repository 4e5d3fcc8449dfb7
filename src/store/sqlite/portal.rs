//! Portal links and the sessions they open ([`Portal`]).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::*;
use crate::model::portal::{ids_from_text, ids_to_text, PortalLink, PortalSession};
use crate::model::tenancy::Role;
use crate::store::ports::*;

const SESSION_COLUMNS: &str =
    "id, tenant_id, role, integration_ids, created_at, expires_at, ended_at";

#[async_trait]
impl Portal for SqliteStore {
    async fn create_portal_link(&self, link: PortalLink) -> StoreResult<()> {
        self.write(move |c| create_link(c, &link)).await
    }
    async fn redeem_portal_link(
        &self,
        hash: [u8; 32],
        session_id: &str,
        session_expires_at: i64,
        now: i64,
    ) -> StoreResult<Option<PortalSession>> {
        let sid = owned(session_id);
        self.write(move |c| redeem(c, &hash, &sid, session_expires_at, now))
            .await
    }
    async fn portal_session(&self, id: &str) -> StoreResult<Option<PortalSession>> {
        let id = owned(id);
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {SESSION_COLUMNS} FROM portal_sessions WHERE id = ?1"),
                [&id],
                session_row,
            )
            .optional()
            .map(Option::flatten)
            .map_err(internal)
        })
        .await
    }
    async fn list_portal_sessions(
        &self,
        tenant_id: &str,
        now: i64,
    ) -> StoreResult<Vec<PortalSession>> {
        let tid = owned(tenant_id);
        self.read(move |c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {SESSION_COLUMNS} FROM portal_sessions
                     WHERE tenant_id = ?1 AND expires_at > ?2 ORDER BY created_at DESC, id"
                ))
                .map_err(internal)?;
            let rows = st
                .query_map(params![tid, now], session_row)
                .map_err(internal)?;
            let mut out = Vec::new();
            for r in rows {
                out.extend(r.map_err(internal)?);
            }
            Ok(out)
        })
        .await
    }
    async fn end_portal_access(&self, whose: PortalAccess, now: i64) -> StoreResult<()> {
        self.write(move |c| end_access(c, &whose, now)).await
    }
    async fn end_portal_session(&self, tenant_id: &str, id: &str, now: i64) -> StoreResult<bool> {
        let (tid, id) = (owned(tenant_id), owned(id));
        self.write(move |c| {
            c.execute(
                "UPDATE portal_sessions SET ended_at = ?3
                 WHERE tenant_id = ?1 AND id = ?2 AND ended_at IS NULL",
                params![tid, id, now],
            )
            .map(|n| n > 0)
            .map_err(internal)
        })
        .await
    }
}

fn end_access(c: &Connection, whose: &PortalAccess, now: i64) -> StoreResult<()> {
    let (column, value) = whose.column();
    c.execute(
        &format!("DELETE FROM portal_links WHERE {column} = ?1"),
        [value],
    )
    .map_err(internal)?;
    c.execute(
        &format!(
            "UPDATE portal_sessions SET ended_at = ?2 WHERE {column} = ?1 AND ended_at IS NULL"
        ),
        params![value, now],
    )
    .map_err(internal)?;
    Ok(())
}

fn create_link(c: &Connection, l: &PortalLink) -> StoreResult<()> {
    // Links expire within an hour: those past it are dropped as new ones come.
    c.execute(
        "DELETE FROM portal_links WHERE expires_at <= ?1",
        [l.created_at],
    )
    .map_err(internal)?;
    c.execute(
        "INSERT INTO portal_links
         (hash, tenant_id, role, integration_ids, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            &l.hash[..],
            l.tenant_id,
            l.role.as_str(),
            ids_to_text(&l.integration_ids),
            l.created_by,
            l.created_at,
            l.expires_at
        ],
    )
    .map_err(conflict_on_unique("this link"))?;
    Ok(())
}

fn redeem(
    c: &Connection,
    hash: &[u8; 32],
    sid: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<Option<PortalSession>> {
    let used: Option<(String, String, Option<String>, String)> = c
        .query_row(
            "UPDATE portal_links SET used_at = ?2
             WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2
             RETURNING tenant_id, role, integration_ids, created_by",
            params![&hash[..], now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(internal)?;
    let Some((tenant_id, role, ids, created_by)) = used else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    c.execute(
        "INSERT INTO portal_sessions
         (id, tenant_id, role, integration_ids, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            sid,
            tenant_id,
            role.as_str(),
            ids,
            created_by,
            now,
            expires_at
        ],
    )
    .map_err(internal)?;
    Ok(Some(PortalSession::opened(
        sid, tenant_id, role, ids, now, expires_at,
    )))
}

fn session_row(r: &Row) -> rusqlite::Result<Option<PortalSession>> {
    let role: String = r.get(2)?;
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    Ok(Some(PortalSession {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        role,
        integration_ids: ids_from_text(r.get(3)?),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        ended_at: r.get(6)?,
    }))
}
