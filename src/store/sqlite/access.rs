//! Who may get in and what they may open: tokens (listed, revoked), console sessions ended by
//! signing out, recording files (each belongs to one tenant) and node settings.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::internal;
use crate::model::tenancy::{Role, TokenRecord};
use crate::store::{RecordingMeta, StoreResult};

const TOKEN_COLUMNS: &str = "id, hash, role, tenant_id, partner_id, name, created_at";

fn token_row(r: &Row) -> rusqlite::Result<Option<TokenRecord>> {
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

/// Stores an uploaded file's record; uploading the same id again (same tenant) replaces it.
pub fn put_recording(c: &Connection, m: &RecordingMeta) -> StoreResult<()> {
    c.execute(
        "INSERT INTO recordings (file_id, tenant_id, content_type, bytes, sha256, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant_id, file_id) DO UPDATE SET content_type = excluded.content_type,
            bytes = excluded.bytes, sha256 = excluded.sha256, created_at = excluded.created_at",
        params![
            m.file_id,
            m.tenant_id,
            m.content_type,
            m.bytes,
            m.sha256,
            m.created_at
        ],
    )
    .map_err(internal)?;
    Ok(())
}

pub fn get_recording(
    c: &Connection,
    tenant_id: &str,
    file_id: &str,
) -> StoreResult<Option<RecordingMeta>> {
    c.query_row(
        "SELECT file_id, tenant_id, content_type, bytes, sha256, created_at FROM recordings
         WHERE tenant_id = ?1 AND file_id = ?2",
        [tenant_id, file_id],
        recording_row,
    )
    .optional()
    .map_err(internal)
}

/// Columns `file_id, tenant_id, content_type, bytes, sha256, created_at`.
pub(super) fn recording_row(r: &Row) -> rusqlite::Result<RecordingMeta> {
    Ok(RecordingMeta {
        file_id: r.get(0)?,
        tenant_id: r.get(1)?,
        content_type: r.get(2)?,
        bytes: r.get(3)?,
        sha256: r.get(4)?,
        created_at: r.get(5)?,
    })
}
