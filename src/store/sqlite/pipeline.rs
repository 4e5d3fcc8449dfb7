//! The hot path's writes: ingest, attempt outcomes, claims and ordered hand-over.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::internal;
use crate::ingest::from_states::{TerminatedCall, DERIVED_CDR_PREFIX};
use crate::model::event::{parse_stored, EventKind, StoredEvent};
use crate::store::*;

/// A delivery taken for sending, before its event is attached: (head, event seq).
pub(super) type Claimed = (DeliveryHead, i64);

const HEAD_COLS: &str =
    "id, integration_id, call_id, trigger, ordered, manual, attempts, retries_used, created_at, event_seq";

fn head_row(r: &Row) -> rusqlite::Result<(DeliveryHead, i64)> {
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
    let body: String = c
        .prepare_cached("SELECT body FROM events WHERE seq = ?1")
        .and_then(|mut st| st.query_row([seq], |r| r.get(0)))
        .map_err(internal)?;
    let value = serde_json::from_str(&body).map_err(internal)?;
    let event = parse_stored(value).map_err(|e| internal(format!("stored event {seq}: {e}")))?;
    Ok(Arc::new(StoredEvent { seq, event, body }))
}

/// An event's envelope and stored body, `data` left unparsed (empty): enough for a payload that
/// is the stored body itself. Parsing the body is most of the cost of loading an event.
fn load_event_body(c: &Connection, seq: i64) -> StoreResult<Arc<StoredEvent>> {
    let (body, id, kind, tenant_id, call_id, occurred_at_ms): (
        String,
        String,
        String,
        String,
        String,
        i64,
    ) = c
        .prepare_cached(
            "SELECT body, id, type, tenant_id, call_id, occurred_at FROM events WHERE seq = ?1",
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
        })
        .map_err(internal)?;
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
    Ok(Arc::new(StoredEvent { seq, event, body }))
}

/// Like [`jobs_with_events`], with events loaded by [`load_event_body`].
pub(super) fn jobs_with_bodies(
    c: &Connection,
    heads: Vec<(DeliveryHead, i64)>,
) -> StoreResult<Vec<DispatchJob>> {
    heads
        .into_iter()
        .map(|(head, seq)| {
            Ok(DispatchJob {
                head,
                event: load_event_body(c, seq)?,
            })
        })
        .collect()
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
            None => {
                let e = load_event(c, seq)?;
                events.insert(seq, e.clone());
                e
            }
        };
        jobs.push(DispatchJob { head, event });
    }
    Ok(jobs)
}

fn has_open_ordered(
    c: &Connection,
    integration_id: &str,
    call_id: &str,
    statuses: &str,
) -> StoreResult<bool> {
    let sql = format!(
        "SELECT 1 FROM deliveries INDEXED BY deliveries_by_call WHERE integration_id = ?1 AND call_id = ?2 AND ordered = 1
         AND status IN ({statuses}) LIMIT 1"
    );
    c.prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_row([integration_id, call_id], |_| Ok(()))
                .optional()
        })
        .map(|o| o.is_some())
        .map_err(internal)
}

