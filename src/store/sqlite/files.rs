//! Recording files' records ([`Files`]); each belongs to one tenant.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::*;
use crate::store::ports::*;
use crate::store::*;

#[async_trait]
impl Files for SqliteStore {
    async fn put_recording(&self, meta: RecordingMeta) -> StoreResult<()> {
        self.write(move |c| put_recording(c, &meta)).await
    }
    async fn get_recording(
        &self,
        tenant_id: &str,
        file_id: &str,
    ) -> StoreResult<Option<RecordingMeta>> {
        let (tid, id) = (owned(tenant_id), owned(file_id));
        self.read(move |c| get_recording(c, &tid, &id)).await
    }
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
