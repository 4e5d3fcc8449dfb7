//! Retention's store side ([`Upkeep`]): removing expired rows in bounded steps; readiness.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::*;
use crate::store::ports::*;
use crate::store::*;

#[async_trait]
impl Upkeep for SqliteStore {
    async fn purge(&self, before: i64, limit: u32) -> StoreResult<PurgeReport> {
        self.write(move |c| purge(c, before, limit)).await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(internal))
            .await?;
        self.write(|_| Ok(())).await
    }
}

pub fn purge(c: &Connection, before: i64, limit: u32) -> StoreResult<PurgeReport> {
    let mut report = PurgeReport::default();
    let ids: Vec<String> = c
        .prepare_cached(
            "DELETE FROM deliveries WHERE id IN (
                SELECT id FROM deliveries WHERE id < ?1 AND status NOT IN ('pending', 'blocked') LIMIT ?2)
             RETURNING id",
        )
        .and_then(|mut st| st.query_map(params![crate::store::shared::delivery_id_bound(before), limit], |r| r.get(0))?.collect())
        .map_err(internal)?;
    report.deliveries = ids.len() as u64;
    let mut del_attempts = c
        .prepare_cached("DELETE FROM attempts WHERE delivery_id = ?1")
        .map_err(internal)?;
    for id in &ids {
        report.attempts += del_attempts.execute([id]).map_err(internal)? as u64;
    }
    // The newest event stays: SQLite gives a new row the largest `seq` plus one, so removing it
    // would hand its `seq` out again, and a live stream's cursor past it would skip new events.
    report.events = c
        .prepare_cached(
            "DELETE FROM events WHERE seq IN (
                SELECT seq FROM events e WHERE e.ingested_at < ?1
                  AND e.seq < (SELECT MAX(seq) FROM events)
                  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)
                  AND NOT EXISTS (SELECT 1 FROM batch_queue q WHERE q.event_seq = e.seq)
                ORDER BY e.ingested_at LIMIT ?2)",
        )
        .and_then(|mut st| st.execute(params![before, limit]))
        .map_err(internal)? as u64;
    // A call quiet for the whole retention period is over: its progress is not needed.
    c.prepare_cached(
        "DELETE FROM call_progress WHERE (tenant_id, call_id) IN (
            SELECT tenant_id, call_id FROM call_progress WHERE updated_at < ?1 LIMIT ?2)",
    )
    .and_then(|mut st| st.execute(params![before, limit]))
    .map_err(internal)?;
    report.recordings = c
        .prepare_cached(
            "DELETE FROM recordings WHERE (tenant_id, file_id) IN (
                SELECT tenant_id, file_id FROM recordings WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)
             RETURNING file_id, tenant_id, content_type, bytes, sha256, created_at",
        )
        .and_then(|mut st| {
            st.query_map(params![before, limit], super::files::recording_row)?
                .collect()
        })
        .map_err(internal)?;
    Ok(report)
}
