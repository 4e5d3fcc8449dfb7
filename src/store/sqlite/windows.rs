//! Closing batch windows ([`Windows`]): the SQL of [`algo::windows`](crate::store::algo::windows),
//! run on the writer's connection, so a window closes in one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::events::*;
use super::*;
use crate::model::event::{Event, StoredEvent};
use crate::store::algo::{self, windows::WindowSql};
use crate::store::ports::*;

#[async_trait]
impl Windows for SqliteStore {
    async fn close_window(&self, window: BatchWindow) -> StoreResult<Vec<DispatchJob>> {
        let heads = self
            .write(move |c| algo::run_now(algo::windows::close_window(&mut Sql(c), &window)))
            .await?;
        self.with_events(heads).await
    }
}

/// The window primitives on the writer's connection (one node: no lock needed).
struct Sql<'c>(&'c Connection);

impl WindowSql for Sql<'_> {
    type Error = StoreError;

    async fn last_boundary(&mut self, integration_id: &str) -> StoreResult<Option<i64>> {
        self.0
            .query_row(
                "SELECT last_boundary FROM batch_windows WHERE integration_id = ?1",
                [integration_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(internal)
    }

    async fn record_boundary(&mut self, integration_id: &str, boundary: i64) -> StoreResult<()> {
        self.0
            .execute(
                "INSERT INTO batch_windows (integration_id, last_boundary) VALUES (?1, ?2)
                 ON CONFLICT (integration_id) DO UPDATE SET last_boundary = excluded.last_boundary",
                params![integration_id, boundary],
            )
            .map(drop)
            .map_err(internal)
    }

    async fn take_queued(
        &mut self,
        integration_id: &str,
        cutoff: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, i64)>> {
        self.0
            .prepare_cached(
                "DELETE FROM batch_queue WHERE integration_id = ?1 AND (ended_at, event_seq) IN (
                    SELECT ended_at, event_seq FROM batch_queue WHERE integration_id = ?1 AND ended_at < ?2
                    ORDER BY ended_at, event_seq LIMIT ?3)
                 RETURNING ended_at, event_seq",
            )
            .and_then(|mut st| {
                st.query_map(params![integration_id, cutoff, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })
            .map_err(internal)
    }

    async fn events(&mut self, seqs: &[i64]) -> StoreResult<Vec<Arc<StoredEvent>>> {
        seqs.iter().map(|seq| load_event(self.0, *seq)).collect()
    }

    async fn insert_part(
        &mut self,
        w: &BatchWindow,
        part: &Event,
        delivery_id: &str,
    ) -> StoreResult<i64> {
        let c = self.0;
        c.prepare_cached(
            "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![part.tenant_id, part.id, part.kind.as_str(), part.call_id, w.now, part.canonical_json()])
        })
        .map_err(internal)?;
        let seq = c.last_insert_rowid();
        c.prepare_cached(
            "INSERT INTO deliveries (id, integration_id, tenant_id, event_seq, call_id, trigger, ordered,
                status, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'cdr.batch', 0, 'pending', ?6, ?7, ?8, ?6, ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![delivery_id, w.integration_id, w.owner, seq, part.call_id, w.now, w.lease.owner.as_ref(), w.lease.until])
        })
        .map_err(internal)?;
        Ok(seq)
    }
}
