//! The hot path ([`Queue`]): ingest through the group committer, outcomes, claims
//! (`FOR UPDATE SKIP LOCKED`), releases and recovery.

use std::collections::HashSet;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::events::*;
use super::*;
use crate::store::algo::{
    self,
    outcomes::{MinuteCount, OutcomeSql, Settle},
};
use crate::store::ports::*;

#[async_trait]
impl Queue for PgStore {
    async fn ingest(&self, batch: IngestBatch) -> StoreResult<IngestOutcome> {
        match self.committers.ingest(batch).await? {
            Ingested::Stored(out) => Ok(out),
            Ingested::Reroute { version, .. } => Err(StoreError::StaleConfig(version)),
        }
    }
    async fn ingest_routed(&self, batch: IngestBatch) -> StoreResult<Ingested> {
        self.committers.ingest(batch).await
    }
    async fn record(&self, outcomes: Vec<Outcome>, lease: Lease) -> StoreResult<Vec<DispatchJob>> {
        let heads = self.committers.record(outcomes, lease).await?;
        on_conn!(self, |c| jobs_with_events(&c, heads, false).await?)
    }
    async fn claim_due(
        &self,
        integration_id: &str,
        limit: u32,
        lease: Lease,
        now: i64,
        body_only: bool,
    ) -> StoreResult<Vec<DispatchJob>> {
        let heads = in_tx!(self, |tx| claim_due(
            &tx,
            integration_id,
            limit,
            &lease,
            now
        )
        .await?)?;
        on_conn!(self, |c| jobs_with_events(&c, heads, body_only).await?)
    }
    async fn next_due_at(&self, integration_id: &str) -> StoreResult<Option<i64>> {
        on_conn!(self, |c| next_due_at(&c, integration_id).await?)
    }
    async fn release(&self, delivery_ids: Vec<String>) -> StoreResult<()> {
        in_tx!(self, |tx| release(&tx, &delivery_ids).await?)
    }
    async fn recover(&self, now: i64, dead_after_ms: i64) -> StoreResult<u64> {
        // Node ids are new on every start, so a previous run of this node is one of the nodes
        // no longer heartbeating; live nodes keep their work.
        in_tx!(self, |tx| release_dead(&tx, now - dead_after_ms).await?)
    }
    async fn integrations_with_pending(&self) -> StoreResult<Vec<String>> {
        on_conn!(self, |c| integrations_with_pending(&c).await?)
    }
}

/// Records attempt outcomes ([`algo::outcomes::record`] in the caller's transaction); returns
/// the deliveries they released, each with the index of the outcome that released it.
pub async fn record<C: GenericClient + Sync>(
    c: &C,
    outcomes: &[Outcome],
    lease: &Lease,
) -> PgResult<Vec<(usize, Claimed)>> {
    let shard = count_shard(&lease.owner);
    algo::outcomes::record(&mut OutcomeRows(c, shard), outcomes, lease).await
}

/// The node's own rows of `minute_counts` (migration 8). A count row is locked from its upsert
/// to the commit, fsync included: when every node added to one row per integration and minute,
/// the nodes' outcome commits queued behind each other (the upsert took 40 us per delivery with
/// two nodes against 8 with one). Derived from the node id, so it is stable for a node's life.
fn count_shard(node: &str) -> i16 {
    // FNV-1a: stable across builds, unlike the std hasher.
    let h = node.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (h & 0x7fff) as i16
}

/// The outcome primitives on a transaction: whole groups in one statement each; the second
/// field is the node's count shard.
struct OutcomeRows<'c, C>(&'c C, i16);

