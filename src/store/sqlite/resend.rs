//! Sending again ([`Resend`]): manual redelivery, and the steps of re-enabling an integration.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::store::ports::*;
use crate::store::*;

use super::events::*;

#[async_trait]
impl Resend for SqliteStore {
    async fn redeliver(&self, id: &str, lease: Lease, now: i64) -> StoreResult<DispatchJob> {
        let id = owned(id);
        let head = self.write(move |c| redeliver(c, &id, &lease, now)).await?;
        self.with_events(vec![head])
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
    }
    async fn redeliver_failed(
        &self,
        integration_id: &str,
        since: i64,
        until: i64,
        now: i64,
    ) -> StoreResult<u64> {
        let id = owned(integration_id);
        self.write(move |c| redeliver_failed(c, &id, since, until, now))
            .await
    }
    async fn enable_begin(&self, id: &str) -> StoreResult<Option<i64>> {
        let id = owned(id);
        self.write(move |c| enable_begin(c, &id)).await
    }
    async fn enable_resend_step(
        &self,
        id: &str,
        since: i64,
        now: i64,
        limit: u32,
    ) -> StoreResult<u64> {
        let id = owned(id);
        self.write(move |c| enable_resend_step(c, &id, since, now, limit))
            .await
    }
    async fn enable_promote_step(&self, id: &str, now: i64, limit: u32) -> StoreResult<u64> {
        let id = owned(id);
        self.write(move |c| enable_promote_step(c, &id, now, limit))
            .await
    }
    async fn enable_finish(&self, id: &str, now: i64) -> StoreResult<()> {
        let id = owned(id);
        self.write(move |c| enable_finish(c, &id, now)).await
    }
}

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
