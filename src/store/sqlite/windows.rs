//! Closing batch windows ([`Windows`]): queued calls become the parts of a batch, atomically.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::model::event::EventKind;
use crate::store::ports::*;
use crate::store::*;

use super::events::*;
use crate::store::shared::{fresh_head, BATCH_WINDOW_ITEMS};

#[async_trait]
impl Windows for SqliteStore {
    async fn close_window(&self, window: BatchWindow) -> StoreResult<Vec<DispatchJob>> {
        let heads = self.write(move |c| close_window(c, window)).await?;
        self.with_events(heads).await
    }
}

pub fn close_window(c: &Connection, w: BatchWindow) -> StoreResult<Vec<Claimed>> {
    let last: Option<i64> = c
        .query_row(
            "SELECT last_boundary FROM batch_windows WHERE integration_id = ?1",
            [&w.integration_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?;
    if last.is_some_and(|l| l >= w.boundary) {
        return Ok(Vec::new());
    }
    c.execute(
        "INSERT INTO batch_windows (integration_id, last_boundary) VALUES (?1, ?2)
         ON CONFLICT (integration_id) DO UPDATE SET last_boundary = excluded.last_boundary",
        params![w.integration_id, w.boundary],
    )
    .map_err(internal)?;
    let queued: Vec<(i64, i64)> = c
        .prepare_cached(
            "DELETE FROM batch_queue WHERE integration_id = ?1 AND (ended_at, event_seq) IN (
                SELECT ended_at, event_seq FROM batch_queue WHERE integration_id = ?1 AND ended_at < ?2
                ORDER BY ended_at, event_seq LIMIT ?3)
             RETURNING ended_at, event_seq",
        )
        .and_then(|mut st| {
            st.query_map(params![w.integration_id, w.cutoff, BATCH_WINDOW_ITEMS], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(internal)?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    let mut sorted = queued;
    sorted.sort();
    let mut items = Vec::with_capacity(sorted.len());
    for (_, seq) in &sorted {
        let stored = load_event(c, *seq)?;
        items.push(w.render_item.render(&stored.event));
    }
    let mut heads = Vec::new();
    for event in crate::store::shared::batch_parts(&w, &items) {
        c.prepare_cached(
            "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![event.tenant_id, event.id, event.kind.as_str(), event.call_id, w.now, event.canonical_json()])
        })
        .map_err(internal)?;
        let seq = c.last_insert_rowid();
        let id = crate::model::ids::new_id("dlv");
        c.prepare_cached(
            "INSERT INTO deliveries (id, integration_id, tenant_id, event_seq, call_id, trigger, ordered,
                status, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'cdr.batch', 0, 'pending', ?6, ?7, ?8, ?6, ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![id, w.integration_id, w.owner, seq, event.call_id, w.now, w.lease.owner.as_ref(), w.lease.until])
        })
        .map_err(internal)?;
        heads.push((
            fresh_head(
                id,
                w.integration_id.clone(),
                event.call_id,
                EventKind::CdrBatch,
                false,
                w.now,
            ),
            seq,
        ));
    }
    Ok(heads)
}
