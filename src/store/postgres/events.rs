//! Deliveries with their events, as the dispatcher takes them, and the advisory-lock keys of
//! a call's deliveries.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::*;
use crate::model::event::{parse_stored, Event, EventKind, StoredEvent};

/// A delivery taken for sending, before its event is attached: (head, event seq).
pub type Claimed = (DeliveryHead, i64);

pub(super) const HEAD_COLS: &str =
    "id, integration_id, call_id, trigger, ordered, manual, attempts, retries_used, created_at, event_seq";

pub(super) fn head_row(r: &Row) -> Claimed {
    (
        DeliveryHead {
            id: r.get(0),
            integration_id: r.get(1),
            call_id: r.get(2),
            trigger: EventKind::parse(r.get(3)).unwrap_or(EventKind::CallCompleted),
            ordered: r.get(4),
            manual: r.get(5),
            attempts: r.get::<_, i64>(6) as u32,
            retries_used: r.get::<_, i64>(7) as u32,
            created_at: r.get(8),
        },
        r.get(9),
    )
}

/// The lock serialising everything that looks at one call of a tenant (its progress, whether
/// the source sent its own record).
pub(super) fn call_lock(tenant_id: &str, call_id: &str) -> i64 {
    lock_key("call", tenant_id, call_id)
}

/// The lock serialising the ordered deliveries of one call to one integration.
pub(super) fn order_lock(integration_id: &str, call_id: &str) -> i64 {
    lock_key("order", integration_id, call_id)
}

/// Attaches each head's event, loading each event once. With `body_only` the events carry
/// their envelope and stored body but unparsed `data` (see [`Store::claim_due`]).
pub async fn jobs_with_events<C: GenericClient>(
    c: &C,
    heads: Vec<Claimed>,
    body_only: bool,
) -> PgResult<Vec<DispatchJob>> {
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    let seqs: Vec<i64> = heads.iter().map(|(_, s)| *s).collect();
    let events = load_events(c, seqs, body_only).await?;
    let mut jobs = Vec::with_capacity(heads.len());
    for (head, seq) in heads {
        match events.get(&seq) {
            Some(event) => jobs.push(DispatchJob {
                head,
                event: event.clone(),
            }),
            None => crate::store::shared::event_gone(&head.id, seq),
        }
    }
    Ok(jobs)
}

pub(super) fn event_of(
    events: &HashMap<i64, Arc<StoredEvent>>,
    seq: i64,
) -> PgResult<Arc<StoredEvent>> {
    events
        .get(&seq)
        .cloned()
        .ok_or_else(|| StoreError::Internal(format!("event {seq} of a delivery is gone")).into())
}

/// Loads events by seq in one query.
pub(super) async fn load_events<C: GenericClient>(
    c: &C,
    mut seqs: Vec<i64>,
    body_only: bool,
) -> PgResult<HashMap<i64, Arc<StoredEvent>>> {
    seqs.sort_unstable();
    seqs.dedup();
    let rows = query(
        c,
        "SELECT seq, body, id, type, tenant_id, call_id, occurred_at FROM events WHERE seq = ANY($1)",
        &[&seqs],
    )
    .await?;
    let mut events: HashMap<i64, Arc<StoredEvent>> = HashMap::with_capacity(rows.len());
    for r in rows {
        let seq: i64 = r.get(0);
        let body: String = r.get(1);
        let event = if body_only {
            let kind: &str = r.get(3);
            Event {
                id: r.get(2),
                kind: EventKind::parse(kind).ok_or_else(|| {
                    StoreError::Internal(format!("stored event {seq}: unknown type {kind}"))
                })?,
                tenant_id: r.get(4),
                call_id: r.get(5),
                occurred_at_ms: r.get(6),
                data: Default::default(),
            }
        } else {
            let value = serde_json::from_str(&body)
                .map_err(|e| StoreError::Internal(format!("stored event {seq}: {e}")))?;
            parse_stored(value)
                .map_err(|e| StoreError::Internal(format!("stored event {seq}: {e}")))?
        };
        events.insert(seq, Arc::new(StoredEvent { seq, event, body }));
    }
    Ok(events)
}

pub async fn delivery_head<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<Claimed>> {
    let sql = format!("SELECT {HEAD_COLS} FROM deliveries WHERE id = $1");
    Ok(query_opt(c, &sql, &[&id]).await?.map(|r| head_row(&r)))
}
