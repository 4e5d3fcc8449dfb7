//! Retention's store side ([`Upkeep`]): removing expired rows in bounded steps; readiness.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::store::ports::*;
use crate::store::*;

#[async_trait]
impl Upkeep for SqliteStore {
    async fn purge(&self, before: i64, limit: u32) -> StoreResult<PurgeReport> {
        self.write(move |c| purge(c, before, limit)).await
    }
    async fn purge_deleted_tenant(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> StoreResult<Option<u64>> {
        let tenant = tenant.map(str::to_string);
        self.write(move |c| purge_deleted_tenant(c, tenant.as_deref(), limit))
            .await
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

pub fn purge_deleted_tenant(
    c: &Connection,
    tenant: Option<&str>,
    limit: u32,
) -> StoreResult<Option<u64>> {
    let Some(tenant) = c
        .query_row(
            "SELECT tenant_id FROM tenant_purges WHERE ?1 IS NULL OR tenant_id = ?1 LIMIT 1",
            [tenant],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let seqs: Vec<i64> = c
        .prepare_cached("SELECT seq FROM events WHERE tenant_id = ?1 ORDER BY seq LIMIT ?2")
        .and_then(|mut st| {
            st.query_map(params![tenant, limit], |r| r.get(0))?
                .collect()
        })
        .map_err(internal)?;
    let newest: i64 = c
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
        .map_err(internal)?;
    // Every delivery of the event goes, whatever its state: one left behind could be sent
    // again (a partner feed's resend) and find its event gone.
    let mut deliveries = c
        .prepare_cached("DELETE FROM deliveries WHERE event_seq = ?1 RETURNING id")
        .map_err(internal)?;
    let mut attempts = c
        .prepare_cached("DELETE FROM attempts WHERE delivery_id = ?1")
        .map_err(internal)?;
    let mut unqueue = c
        .prepare_cached("DELETE FROM batch_queue WHERE event_seq = ?1")
        .map_err(internal)?;
    let mut delete = c
        .prepare_cached("DELETE FROM events WHERE seq = ?1")
        .map_err(internal)?;
    // The newest event of all keeps its row, emptied and no one's, for the reason `purge`
    // keeps it: its `seq` must not be handed out again.
    let mut blank = c
        .prepare_cached(
            "UPDATE events SET tenant_id = '', id = 'deleted-' || seq, call_id = '', body = '{}',
                ended_at = NULL, license_partner = NULL WHERE seq = ?1",
        )
        .map_err(internal)?;
    for seq in &seqs {
        let ids: Vec<String> = deliveries
            .query_map([seq], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(internal)?;
        for id in &ids {
            attempts.execute([id]).map_err(internal)?;
        }
        unqueue.execute([seq]).map_err(internal)?;
        match *seq == newest {
            true => blank.execute([seq]),
            false => delete.execute([seq]),
        }
        .map_err(internal)?;
    }
    let progress = c
        .prepare_cached(
            "DELETE FROM call_progress WHERE (tenant_id, call_id) IN (
                SELECT tenant_id, call_id FROM call_progress WHERE tenant_id = ?1 LIMIT ?2)",
        )
        .and_then(|mut st| st.execute(params![tenant, limit]))
        .map_err(internal)?;
    if seqs.len() < limit as usize && progress < limit as usize {
        // Nothing is left (one writer: nothing came in meanwhile).
        c.execute("DELETE FROM tenant_purges WHERE tenant_id = ?1", [&tenant])
            .map_err(internal)?;
    }
    Ok(Some((seqs.len() + progress) as u64))
}