impl<C: GenericClient + Sync> OutcomeSql for OutcomeRows<'_, C> {
    type Error = PgError;

    async fn add_counts(&mut self, counts: &[MinuteCount<'_>]) -> PgResult<()> {
        let ids: Vec<&str> = counts.iter().map(|c| c.0).collect();
        let minutes: Vec<i64> = counts.iter().map(|c| c.1).collect();
        let kinds: Vec<i64> = counts.iter().map(|c| c.2).collect();
        let ns: Vec<i64> = counts.iter().map(|c| c.3).collect();
        execute(
            self.0,
            "INSERT INTO minute_counts (integration_id, minute, kind, n, shard)
             SELECT *, $5::int2 FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[])
             ON CONFLICT (integration_id, minute, kind, shard)
             DO UPDATE SET n = minute_counts.n + excluded.n",
            &[&ids, &minutes, &kinds, &ns, &self.1],
        )
        .await?;
        Ok(())
    }

    /// The calls' order locks, so two nodes never hand over one call at once.
    async fn lock_calls(&mut self, calls: &[(&str, &str)]) -> PgResult<()> {
        let keys = calls.iter().map(|(i, c)| order_lock(i, c)).collect();
        lock_keys(self.0, keys).await
    }

    async fn insert_attempts(&mut self, with_attempt: &[&Outcome]) -> PgResult<()> {
        let mut a_ids = Vec::new();
        let mut a_nums = Vec::new();
        let mut a_started = Vec::new();
        let mut a_dur = Vec::new();
        let mut a_code = Vec::new();
        let mut a_class = Vec::new();
        let mut a_err = Vec::new();
        let mut a_excerpt = Vec::new();
        let mut a_manual = Vec::new();
        for o in with_attempt {
            let Some(a) = &o.attempt else { continue };
            a_ids.push(o.head.id.as_str());
            a_nums.push(o.head.attempts as i64 + 1);
            a_started.push(a.started_at);
            a_dur.push(a.duration_ms as i64);
            a_code.push(a.status_code.map(i64::from));
            a_class.push(a.error_class);
            a_err.push(a.error.as_deref());
            a_excerpt.push(a.response_excerpt.as_deref());
            a_manual.push(o.head.manual);
        }
        execute(
            self.0,
            "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                error_class, error, response_excerpt, manual)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                                  $6::text[], $7::text[], $8::text[], $9::bool[])
             ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at,
                duration_ms = excluded.duration_ms, status_code = excluded.status_code,
                error_class = excluded.error_class, error = excluded.error,
                response_excerpt = excluded.response_excerpt, manual = excluded.manual",
            &[
                &a_ids, &a_nums, &a_started, &a_dur, &a_code, &a_class, &a_err, &a_excerpt,
                &a_manual,
            ],
        )
        .await?;
        Ok(())
    }

    async fn settle(&mut self, rows: &[Settle<'_>]) -> PgResult<Vec<bool>> {
        let n = rows.len();
        let mut ids = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut incs = Vec::with_capacity(n);
        let mut retries = Vec::with_capacity(n);
        let mut next_at = Vec::with_capacity(n);
        let mut owners: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut until: Vec<Option<i64>> = Vec::with_capacity(n);
        let mut nows = Vec::with_capacity(n);
        let mut codes = Vec::with_capacity(n);
        let mut classes = Vec::with_capacity(n);
        for r in rows {
            ids.push(r.id);
            statuses.push(r.status.as_str());
            incs.push(r.attempted as i64);
            retries.push(r.retries_used as i64);
            next_at.push(r.next_attempt_at);
            owners.push(r.lease.map(|(owner, _)| owner));
            until.push(r.lease.map(|(_, until)| until));
            nows.push(r.now);
            codes.push(r.status_code.map(i64::from));
            classes.push(r.error_class);
        }
        // Rows are looked up by key (`d.id = ANY($1)`). "Still pending" is compared with a
        // value of the array, not a constant: with a constant the planner may read every open
        // delivery through the partial `deliveries_open` index instead, when its statistics lag
        // behind a fast-growing table (seen: 3 500 rows read to update 60).
        let changed: HashSet<String> = query(
            self.0,
            "UPDATE deliveries d SET status = u.st, attempts = d.attempts + u.inc, retries_used = u.ret,
                next_attempt_at = u.nxt, lease_owner = u.own, lease_until = u.unt, updated_at = u.now,
                last_status_code = COALESCE(u.code, d.last_status_code),
                last_error_class = CASE WHEN u.inc = 1 THEN u.cls ELSE d.last_error_class END
             FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[],
                         $7::int8[], $8::int8[], $9::int8[], $10::text[], $11::text[])
                  AS u(id, st, inc, ret, nxt, own, unt, now, code, cls, expect)
             WHERE d.id = u.id AND d.id = ANY($1) AND d.status = u.expect
             RETURNING d.id",
            &[
                &ids, &statuses, &incs, &retries, &next_at, &owners, &until, &nows, &codes,
                &classes, &vec!["pending"; n],
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        Ok(rows.iter().map(|r| changed.contains(r.id)).collect())
    }

    async fn has_pending_ordered(&mut self, integration_id: &str, call_id: &str) -> PgResult<bool> {
        Ok(query_opt(
            self.0,
            "SELECT 1 FROM deliveries WHERE integration_id = $1 AND call_id = $2 AND ordered
               AND status = 'pending' LIMIT 1",
            &[&integration_id, &call_id],
        )
        .await?
        .is_some())
    }

    async fn promote_blocked(
        &mut self,
        integration_id: &str,
        call_id: &str,
        lease: &Lease,
        now: i64,
    ) -> PgResult<Option<Claimed>> {
        // A delivery held for a batch window's boundary stays held: pending and unleased until
        // then, for the claimer (on the right of SET, `next_attempt_at` is the old value).
        let sql = format!(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = GREATEST(next_attempt_at, $3),
                lease_owner = CASE WHEN next_attempt_at <= $3 THEN $4 END,
                lease_until = CASE WHEN next_attempt_at <= $3 THEN $5::BIGINT END, updated_at = $3
             WHERE id = (SELECT id FROM deliveries WHERE integration_id = $1 AND call_id = $2 AND ordered
                         AND status = 'blocked' ORDER BY event_seq LIMIT 1)
             RETURNING {HEAD_COLS}, next_attempt_at"
        );
        Ok(query_opt(
            self.0,
            &sql,
            &[
                &integration_id,
                &call_id,
                &now,
                &lease.owner.as_ref(),
                &lease.until,
            ],
        )
        .await?
        .filter(|r| r.get::<_, i64>(10) <= now)
        .map(|r| head_row(&r)))
    }
}

pub async fn claim_due<C: GenericClient>(
    c: &C,
    integration_id: &str,
    limit: u32,
    lease: &Lease,
    now: i64,
) -> PgResult<Vec<Claimed>> {
    // SKIP LOCKED: a row another node is claiming right now is left to it, not waited for.
    let expired = format!(
        "UPDATE deliveries SET lease_owner = $2, lease_until = $3
         WHERE id IN (SELECT id FROM deliveries WHERE integration_id = $1 AND status = 'pending'
                      AND lease_until IS NOT NULL AND lease_until < $4 AND next_attempt_at <= $4
                      ORDER BY lease_until LIMIT $5 FOR UPDATE SKIP LOCKED)
         RETURNING {HEAD_COLS}"
    );
    let unleased = format!(
        "UPDATE deliveries SET lease_owner = $2, lease_until = $3
         WHERE id IN (SELECT id FROM deliveries WHERE integration_id = $1 AND status = 'pending'
                      AND lease_until IS NULL AND next_attempt_at <= $4
                      ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED)
         RETURNING {HEAD_COLS}"
    );
    let mut heads: Vec<Claimed> = Vec::new();
    for sql in [expired, unleased] {
        let room = limit.saturating_sub(heads.len() as u32) as i64;
        if room == 0 {
            break;
        }
        let rows = query(
            c,
            &sql,
            &[
                &integration_id,
                &lease.owner.as_ref(),
                &lease.until,
                &now,
                &room,
            ],
        )
        .await?;
        heads.extend(rows.iter().map(head_row));
    }
    heads.sort_by_key(|(_, seq)| *seq);
    Ok(heads)
}

pub async fn release<C: GenericClient>(c: &C, ids: &[String]) -> PgResult<()> {
    // By key, "still pending" compared with a value of the array (see `record`).
    execute(
        c,
        "UPDATE deliveries d SET lease_owner = NULL, lease_until = NULL
         FROM unnest($1::text[], $2::text[]) AS u(id, expect)
         WHERE d.id = u.id AND d.id = ANY($1) AND d.status = u.expect",
        &[&ids, &vec!["pending"; ids.len()]],
    )
    .await?;
    Ok(())
}

/// Gives up every lease whose owner is not a node heartbeating since `alive_since`.
pub async fn release_dead<C: GenericClient>(c: &C, alive_since: i64) -> PgResult<u64> {
    execute(
        c,
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner IS NOT NULL
           AND lease_owner NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $1)",
        &[&alive_since],
    )
    .await
}

