//! Sending again ([`Resend`]): manual redelivery, and the steps of re-enabling an integration.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::events::*;
use super::*;
use crate::store::ports::*;

#[async_trait]
impl Resend for PgStore {
    async fn redeliver(&self, id: &str, lease: Lease, now: i64) -> StoreResult<DispatchJob> {
        let head = in_tx!(self, |tx| redeliver(&tx, id, &lease, now).await?)?;
        on_conn!(self, |c| jobs_with_events(&c, vec![head], false)
            .await?
            .pop())?
        .ok_or(StoreError::NotFound)
    }
    async fn redeliver_failed(
        &self,
        integration_id: &str,
        since: i64,
        until: i64,
        now: i64,
    ) -> StoreResult<u64> {
        in_tx!(self, |tx| redeliver_failed(
            &tx,
            integration_id,
            since,
            until,
            now
        )
        .await?)
    }
    async fn enable_begin(&self, id: &str) -> StoreResult<Option<i64>> {
        in_tx!(self, |tx| enable_begin(&tx, id).await?)
    }
    async fn enable_resend_step(
        &self,
        id: &str,
        since: i64,
        now: i64,
        limit: u32,
    ) -> StoreResult<u64> {
        in_tx!(self, |tx| enable_resend_step(&tx, id, since, now, limit)
            .await?)
    }
    async fn enable_promote_step(&self, id: &str, now: i64, limit: u32) -> StoreResult<u64> {
        in_tx!(self, |tx| enable_promote_step(&tx, id, now, limit).await?)
    }
    async fn enable_finish(&self, id: &str, now: i64) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            enable_finish(&tx, id, now).await?;
            notify(&tx, &self.instance, &Change::Integration(id.to_string())).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
}

pub async fn enable_begin<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<i64>> {
    query_opt(
        c,
        "SELECT failing_since FROM integrations WHERE id = $1",
        &[&id],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or_else(|| StoreError::NotFound.into())
}

/// See the SQLite store's `enable_resend_step`.
pub async fn enable_resend_step<C: GenericClient>(
    c: &C,
    id: &str,
    since: i64,
    now: i64,
    limit: u32,
) -> PgResult<u64> {
    let limit = limit as i64;
    let mut changed = 0;
    for pick in [
        "SELECT id, ordered FROM deliveries WHERE status = 'held' AND integration_id = $1
           AND $2::int8 IS NOT NULL AND $3::int8 IS NOT NULL LIMIT $4",
        "SELECT id, ordered FROM deliveries WHERE status = 'failed' AND integration_id = $1
           AND next_attempt_at >= $2 AND next_attempt_at < $3 AND NOT manual LIMIT $4",
    ] {
        let rows = query(c, pick, &[&id, &since, &now, &limit]).await?;
        let (ordered, plain): (Vec<&Row>, Vec<&Row>) =
            rows.iter().partition(|r| r.get::<_, bool>(1));
        let ordered: Vec<String> = ordered.iter().map(|r| r.get(0)).collect();
        let plain: Vec<String> = plain.iter().map(|r| r.get(0)).collect();
        changed += execute(
            c,
            "UPDATE deliveries SET status = 'blocked', retries_used = 0, updated_at = $2 WHERE id = ANY($1)",
            &[&ordered, &now],
        )
        .await?;
        changed += execute(
            c,
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, retries_used = 0,
                lease_owner = NULL, lease_until = NULL, updated_at = $2 WHERE id = ANY($1)",
            &[&plain, &now],
        )
        .await?;
    }
    Ok(changed)
}

pub async fn enable_promote_step<C: GenericClient>(
    c: &C,
    id: &str,
    now: i64,
    limit: u32,
) -> PgResult<u64> {
    execute(
        c,
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, lease_owner = NULL, lease_until = NULL
         WHERE id IN (SELECT d.id FROM deliveries d WHERE d.integration_id = $1 AND d.ordered AND d.status = 'blocked'
           AND d.event_seq = (SELECT MIN(b.event_seq) FROM deliveries b WHERE b.integration_id = $1
                              AND b.call_id = d.call_id AND b.ordered AND b.status = 'blocked')
           AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.integration_id = $1
                           AND p.call_id = d.call_id AND p.ordered AND p.status = 'pending')
           LIMIT $3)",
        &[&id, &now, &(limit as i64)],
    )
    .await
}

pub async fn enable_finish<C: GenericClient>(c: &C, id: &str, now: i64) -> PgResult<()> {
    execute(
        c,
        "UPDATE integrations SET status = 'active', disabled_reason = NULL, failing_since = NULL,
            consecutive_failures = 0, updated_at = $2 WHERE id = $1",
        &[&id, &now],
    )
    .await?;
    Ok(())
}

pub async fn redeliver<C: GenericClient>(
    c: &C,
    id: &str,
    lease: &Lease,
    now: i64,
) -> PgResult<Claimed> {
    let status: String = query_opt(
        c,
        "SELECT status FROM deliveries WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or(StoreError::NotFound)?;
    if status == "pending" || status == "blocked" {
        return Err(StoreError::Conflict(
            "the delivery is already queued; wait for its attempt, then redeliver".into(),
        )
        .into());
    }
    let sql = format!(
        "UPDATE deliveries SET status = 'pending', manual = true, ordered = false, retries_used = 0,
            next_attempt_at = $2, lease_owner = $3, lease_until = $4, updated_at = $2
         WHERE id = $1 RETURNING {HEAD_COLS}"
    );
    query_opt(c, &sql, &[&id, &now, &lease.owner.as_ref(), &lease.until])
        .await?
        .map(|r| head_row(&r))
        .ok_or_else(|| StoreError::NotFound.into())
}

pub async fn redeliver_failed<C: GenericClient>(
    c: &C,
    integration_id: &str,
    since: i64,
    until: i64,
    now: i64,
) -> PgResult<u64> {
    execute(
        c,
        "UPDATE deliveries SET status = 'pending', manual = true, ordered = false, retries_used = 0,
            next_attempt_at = $4, lease_owner = NULL, lease_until = NULL, updated_at = $4
         WHERE status = 'failed' AND integration_id = $1 AND created_at >= $2 AND created_at < $3",
        &[&integration_id, &since, &until, &now],
    )
    .await
}