pub fn ingest(c: &Connection, batch: IngestBatch) -> StoreResult<IngestOutcome> {
    let mut out = IngestOutcome::default();
    let now = batch.now;
    let mut insert_event = c
        .prepare_cached(
            "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body, ended_at, license_partner)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .map_err(internal)?;
    let mut insert_delivery = c
        .prepare_cached(
            "INSERT INTO deliveries (id, integration_id, tenant_id, event_seq, call_id, trigger, ordered,
                status, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?12, ?10, ?11, ?9, ?9)",
        )
        .map_err(internal)?;
    for item in batch.items {
        let e = &item.event;
        let (ended_at, licence) = crate::store::shared::cdr_keys(e);
        let inserted = insert_event
            .execute(params![
                e.tenant_id,
                e.id,
                e.kind.as_str(),
                e.call_id,
                e.occurred_at_ms,
                now,
                item.body,
                ended_at,
                licence
            ])
            .map_err(internal)?;
        if inserted == 0 {
            out.duplicates += 1;
            continue;
        }
        let seq = c.last_insert_rowid();
        out.accepted += 1;
        out.accepted_kinds.push(e.kind);
        if let Some((rank, state_seq)) = e.call_state_position() {
            match super::progress::advance(c, e, rank, state_seq, now)? {
                super::progress::Advance::Stale => {
                    out.stale += 1;
                    continue;
                }
                super::progress::Advance::Moved => {}
                super::progress::Advance::Terminated {
                    started_at,
                    answered_at,
                } => {
                    if !super::progress::has_source_record(c, e)? {
                        out.terminated.push(TerminatedCall {
                            event: e.clone(),
                            started_at,
                            answered_at,
                        });
                    }
                }
            }
        } else if e.kind == EventKind::CallCompleted && !e.id.starts_with(DERIVED_CDR_PREFIX) {
            super::progress::supersede_derived(c, e, now)?;
        }
        if !item.batch.is_empty() {
            let mut queue = c
                .prepare_cached("INSERT OR IGNORE INTO batch_queue (integration_id, ended_at, event_seq) VALUES (?1, ?2, ?3)")
                .map_err(internal)?;
            for iid in &item.batch {
                queue
                    .execute(params![iid, ended_at.unwrap_or(e.occurred_at_ms), seq])
                    .map_err(internal)?;
            }
        }
        let stored = Arc::new(StoredEvent {
            seq,
            event: item.event,
            body: item.body,
        });
        for d in item.deliveries {
            let call_id = &stored.event.call_id;
            let status = if d.held {
                DeliveryStatus::Held
            } else if d.ordered
                && has_open_ordered(c, &d.integration_id, call_id, "'pending', 'blocked'")?
            {
                DeliveryStatus::Blocked
            } else {
                DeliveryStatus::Pending
            };
            let leased =
                status == DeliveryStatus::Pending && batch.not_before.is_none() && !d.defer;
            if !leased && status == DeliveryStatus::Pending {
                out.scheduled.push(d.integration_id.clone());
            }
            insert_delivery
                .execute(params![
                    d.id,
                    d.integration_id,
                    stored.event.tenant_id,
                    seq,
                    call_id,
                    d.trigger.as_str(),
                    d.ordered,
                    status.as_str(),
                    now,
                    leased.then(|| batch.lease.owner.as_ref()),
                    leased.then_some(batch.lease.until),
                    batch.not_before.unwrap_or(now),
                ])
                .map_err(internal)?;
            if leased {
                out.ready.push(DispatchJob {
                    head: crate::store::shared::fresh_head(
                        d.id,
                        d.integration_id,
                        call_id.clone(),
                        d.trigger,
                        d.ordered,
                        now,
                    ),
                    event: stored.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Records attempt outcomes; returns the deliveries they released, each with the index of the
/// outcome that released it.
pub fn record(
    c: &Connection,
    outcomes: &[Outcome],
    lease: &Lease,
) -> StoreResult<Vec<(usize, Claimed)>> {
    let mut promoted = Vec::new();
    let mut insert_attempt = c
        .prepare_cached(
            "INSERT OR REPLACE INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                error_class, error, response_excerpt, manual)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(internal)?;
    let mut update = c
        .prepare_cached(
            "UPDATE deliveries SET status = ?2, attempts = attempts + ?3, retries_used = ?4,
                next_attempt_at = ?5, lease_owner = ?6, lease_until = ?7, updated_at = ?8,
                last_status_code = COALESCE(?9, last_status_code),
                last_error_class = CASE WHEN ?3 = 1 THEN ?10 ELSE last_error_class END
             WHERE id = ?1 AND status = 'pending'",
        )
        .map_err(internal)?;
    for (i, o) in outcomes.iter().enumerate() {
        let h = &o.head;
        if let Some(a) = &o.attempt {
            insert_attempt
                .execute(params![
                    h.id,
                    h.attempts + 1,
                    a.started_at,
                    a.duration_ms,
                    a.status_code,
                    a.error_class,
                    a.error,
                    a.response_excerpt,
                    h.manual
                ])
                .map_err(internal)?;
        }
        let (status, next_at, keep, retries_used) = match &o.next {
            NextStep::Succeeded => (DeliveryStatus::Succeeded, o.now, false, h.retries_used),
            NextStep::Failed => (DeliveryStatus::Failed, o.now, false, h.retries_used),
            NextStep::Held => (DeliveryStatus::Held, o.now, false, h.retries_used),
            NextStep::Retry { at, keep_lease } => (
                DeliveryStatus::Pending,
                *at,
                *keep_lease,
                h.retries_used + 1,
            ),
        };
        let changed = update
            .execute(params![
                h.id,
                status.as_str(),
                o.attempt.is_some() as i64,
                retries_used,
                next_at,
                keep.then(|| lease.owner.as_ref()),
                keep.then_some(next_at + (lease.until - o.now).max(0)),
                o.now,
                o.attempt.as_ref().and_then(|a| a.status_code),
                o.attempt.as_ref().and_then(|a| a.error_class),
            ])
            .map_err(internal)?;
        let settled = matches!(status, DeliveryStatus::Succeeded | DeliveryStatus::Failed);
        if changed > 0 && settled && h.ordered && !h.manual {
            if let Some(job) = promote_next(c, &h.integration_id, &h.call_id, lease, o.now)? {
                promoted.push((i, job));
            }
        }
    }
    Ok(promoted)
}

/// Makes the call's next blocked delivery pending (leased to this node) once nothing earlier
/// of the call is pending.
fn promote_next(
    c: &Connection,
    integration_id: &str,
    call_id: &str,
    lease: &Lease,
    now: i64,
) -> StoreResult<Option<Claimed>> {
    if has_open_ordered(c, integration_id, call_id, "'pending'")? {
        return Ok(None);
    }
    let sql = format!(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?3, lease_owner = ?4, lease_until = ?5, updated_at = ?3
         WHERE id = (SELECT id FROM deliveries INDEXED BY deliveries_by_call WHERE integration_id = ?1 AND call_id = ?2 AND ordered = 1
                     AND status = 'blocked' ORDER BY event_seq LIMIT 1)
         RETURNING {HEAD_COLS}"
    );
    c.prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_row(
                params![
                    integration_id,
                    call_id,
                    now,
                    lease.owner.as_ref(),
                    lease.until
                ],
                head_row,
            )
            .optional()
        })
        .map_err(internal)
}

pub fn claim_due(
    c: &Connection,
    integration_id: &str,
    limit: u32,
    lease: &Lease,
    now: i64,
) -> StoreResult<Vec<Claimed>> {
    // Two index ranges of `deliveries_due`, so rows leased to a queue are never stepped over:
    // leases that ran out (a node that died, rare), then unleased rows in due order.
    let expired = format!(
        "UPDATE deliveries SET lease_owner = ?2, lease_until = ?3
         WHERE id IN (SELECT id FROM deliveries WHERE integration_id = ?1 AND status = 'pending'
                      AND lease_until < ?4 AND next_attempt_at <= ?4
                      ORDER BY lease_until LIMIT ?5)
         RETURNING {HEAD_COLS}"
    );
    let unleased = format!(
        "UPDATE deliveries SET lease_owner = ?2, lease_until = ?3
         WHERE id IN (SELECT id FROM deliveries WHERE integration_id = ?1 AND status = 'pending'
                      AND lease_until IS NULL AND next_attempt_at <= ?4
                      ORDER BY next_attempt_at LIMIT ?5)
         RETURNING {HEAD_COLS}"
    );
    let mut heads: Vec<(DeliveryHead, i64)> = Vec::new();
    for sql in [expired, unleased] {
        let room = limit.saturating_sub(heads.len() as u32);
        if room == 0 {
            break;
        }
        let rows: Vec<(DeliveryHead, i64)> = c
            .prepare_cached(&sql)
            .and_then(|mut st| {
                let rows = st.query_map(
                    params![integration_id, lease.owner.as_ref(), lease.until, now, room],
                    head_row,
                )?;
                rows.collect()
            })
            .map_err(internal)?;
        heads.extend(rows);
    }
    // RETURNING gives no order; attempts go out oldest first.
    heads.sort_by_key(|(_, seq)| *seq);
    Ok(heads)
}

pub fn release(c: &Connection, ids: &[String]) -> StoreResult<()> {
    let mut st = c
        .prepare_cached("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND status = 'pending'")
        .map_err(internal)?;
    for id in ids {
        st.execute([id]).map_err(internal)?;
    }
    Ok(())
}

pub fn release_all(c: &Connection) -> StoreResult<u64> {
    c.execute(
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL",
        [],
    )
    .map(|n| n as u64)
    .map_err(internal)
}

/// Rows one step of re-enabling changes: a huge backlog is resent in many short writes, so
/// the writer keeps serving everyone else meanwhile.
pub const ENABLE_STEP: u32 = 5_000;

/// When the integration started failing (what "failed meanwhile" is measured from).
pub fn enable_begin(c: &Connection, id: &str) -> StoreResult<Option<i64>> {
    c.query_row(
        "SELECT failing_since FROM integrations WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()
    .map_err(internal)?
    .ok_or(StoreError::NotFound)
}

/// Queues up to `limit` deliveries held, or failed since `since` and before the enable began
/// (`now`; later failures are this enable's own resends failing again). Ordered deliveries line
/// up behind each other again (`blocked`); the rest go straight to pending.
pub fn enable_resend_step(
    c: &Connection,
    id: &str,
    since: i64,
    now: i64,
    limit: u32,
) -> StoreResult<u64> {
    // Each pick is one range of the (integration_id, status, next_attempt_at) index, and the
    // rows it changes leave that range, so a step reads only what it changes. A failed
    // delivery's next_attempt_at is when it failed.
    let picks = [
        "SELECT id, ordered FROM deliveries WHERE integration_id = ?1 AND status = 'held' LIMIT ?4",
        "SELECT id, ordered FROM deliveries WHERE integration_id = ?1 AND status = 'failed'
           AND next_attempt_at >= ?2 AND next_attempt_at < ?3 AND manual = 0 LIMIT ?4",
    ];
    let mut block = c
        .prepare_cached("UPDATE deliveries SET status = 'blocked', retries_used = 0, updated_at = ?2 WHERE id = ?1")
        .map_err(internal)?;
    let mut queue = c
        .prepare_cached(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, retries_used = 0,
                lease_owner = NULL, lease_until = NULL, updated_at = ?2 WHERE id = ?1",
        )
        .map_err(internal)?;
    let mut changed = 0u64;
    for pick in picks {
        let rows: Vec<(String, bool)> = c
            .prepare_cached(pick)
            .and_then(|mut st| {
                st.query_map(params![id, since, now, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })
            .map_err(internal)?;
        for (did, ordered) in rows {
            let st = if ordered { &mut block } else { &mut queue };
            changed += st.execute(params![did, now]).map_err(internal)? as u64;
        }
    }
    Ok(changed)
}

/// Moves the head of up to `limit` blocked calls to pending (also without resend: what waited
/// behind a held delivery must not wait forever).
pub fn enable_promote_step(c: &Connection, id: &str, now: i64, limit: u32) -> StoreResult<u64> {
    // The per-call subqueries are pinned to the per-call index: left to itself the planner may
    // take the (integration, status) index and read every blocked row once per row.
    c.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, lease_owner = NULL, lease_until = NULL
         WHERE id IN (SELECT d.id FROM deliveries d WHERE d.integration_id = ?1 AND d.ordered = 1 AND d.status = 'blocked'
           AND d.event_seq = (SELECT MIN(b.event_seq) FROM deliveries b INDEXED BY deliveries_by_call
                              WHERE b.integration_id = ?1
                              AND b.call_id = d.call_id AND b.ordered = 1 AND b.status = 'blocked')
           AND NOT EXISTS (SELECT 1 FROM deliveries p INDEXED BY deliveries_by_call
                           WHERE p.integration_id = ?1
                           AND p.call_id = d.call_id AND p.ordered = 1 AND p.status = 'pending')
           LIMIT ?3)",
        params![id, now, limit],
    )
    .map(|n| n as u64)
    .map_err(internal)
}

pub fn enable_finish(c: &Connection, id: &str, now: i64) -> StoreResult<()> {
    c.execute(
        "UPDATE integrations SET status = 'active', disabled_reason = NULL, failing_since = NULL,
            consecutive_failures = 0, updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )
    .map_err(internal)?;
    Ok(())
}

/// One delivery's head and event seq, without changing anything.
pub fn delivery_head(c: &Connection, id: &str) -> StoreResult<Option<Claimed>> {
    let sql = format!("SELECT {HEAD_COLS} FROM deliveries WHERE id = ?1");
    c.query_row(&sql, [id], head_row)
        .optional()
        .map_err(internal)
}

pub fn redeliver(c: &Connection, id: &str, lease: &Lease, now: i64) -> StoreResult<Claimed> {
    let status: String = c
        .query_row("SELECT status FROM deliveries WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(internal)?
        .ok_or(StoreError::NotFound)?;
    if status == "pending" || status == "blocked" {
        return Err(StoreError::Conflict(
            "the delivery is already queued; wait for its attempt, then redeliver".into(),
        ));
    }
    let sql = format!(
        "UPDATE deliveries SET status = 'pending', manual = 1, ordered = 0, retries_used = 0,
            next_attempt_at = ?2, lease_owner = ?3, lease_until = ?4, updated_at = ?2
         WHERE id = ?1 RETURNING {HEAD_COLS}"
    );
    c.query_row(
        &sql,
        params![id, now, lease.owner.as_ref(), lease.until],
        head_row,
    )
    .map_err(internal)
}

pub fn redeliver_failed(
    c: &Connection,
    integration_id: &str,
    since: i64,
    until: i64,
    now: i64,
) -> StoreResult<u64> {
    c.execute(
        "UPDATE deliveries SET status = 'pending', manual = 1, ordered = 0, retries_used = 0,
            next_attempt_at = ?4, lease_owner = NULL, lease_until = NULL, updated_at = ?4
         WHERE integration_id = ?1 AND status = 'failed' AND created_at >= ?2 AND created_at < ?3",
        params![integration_id, since, until, now],
    )
    .map(|n| n as u64)
    .map_err(internal)
}
