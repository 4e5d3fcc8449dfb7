//! Who may get in ([`Access`]): API tokens (created, found, listed, revoked), console sessions
//! ended by signing out, and node settings.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::*;
use crate::model::tenancy::{Role, TokenRecord};
use crate::store::ports::*;
use crate::store::*;

#[async_trait]
impl Access for SqliteStore {
    async fn create_token(&self, token: TokenRecord) -> StoreResult<()> {
        self.write(move |c| create_token(c, &token)).await
    }
    async fn find_token(&self, hash: [u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.read(move |c| find_token(c, &hash)).await
    }
    async fn has_token_named(&self, name: &str) -> StoreResult<bool> {
        let name = owned(name);
        self.read(move |c| has_token_named(c, &name)).await
    }
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        self.read(access::list_tokens).await
    }
    async fn delete_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        let id = owned(id);
        self.write(move |c| delete_token(c, &id)).await
    }
    async fn end_session(&self, id: &str, expires_at: i64, now: i64) -> StoreResult<()> {
        let id = owned(id);
        self.write(move |c| end_session(c, &id, expires_at, now))
            .await
    }
    async fn session_ended(&self, id: &str) -> StoreResult<bool> {
        let id = owned(id);
        self.read(move |c| session_ended(c, &id)).await
    }
    async fn claim_setting(&self, name: &str, value: Vec<u8>) -> StoreResult<Vec<u8>> {
        let name = owned(name);
        self.write(move |c| claim_setting(c, &name, &value)).await
    }
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

pub(super) const TOKEN_COLUMNS: &str = "id, hash, role, tenant_id, partner_id, name, created_at";

pub(super) fn token_row(r: &Row) -> rusqlite::Result<Option<TokenRecord>> {
    let hash: Vec<u8> = r.get(1)?;
    let role: String = r.get(2)?;
    let (Ok(hash), Some(role)) = (<[u8; 32]>::try_from(hash), Role::parse(&role)) else {
        return Ok(None);
    };
    Ok(Some(TokenRecord {
        id: r.get(0)?,
        hash,
        role,
        tenant_id: r.get(3)?,
        partner_id: r.get(4)?,
        name: r.get(5)?,
        created_at: r.get(6)?,
    }))
}

pub fn list_tokens(c: &Connection) -> StoreResult<Vec<TokenRecord>> {
    let mut st = c
        .prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
        ))
        .map_err(internal)?;
    let rows = st.query_map([], token_row).map_err(internal)?;
    let all: Vec<Option<TokenRecord>> = rows.collect::<Result<_, _>>().map_err(internal)?;
    Ok(all.into_iter().flatten().collect())
}

pub fn delete_token(c: &Connection, id: &str) -> StoreResult<Option<TokenRecord>> {
    c.query_row(
        &format!("DELETE FROM tokens WHERE id = ?1 RETURNING {TOKEN_COLUMNS}"),
        [id],
        token_row,
    )
    .optional()
    .map(Option::flatten)
    .map_err(internal)
}

pub fn end_session(c: &Connection, id: &str, expires_at: i64, now: i64) -> StoreResult<()> {
    // Sessions that have expired need no record: a cookie past its expiry is refused anyway.
    c.execute("DELETE FROM ended_sessions WHERE expires_at <= ?1", [now])
        .map_err(internal)?;
    c.execute(
        "INSERT OR IGNORE INTO ended_sessions (id, expires_at) VALUES (?1, ?2)",
        params![id, expires_at],
    )
    .map_err(internal)?;
    Ok(())
}

pub fn session_ended(c: &Connection, id: &str) -> StoreResult<bool> {
    c.query_row("SELECT 1 FROM ended_sessions WHERE id = ?1", [id], |_| {
        Ok(())
    })
    .optional()
    .map(|r| r.is_some())
    .map_err(internal)
}

pub fn claim_setting(c: &Connection, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
    c.execute(
        "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
        params![name, value],
    )
    .map_err(internal)?;
    c.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .map_err(internal)
}
