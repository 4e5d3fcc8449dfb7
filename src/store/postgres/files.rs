//! Recording files' records ([`Files`]); each belongs to one tenant.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::*;
use crate::store::ports::*;

#[async_trait]
impl Files for PgStore {
    async fn put_recording(&self, meta: RecordingMeta) -> StoreResult<()> {
        in_tx!(self, |tx| put_recording(&tx, &meta).await?)
    }
    async fn get_recording(
        &self,
        tenant_id: &str,
        file_id: &str,
    ) -> StoreResult<Option<RecordingMeta>> {
        on_conn!(self, |c| get_recording(&c, tenant_id, file_id).await?)
    }
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
