//! Closing batch windows ([`Windows`]) under an advisory lock per integration, in the
//! transaction that records the boundary.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::events::*;
use super::*;
use crate::model::event::EventKind;
use crate::store::ports::*;
use crate::store::shared::{fresh_head, BATCH_WINDOW_ITEMS};

#[async_trait]
impl Windows for PgStore {
    async fn close_window(&self, window: BatchWindow) -> StoreResult<Vec<DispatchJob>> {
        let heads = in_tx!(self, |tx| close_window(&tx, &window).await?)?;
        on_conn!(self, |c| jobs_with_events(&c, heads, false).await?)
    }
}

/// Closes a batch window under the integration's window lock: a second node closing the same
/// boundary waits, then finds it closed.
pub async fn close_window<C: GenericClient>(c: &C, w: &BatchWindow) -> PgResult<Vec<Claimed>> {
    lock_keys(c, vec![lock_key("window", &w.integration_id, "")]).await?;
    let last: Option<i64> = query_opt(
        c,
        "SELECT last_boundary FROM batch_windows WHERE integration_id = $1",
        &[&w.integration_id],
    )
    .await?
    .map(|r| r.get(0));
    if last.is_some_and(|l| l >= w.boundary) {
        return Ok(Vec::new());
    }
    execute(
        c,
        "INSERT INTO batch_windows (integration_id, last_boundary) VALUES ($1, $2)
         ON CONFLICT (integration_id) DO UPDATE SET last_boundary = excluded.last_boundary",
        &[&w.integration_id, &w.boundary],
    )
    .await?;
    let mut queued: Vec<(i64, i64)> = query(
        c,
        "DELETE FROM batch_queue WHERE integration_id = $1 AND (ended_at, event_seq) IN (
            SELECT ended_at, event_seq FROM batch_queue WHERE integration_id = $1 AND ended_at < $2
            ORDER BY ended_at, event_seq LIMIT $3)
         RETURNING ended_at, event_seq",
        &[&w.integration_id, &w.cutoff, &(BATCH_WINDOW_ITEMS as i64)],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    queued.sort();
    let seqs: Vec<i64> = queued.iter().map(|(_, s)| *s).collect();
    let events = load_events(c, seqs.clone(), false).await?;
    let items = seqs
        .iter()
        .map(|s| Ok(w.render_item.render(&event_of(&events, *s)?.event)))
        .collect::<PgResult<Vec<serde_json::Value>>>()?;
    let mut out = Vec::new();
    for event in crate::store::shared::batch_parts(w, &items) {
        let seq: i64 = query(
            c,
            "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body)
             VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING seq",
            &[
                &event.tenant_id,
                &event.id,
                &event.kind.as_str(),
                &event.call_id,
                &w.now,
                &event.canonical_json(),
            ],
        )
        .await?
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::Internal("batch event not stored".into()))?;
        let id = crate::model::ids::new_id("dlv");
        execute(
            c,
            "INSERT INTO deliveries (id, integration_id, tenant_id, event_seq, call_id, trigger, ordered,
                status, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'cdr.batch', false, 'pending', $6, $7, $8, $6, $6)",
            &[
                &id,
                &w.integration_id,
                &w.owner,
                &seq,
                &event.call_id,
                &w.now,
                &w.lease.owner.as_ref(),
                &w.lease.until,
            ],
        )
        .await?;
        out.push((
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
    Ok(out)
}
