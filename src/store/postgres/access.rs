//! Who may get in ([`Access`]): API tokens (a revocation is told to every node), console
//! sessions ended by signing out, and node settings.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::*;
use crate::model::tenancy::{Role, TokenRecord};
use crate::store::ports::*;

#[async_trait]
impl Access for PgStore {
    async fn create_token(&self, token: TokenRecord) -> StoreResult<()> {
        in_tx!(self, |tx| create_token(&tx, &token).await?)
    }
    async fn find_token(&self, hash: [u8; 32]) -> StoreResult<Option<TokenRecord>> {
        on_conn!(self, |c| find_token(&c, &hash).await?)
    }
    async fn has_token_named(&self, name: &str) -> StoreResult<bool> {
        on_conn!(self, |c| has_token_named(&c, name).await?)
    }
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        on_conn!(self, |c| list_tokens(&c).await?)
    }
    async fn delete_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        in_tx!(self, |tx| {
            let gone = delete_token(&tx, id).await?;
            if gone.is_some() {
                // Not routing-relevant: other nodes forget the token as the notice arrives.
                let change = Change::Token(id.to_string());
                notify_with(&tx, &self.instance, &change, false).await?;
            }
            gone
        })
    }
    async fn end_session(&self, id: &str, expires_at: i64, now: i64) -> StoreResult<()> {
        in_tx!(self, |tx| end_session(&tx, id, expires_at, now).await?)
    }
    async fn session_ended(&self, id: &str) -> StoreResult<bool> {
        on_conn!(self, |c| session_ended(&c, id).await?)
    }
    async fn claim_setting(&self, name: &str, value: Vec<u8>) -> StoreResult<Vec<u8>> {
        in_tx!(self, |tx| claim_setting(&tx, name, &value).await?)
    }
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

pub(super) const TOKEN_COLUMNS: &str = "id, hash, role, tenant_id, partner_id, name, created_at";

pub(super) fn token_row(r: &Row) -> Option<TokenRecord> {
    let hash: Vec<u8> = r.get(1);
    Some(TokenRecord {
        id: r.get(0),
        hash: hash.try_into().ok()?,
        role: Role::parse(r.get(2))?,
        tenant_id: r.get(3),
        partner_id: r.get(4),
        name: r.get(5),
        created_at: r.get(6),
    })
}

pub async fn list_tokens<C: GenericClient>(c: &C) -> PgResult<Vec<TokenRecord>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id");
    Ok(query(c, &sql, &[])
        .await?
        .iter()
        .filter_map(token_row)
        .collect())
}

pub async fn delete_token<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<TokenRecord>> {
    let sql = format!("DELETE FROM tokens WHERE id = $1 RETURNING {TOKEN_COLUMNS}");
    Ok(query_opt(c, &sql, &[&id])
        .await?
        .as_ref()
        .and_then(token_row))
}

pub async fn end_session<C: GenericClient>(
    c: &C,
    id: &str,
    expires_at: i64,
    now: i64,
) -> PgResult<()> {
    // Sessions that have expired need no record: a cookie past its expiry is refused anyway.
    execute(
        c,
        "DELETE FROM ended_sessions WHERE expires_at <= $1",
        &[&now],
    )
    .await?;
    execute(
        c,
        "INSERT INTO ended_sessions (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        &[&id, &expires_at],
    )
    .await?;
    Ok(())
}

pub async fn session_ended<C: GenericClient>(c: &C, id: &str) -> PgResult<bool> {
    Ok(
        query_opt(c, "SELECT 1 FROM ended_sessions WHERE id = $1", &[&id])
            .await?
            .is_some(),
    )
}

pub async fn claim_setting<C: GenericClient>(c: &C, name: &str, value: &[u8]) -> PgResult<Vec<u8>> {
    execute(
        c,
        "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &value],
    )
    .await?;
    query_opt(c, "SELECT value FROM settings WHERE name = $1", &[&name])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::Internal(format!("setting `{name}` vanished")).into())
}
