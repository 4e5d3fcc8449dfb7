//! The hot path ([`Queue`]): storing routed events with their deliveries (ordering and call
//! progress decided inside the writer's transaction), recording outcomes, claiming and releasing.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::model::event::{EventKind, StoredEvent};
use crate::store::algo::{
    self,
    outcomes::{MinuteCount, OutcomeSql, Settle},
};
use crate::store::ports::*;
use crate::store::*;

use super::events::*;
use crate::model::call::DERIVED_CDR_PREFIX;
use crate::store::algo::progress::{call_state, StateVerdict};

#[async_trait]
impl Queue for SqliteStore {
    async fn ingest(&self, batch: IngestBatch) -> StoreResult<IngestOutcome> {
        self.write(move |c| ingest(c, batch)).await
    }
    async fn record(&self, outcomes: Vec<Outcome>, lease: Lease) -> StoreResult<Vec<DispatchJob>> {
        let heads = self
            .records
            .submit(|reply| RecordRequest {
                outcomes,
                lease,
                reply,
            })
            .await?;
        self.with_events(heads).await
    }
    async fn claim_due(
        &self,
        integration_id: &str,
        limit: u32,
        lease: Lease,
        now: i64,
        body_only: bool,
    ) -> StoreResult<Vec<DispatchJob>> {
        let id = owned(integration_id);
        let heads = self
            .write(move |c| claim_due(c, &id, limit, &lease, now))
            .await?;
        if !body_only || heads.is_empty() {
            return self.with_events(heads).await;
        }
        self.read(move |c| jobs_with_bodies(c, heads)).await
    }
    async fn next_due_at(&self, integration_id: &str) -> StoreResult<Option<i64>> {
        let id = owned(integration_id);
        self.read(move |c| next_due_at(c, &id)).await
    }
    async fn release(&self, delivery_ids: Vec<String>) -> StoreResult<()> {
        self.write(move |c| release(c, &delivery_ids)).await
    }
    async fn recover(&self, _now: i64, _dead_after_ms: i64) -> StoreResult<u64> {
        // One node owns an SQLite file: every lease in it is this node's, from a previous run.
        self.write(release_all).await
    }
    async fn integrations_with_pending(&self) -> StoreResult<Vec<String>> {
        self.read(integrations_with_pending).await
    }
}

