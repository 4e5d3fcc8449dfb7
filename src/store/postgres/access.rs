//! Who may get in and what they may open, on PostgreSQL: tokens (listed, revoked), console
//! sessions ended by signing out, recording files (each belongs to one tenant) and node
//! settings.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{execute, query, query_opt, PgResult};
use crate::model::tenancy::{Role, TokenRecord};
use crate::store::{RecordingMeta, StoreError};

const TOKEN_COLUMNS: &str = "id, hash, role, tenant_id, partner_id, name, created_at";

fn token_row(r: &Row) -> Option<TokenRecord> {
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

/// Stores an uploaded file's record; uploading the same id again (same tenant) replaces it.
pub async fn put_recording<C: GenericClient>(c: &C, m: &RecordingMeta) -> PgResult<()> {
    let bytes = m.bytes as i64;
    execute(
        c,
        "INSERT INTO recordings (file_id, tenant_id, content_type, bytes, sha256, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, file_id) DO UPDATE SET content_type = excluded.content_type,
            bytes = excluded.bytes, sha256 = excluded.sha256, created_at = excluded.created_at",
        &[
            &m.file_id,
            &m.tenant_id,
            &m.content_type,
            &bytes,
            &m.sha256,
            &m.created_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn get_recording<C: GenericClient>(
    c: &C,
    tenant_id: &str,
    file_id: &str,
) -> PgResult<Option<RecordingMeta>> {
    Ok(query_opt(
        c,
        "SELECT file_id, tenant_id, content_type, bytes, sha256, created_at FROM recordings
         WHERE tenant_id = $1 AND file_id = $2",
        &[&tenant_id, &file_id],
    )
    .await?
    .map(|r| recording_row(&r)))
}

/// Columns `file_id, tenant_id, content_type, bytes, sha256, created_at`.
pub fn recording_row(r: &Row) -> RecordingMeta {
    RecordingMeta {
        file_id: r.get(0),
        tenant_id: r.get(1),
        content_type: r.get(2),
        bytes: r.get::<_, i64>(3) as u64,
        sha256: r.get(4),
        created_at: r.get(5),
    }
}
