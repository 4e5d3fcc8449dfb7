//! Closing a batch window: the queued calls that ended before the cutoff become the batch's
//! parts, stored as deliveries leased to this node, and the boundary is recorded as closed —
//! in one transaction, so a window is neither skipped nor sent twice. A boundary already closed
//! (by this node before a restart, or by another node) closes nothing.

use std::sync::Arc;

use crate::model::event::{Event, EventKind, StoredEvent};
use crate::store::shared::{batch_parts, fresh_head, BATCH_WINDOW_ITEMS};
use crate::store::{BatchWindow, DeliveryHead, StoreError};

/// What a backend supplies, inside the transaction that closes the window.
#[allow(async_fn_in_trait)] // used with concrete backends only, never as a trait object
pub trait WindowSql {
    /// The backend's own error, kept whole so that its transaction can tell a retryable
    /// failure (a deadlock) from a final one.
    type Error: From<StoreError>;

    /// The last boundary closed for the integration (after taking its window lock, where
    /// several nodes may close windows).
    async fn last_boundary(&mut self, integration_id: &str) -> Result<Option<i64>, Self::Error>;
    async fn record_boundary(
        &mut self,
        integration_id: &str,
        boundary: i64,
    ) -> Result<(), Self::Error>;
    /// Removes and returns up to `limit` queued calls of the integration that ended before
    /// `cutoff`, as `(ended_at, event seq)`.
    async fn take_queued(
        &mut self,
        integration_id: &str,
        cutoff: i64,
        limit: u32,
    ) -> Result<Vec<(i64, i64)>, Self::Error>;
    /// The stored events, in the order of `seqs`.
    async fn events(&mut self, seqs: &[i64]) -> Result<Vec<Arc<StoredEvent>>, Self::Error>;
    /// Stores a batch part and its delivery (pending, leased to `w.lease`); the part's seq.
    async fn insert_part(
        &mut self,
        w: &BatchWindow,
        part: &Event,
        delivery_id: &str,
    ) -> Result<i64, Self::Error>;
}

/// Closes `w`; the parts' deliveries, each with its event's seq, ready to dispatch.
pub async fn close_window<S: WindowSql>(
    sql: &mut S,
    w: &BatchWindow,
) -> Result<Vec<(DeliveryHead, i64)>, S::Error> {
    if sql
        .last_boundary(&w.integration_id)
        .await?
        .is_some_and(|last| last >= w.boundary)
    {
        return Ok(Vec::new());
    }
    sql.record_boundary(&w.integration_id, w.boundary).await?;
    let mut queued = sql
        .take_queued(&w.integration_id, w.cutoff, BATCH_WINDOW_ITEMS)
        .await?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    // Items in end-time order (ties by arrival), whatever order the backend returned them in.
    queued.sort_unstable();
    let seqs: Vec<i64> = queued.iter().map(|(_, seq)| *seq).collect();
    let items: Vec<serde_json::Value> = sql
        .events(&seqs)
        .await?
        .iter()
        .map(|stored| w.render_item.render(&stored.event))
        .collect();
    let mut heads = Vec::new();
    for part in batch_parts(w, &items) {
        let id = crate::model::ids::new_id("dlv");
        let seq = sql.insert_part(w, &part, &id).await?;
        let head = fresh_head(
            id,
            w.integration_id.clone(),
            part.call_id,
            EventKind::CdrBatch,
            false,
            w.now,
        );
        heads.push((head, seq));
    }
    Ok(heads)
}