pub(super) fn has_open_ordered(
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
            let mut rows = super::progress::ProgressRows(c);
            match algo::run_now(call_state(&mut rows, e, rank, state_seq, now))? {
                StateVerdict::Stale => {
                    out.stale += 1;
                    continue;
                }
                StateVerdict::Route { ended } => out.terminated.extend(ended),
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
            let not_before = crate::store::shared::not_before(&d, batch.not_before);
            let leased = status == DeliveryStatus::Pending && not_before.is_none() && !d.defer;
            if !leased && status == DeliveryStatus::Pending {
                out.scheduled
                    .push((d.integration_id.clone(), not_before.unwrap_or(now)));
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
                    not_before.unwrap_or(now),
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

/// Records attempt outcomes ([`algo::outcomes::record`] on the writer's connection); returns
/// the deliveries they released, each with the index of the outcome that released it.
pub fn record(
    c: &Connection,
    outcomes: &[Outcome],
    lease: &Lease,
) -> StoreResult<Vec<(usize, Claimed)>> {
    algo::run_now(algo::outcomes::record(&mut OutcomeRows(c), outcomes, lease))
}

/// The outcome primitives on the writer's connection: one writer, so no locks.
struct OutcomeRows<'c>(&'c Connection);

impl OutcomeSql for OutcomeRows<'_> {
    type Error = StoreError;

    async fn lock_calls(&mut self, _calls: &[(&str, &str)]) -> StoreResult<()> {
        Ok(())
    }

    async fn insert_attempts(&mut self, with_attempt: &[&Outcome]) -> StoreResult<()> {
        let mut insert = self
            .0
            .prepare_cached(
                "INSERT OR REPLACE INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                    error_class, error, response_excerpt, manual)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(internal)?;
        for o in with_attempt {
            let (h, Some(a)) = (&o.head, &o.attempt) else {
                continue;
            };
            insert
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
        Ok(())
    }

    async fn settle(&mut self, rows: &[Settle<'_>]) -> StoreResult<Vec<bool>> {
        let mut update = self
            .0
            .prepare_cached(
                "UPDATE deliveries SET status = ?2, attempts = attempts + ?3, retries_used = ?4,
                    next_attempt_at = ?5, lease_owner = ?6, lease_until = ?7, updated_at = ?8,
                    last_status_code = COALESCE(?9, last_status_code),
                    last_error_class = CASE WHEN ?3 = 1 THEN ?10 ELSE last_error_class END
                 WHERE id = ?1 AND status = 'pending'",
            )
            .map_err(internal)?;
        let mut changed = Vec::with_capacity(rows.len());
        for r in rows {
            let n = update
                .execute(params![
                    r.id,
                    r.status.as_str(),
                    r.attempted as i64,
                    r.retries_used,
                    r.next_attempt_at,
                    r.lease.map(|(owner, _)| owner),
                    r.lease.map(|(_, until)| until),
                    r.now,
                    r.status_code,
                    r.error_class,
                ])
                .map_err(internal)?;
            changed.push(n > 0);
        }
        Ok(changed)
    }

    async fn has_pending_ordered(
        &mut self,
        integration_id: &str,
        call_id: &str,
    ) -> StoreResult<bool> {
        has_open_ordered(self.0, integration_id, call_id, "'pending'")
    }

    async fn add_counts(&mut self, counts: &[MinuteCount<'_>]) -> StoreResult<()> {
        let mut upsert = self
            .0
            .prepare_cached(
                "INSERT INTO minute_counts (integration_id, minute, kind, n) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (integration_id, minute, kind) DO UPDATE SET n = n + excluded.n",
            )
            .map_err(internal)?;
        for (iid, minute, kind, n) in counts {
            upsert
                .execute(params![iid, minute, kind, n])
                .map_err(internal)?;
        }
        Ok(())
    }

    async fn promote_blocked(
        &mut self,
        integration_id: &str,
        call_id: &str,
        lease: &Lease,
        now: i64,
    ) -> StoreResult<Option<Claimed>> {
        // A delivery held for a batch window's boundary stays held: pending and unleased until
        // then, for the claimer (on the right of SET, `next_attempt_at` is the old value).
        let sql = format!(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = MAX(next_attempt_at, ?3),
                lease_owner = CASE WHEN next_attempt_at <= ?3 THEN ?4 END,
                lease_until = CASE WHEN next_attempt_at <= ?3 THEN ?5 END, updated_at = ?3
             WHERE id = (SELECT id FROM deliveries INDEXED BY deliveries_by_call WHERE integration_id = ?1 AND call_id = ?2 AND ordered = 1
                         AND status = 'blocked' ORDER BY event_seq LIMIT 1)
             RETURNING {HEAD_COLS}, next_attempt_at"
        );
        let row = self
            .0
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_row(
                    params![
                        integration_id,
                        call_id,
                        now,
                        lease.owner.as_ref(),
                        lease.until
                    ],
                    |r| Ok((head_row(r)?, r.get::<_, i64>(10)?)),
                )
                .optional()
            })
            .map_err(internal)?;
        Ok(row.and_then(|(head, due)| (due <= now).then_some(head)))
    }
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

pub fn next_due_at(c: &Connection, integration_id: &str) -> StoreResult<Option<i64>> {
    // A row is claimable once it is due and its lease (if any) has run out.
    c.query_row(
        "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))) FROM deliveries
         WHERE integration_id = ?1 AND status = 'pending'",
        [integration_id],
        |r| r.get(0),
    )
    .map_err(internal)
}

pub fn integrations_with_pending(c: &Connection) -> StoreResult<Vec<String>> {
    let mut st = c
        .prepare("SELECT DISTINCT integration_id FROM deliveries WHERE status = 'pending'")
        .map_err(internal)?;
    let rows = st.query_map([], |r| r.get(0)).map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}