pub async fn next_due_at<C: GenericClient>(c: &C, integration_id: &str) -> PgResult<Option<i64>> {
    // Unleased rows in due order (one index step), and leased ones (few: those in some node's
    // memory) once both due and expired.
    let unleased: Option<i64> = query_opt(
        c,
        "SELECT next_attempt_at FROM deliveries WHERE integration_id = $1 AND status = 'pending'
           AND lease_until IS NULL ORDER BY next_attempt_at LIMIT 1",
        &[&integration_id],
    )
    .await?
    .map(|r| r.get(0));
    let leased: Option<i64> = query(
        c,
        "SELECT MIN(GREATEST(next_attempt_at, lease_until)) FROM deliveries
         WHERE integration_id = $1 AND status = 'pending' AND lease_until IS NOT NULL",
        &[&integration_id],
    )
    .await?
    .first()
    .and_then(|r| r.get(0));
    Ok(match (unleased, leased) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

pub async fn integrations_with_pending<C: GenericClient>(c: &C) -> PgResult<Vec<String>> {
    Ok(query(
        c,
        // Each half is one of the partial due indexes.
        "SELECT DISTINCT integration_id FROM deliveries WHERE status = 'pending' AND lease_until IS NULL
         UNION
         SELECT DISTINCT integration_id FROM deliveries WHERE status = 'pending' AND lease_until IS NOT NULL",
        &[],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

#[cfg(test)]
mod tests {
    use super::count_shard;

    #[test]
    fn each_node_adds_to_its_own_count_rows_for_its_whole_life() {
        let shard = count_shard("node-4f2a9c01d3e5b788");
        assert_eq!(shard, count_shard("node-4f2a9c01d3e5b788"));
        assert!(shard >= 0);
        // Node ids differ in random hex: a handful of nodes land on distinct shards.
        let ids = [
            "node-01", "node-02", "node-03", "node-a1", "node-b7", "node-ff",
        ];
        let shards: std::collections::HashSet<i16> = ids.iter().map(|n| count_shard(n)).collect();
        assert_eq!(shards.len(), ids.len());
    }
}
