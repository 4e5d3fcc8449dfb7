//! Retention's store side ([`Upkeep`]): one node purges at a time, in bounded steps; readiness.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::files::recording_row;
use super::*;
use crate::store::ports::*;

#[async_trait]
impl Upkeep for PgStore {
    async fn purge(&self, before: i64, limit: u32) -> StoreResult<PurgeReport> {
        in_tx!(self, |tx| purge(&tx, before, limit).await?)
    }
    async fn purge_deleted_tenant(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> StoreResult<Option<u64>> {
        in_tx!(self, |tx| purge_deleted_tenant(&tx, tenant, limit).await?)
    }
    async fn ping(&self) -> StoreResult<()> {
        on_conn!(self, |c| {
            query(&c, "SELECT 1", &[]).await?;
        })
    }
}

/// Held while purging: one node purges at a time (the others skip their turn).
pub(super) const PURGE_LOCK: i64 = 0x7075_7267_6500_0001;

/// One step of retention, by whichever node holds the purge lock; the others find it taken
/// and report nothing to do this time.
pub async fn purge<C: GenericClient>(c: &C, before: i64, limit: u32) -> PgResult<PurgeReport> {
    let mut report = PurgeReport::default();
    let got: bool = query(c, "SELECT pg_try_advisory_xact_lock($1)", &[&PURGE_LOCK])
        .await?
        .first()
        .map(|r| r.get(0))
        .unwrap_or(false);
    if !got {
        return Ok(report);
    }
    let limit = limit as i64;
    let bound = crate::store::shared::delivery_id_bound(before);
    let ids: Vec<String> = query(
        c,
        "DELETE FROM deliveries WHERE id IN (
            SELECT id FROM deliveries WHERE id < $1 AND status NOT IN ('pending', 'blocked') LIMIT $2)
         RETURNING id",
        &[&bound, &limit],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    report.deliveries = ids.len() as u64;
    report.attempts = execute(
        c,
        "DELETE FROM attempts WHERE delivery_id = ANY($1)",
        &[&ids],
    )
    .await?;
    report.events = execute(
        c,
        "DELETE FROM events WHERE seq IN (
            SELECT seq FROM events e WHERE e.ingested_at < $1
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)
              AND NOT EXISTS (SELECT 1 FROM batch_queue q WHERE q.event_seq = e.seq)
            ORDER BY e.ingested_at LIMIT $2)",
        &[&before, &limit],
    )
    .await?;
    execute(
        c,
        "DELETE FROM call_progress WHERE (tenant_id, call_id) IN (
            SELECT tenant_id, call_id FROM call_progress WHERE updated_at < $1 LIMIT $2)",
        &[&before, &limit],
    )
    .await?;
    report.recordings = query(
        c,
        "DELETE FROM recordings WHERE (tenant_id, file_id) IN (
            SELECT tenant_id, file_id FROM recordings WHERE created_at < $1 ORDER BY created_at LIMIT $2)
         RETURNING file_id, tenant_id, content_type, bytes, sha256, created_at",
        &[&before, &limit],
    )
    .await?
    .iter()
    .map(recording_row)
    .collect();
    Ok(report)
}

pub async fn purge_deleted_tenant<C: GenericClient>(
    c: &C,
    tenant: Option<&str>,
    limit: u32,
) -> PgResult<Option<u64>> {
    let Some(row) = query_opt(
        c,
        "SELECT tenant_id FROM tenant_purges WHERE $1::text IS NULL OR tenant_id = $1 LIMIT 1",
        &[&tenant],
    )
    .await?
    else {
        return Ok(None);
    };
    let tenant: String = row.get(0);
    let limit = limit as i64;
    let seqs: Vec<i64> = query(
        c,
        "SELECT seq FROM events WHERE tenant_id = $1 LIMIT $2",
        &[&tenant, &limit],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    // Every delivery of the event goes, whatever its state: one left behind could be sent
    // again (a partner feed's resend) and find its event gone.
    let ids: Vec<String> = query(
        c,
        "DELETE FROM deliveries WHERE event_seq = ANY($1) RETURNING id",
        &[&seqs],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    execute(
        c,
        "DELETE FROM attempts WHERE delivery_id = ANY($1)",
        &[&ids],
    )
    .await?;
    execute(
        c,
        "DELETE FROM batch_queue WHERE event_seq = ANY($1)",
        &[&seqs],
    )
    .await?;
    // A `seq` comes from a sequence, never handed out twice: every row can go.
    execute(c, "DELETE FROM events WHERE seq = ANY($1)", &[&seqs]).await?;
    let progress = execute(
        c,
        "DELETE FROM call_progress WHERE (tenant_id, call_id) IN (
            SELECT tenant_id, call_id FROM call_progress WHERE tenant_id = $1 LIMIT $2)",
        &[&tenant, &limit],
    )
    .await?;
    if (seqs.len() as i64) < limit && (progress as i64) < limit {
        execute(
            c,
            "DELETE FROM tenant_purges WHERE tenant_id = $1",
            &[&tenant],
        )
        .await?;
    }
    Ok(Some(seqs.len() as u64 + progress))
}
