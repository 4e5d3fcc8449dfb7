//! Deliveries with their events, as the dispatcher takes them: the rows a claim or a settle
//! returns, joined with the stored event (parsed, or only its body for spliced payloads).

use rusqlite::{Connection, OptionalExtension, Row};

use super::*;
use crate::model::event::{parse_stored, EventKind, StoredEvent};
use crate::store::*;
use std::collections::HashMap;

/// A delivery taken for sending, before its event is attached: (head, event seq).
pub(super) type Claimed = (DeliveryHead, i64);

pub(super) const HEAD_COLS: &str =
    "id, integration_id, call_id, trigger, ordered, manual, attempts, retries_used, created_at, event_seq";

pub(super) fn head_row(r: &Row) -> rusqlite::Result<(DeliveryHead, i64)> {
    let trigger: String = r.get(3)?;
    Ok((
        DeliveryHead {
            id: r.get(0)?,
            integration_id: r.get(1)?,
            call_id: r.get(2)?,
            trigger: EventKind::parse(&trigger).unwrap_or(EventKind::CallCompleted),
            ordered: r.get(4)?,
            manual: r.get(5)?,
            attempts: r.get(6)?,
            retries_used: r.get(7)?,
            created_at: r.get(8)?,
        },
        r.get(9)?,
    ))
}

pub(super) fn load_event(c: &Connection, seq: i64) -> StoreResult<Arc<StoredEvent>> {
    find_event(c, seq)?.ok_or_else(|| internal(format!("stored event {seq} is gone")))
}

/// The event, unless it is gone: its tenant was deleted between a claim and this read (the
/// purge takes the event's deliveries with it; the newest event of all stays, emptied and no
/// tenant's, `tenant_id` empty).
fn find_event(c: &Connection, seq: i64) -> StoreResult<Option<Arc<StoredEvent>>> {
    let body: Option<String> = c
        .prepare_cached("SELECT body FROM events WHERE seq = ?1 AND tenant_id <> ''")
        .and_then(|mut st| st.query_row([seq], |r| r.get(0)).optional())
        .map_err(internal)?;
    let Some(body) = body else {
        return Ok(None);
    };
    let value = serde_json::from_str(&body).map_err(internal)?;
    let event = parse_stored(value).map_err(|e| internal(format!("stored event {seq}: {e}")))?;
    Ok(Some(Arc::new(StoredEvent { seq, event, body })))
}

/// An event's envelope and stored body, `data` left unparsed (empty): enough for a payload that
/// is the stored body itself. Parsing the body is most of the cost of loading an event.
pub(super) fn load_event_body(c: &Connection, seq: i64) -> StoreResult<Option<Arc<StoredEvent>>> {
    let row: Option<(String, String, String, String, String, i64)> = c
        .prepare_cached(
            "SELECT body, id, type, tenant_id, call_id, occurred_at FROM events
             WHERE seq = ?1 AND tenant_id <> ''",
        )
        .and_then(|mut st| {
            st.query_row([seq], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()
        })
        .map_err(internal)?;
    let Some((body, id, kind, tenant_id, call_id, occurred_at_ms)) = row else {
        return Ok(None);
    };
    let kind = EventKind::parse(&kind)
        .ok_or_else(|| internal(format!("stored event {seq}: unknown type {kind}")))?;
    let event = crate::model::event::Event {
        id,
        kind,
        tenant_id,
        occurred_at_ms,
        call_id,
        data: Default::default(),
    };
    Ok(Some(Arc::new(StoredEvent { seq, event, body })))
}

/// Like [`jobs_with_events`], with events loaded by [`load_event_body`].
pub(super) fn jobs_with_bodies(
    c: &Connection,
    heads: Vec<(DeliveryHead, i64)>,
) -> StoreResult<Vec<DispatchJob>> {
    let mut jobs = Vec::with_capacity(heads.len());
    for (head, seq) in heads {
        match load_event_body(c, seq)? {
            Some(event) => jobs.push(DispatchJob { head, event }),
            None => crate::store::shared::event_gone(&head.id, seq),
        }
    }
    Ok(jobs)
}

/// Attaches each head's event. Runs on a reader connection: parsing stored events is work the
/// single writer must not do.
pub(super) fn jobs_with_events(
    c: &Connection,
    heads: Vec<(DeliveryHead, i64)>,
) -> StoreResult<Vec<DispatchJob>> {
    let mut events: HashMap<i64, Arc<StoredEvent>> = HashMap::new();
    let mut jobs = Vec::with_capacity(heads.len());
    for (head, seq) in heads {
        let event = match events.get(&seq) {
            Some(e) => e.clone(),
            None => match find_event(c, seq)? {
                Some(e) => {
                    events.insert(seq, e.clone());
                    e
                }
                None => {
                    crate::store::shared::event_gone(&head.id, seq);
                    continue;
                }
            },
        };
        jobs.push(DispatchJob { head, event });
    }
    Ok(jobs)
}

/// One delivery's head and event seq, without changing anything.
pub fn delivery_head(c: &Connection, id: &str) -> StoreResult<Option<Claimed>> {
    let sql = format!("SELECT {HEAD_COLS} FROM deliveries WHERE id = ?1");
    c.query_row(&sql, [id], head_row)
        .optional()
        .map_err(internal)
}
