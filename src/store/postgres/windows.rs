//! Closing batch windows ([`Windows`]): the SQL of [`algo::windows`](crate::store::algo::windows)
//! in one transaction, under an advisory lock per integration, so a second node closing the
//! same boundary waits, then finds it closed.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::events::*;
use super::*;
use crate::model::event::{Event, StoredEvent};
use crate::store::algo::windows::{close_window, WindowSql};
use crate::store::ports::*;

#[async_trait]
impl Windows for PgStore {
    async fn close_window(&self, window: BatchWindow) -> StoreResult<Vec<DispatchJob>> {
        let heads = in_tx!(self, |tx| close_window(&mut Sql(&tx), &window).await?)?;
        on_conn!(self, |c| jobs_with_events(&c, heads, false).await?)
    }
}

/// The window primitives on a transaction.
struct Sql<'c, C>(&'c C);

impl<C: GenericClient + Sync> WindowSql for Sql<'_, C> {
    type Error = PgError;

    async fn last_boundary(&mut self, integration_id: &str) -> PgResult<Option<i64>> {
        let c = self.0;
        lock_keys(c, vec![lock_key("window", integration_id, "")]).await?;
        Ok(query_opt(
            c,
            "SELECT last_boundary FROM batch_windows WHERE integration_id = $1",
            &[&integration_id],
        )
        .await?
        .map(|r| r.get(0)))
    }

    async fn record_boundary(&mut self, integration_id: &str, boundary: i64) -> PgResult<()> {
        execute(
            self.0,
            "INSERT INTO batch_windows (integration_id, last_boundary) VALUES ($1, $2)
             ON CONFLICT (integration_id) DO UPDATE SET last_boundary = excluded.last_boundary",
            &[&integration_id, &boundary],
        )
        .await?;
        Ok(())
    }

    async fn take_queued(
        &mut self,
        integration_id: &str,
        cutoff: i64,
        limit: u32,
    ) -> PgResult<Vec<(i64, i64)>> {
        Ok(query(
            self.0,
            "DELETE FROM batch_queue WHERE integration_id = $1 AND (ended_at, event_seq) IN (
                SELECT ended_at, event_seq FROM batch_queue WHERE integration_id = $1 AND ended_at < $2
                ORDER BY ended_at, event_seq LIMIT $3)
             RETURNING ended_at, event_seq",
            &[&integration_id, &cutoff, &(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }

    async fn events(&mut self, seqs: &[i64]) -> PgResult<Vec<Arc<StoredEvent>>> {
        let events = load_events(self.0, seqs.to_vec(), false).await?;
        seqs.iter().map(|s| event_of(&events, *s)).collect()
    }

    async fn insert_part(
        &mut self,
        w: &BatchWindow,
        part: &Event,
        delivery_id: &str,
    ) -> PgResult<i64> {
        let c = self.0;
        let seq: i64 = query(
            c,
            "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body)
             VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING seq",
            &[
                &part.tenant_id,
                &part.id,
                &part.kind.as_str(),
                &part.call_id,
                &w.now,
                &part.canonical_json(),
            ],
        )
        .await?
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::Internal("batch event not stored".into()))?;
        execute(
            c,
            "INSERT INTO deliveries (id, integration_id, tenant_id, event_seq, call_id, trigger, ordered,
                status, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'cdr.batch', false, 'pending', $6, $7, $8, $6, $6)",
            &[
                &delivery_id,
                &w.integration_id,
                &w.owner,
                &seq,
                &part.call_id,
                &w.now,
                &w.lease.owner.as_ref(),
                &w.lease.until,
            ],
        )
        .await?;
        Ok(seq)
    }
}
