//! Call progress (see the SQLite store's `progress`): run under the call's advisory lock,
//! which the ingest transaction takes before it looks at any call.

use deadpool_postgres::GenericClient;

use super::{execute, query, query_opt, PgError, PgResult};
use crate::model::call::DERIVED_CDR_PREFIX;
use crate::model::event::Event;

use crate::store::algo::progress::{Progress, ProgressSql};

/// The progress primitives on the ingest transaction.
pub(super) struct ProgressRows<'c, C>(pub(super) &'c C);

impl<C: GenericClient + Sync> ProgressSql for ProgressRows<'_, C> {
    type Error = PgError;

    async fn load_progress(
        &mut self,
        tenant_id: &str,
        call_id: &str,
    ) -> PgResult<Option<Progress>> {
        Ok(query_opt(
            self.0,
            "SELECT rank, seq, started_at, answered_at FROM call_progress WHERE tenant_id = $1 AND call_id = $2",
            &[&tenant_id, &call_id],
        )
        .await?
        .map(|r| Progress {
            rank: r.get(0),
            seq: r.get(1),
            started_at: r.get(2),
            answered_at: r.get(3),
        }))
    }

    async fn save_progress(
        &mut self,
        tenant_id: &str,
        call_id: &str,
        p: &Progress,
        now: i64,
    ) -> PgResult<()> {
        execute(
            self.0,
            "INSERT INTO call_progress (tenant_id, call_id, rank, seq, started_at, answered_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant_id, call_id) DO UPDATE SET rank = $3, seq = $4, started_at = $5,
                 answered_at = $6, updated_at = $7",
            &[&tenant_id, &call_id, &p.rank, &p.seq, &p.started_at, &p.answered_at, &now],
        )
        .await?;
        Ok(())
    }

    async fn has_source_record(&mut self, e: &Event) -> PgResult<bool> {
        let pattern = format!("{DERIVED_CDR_PREFIX}%");
        Ok(query_opt(
            self.0,
            "SELECT 1 FROM events WHERE tenant_id = $1 AND call_id = $2 AND type = 'call.completed'
               AND id NOT LIKE $3 LIMIT 1",
            &[&e.tenant_id, &e.call_id, &pattern],
        )
        .await?
        .is_some())
    }
}

/// Sources' own records arrived for these calls: the records built from their states stop
/// counting, and those of their deliveries still waiting for their grace time are cancelled.
/// One statement for a whole request (most calls have no built record; asking per event would
/// be a round trip each). Returns how many deliveries were cancelled.
pub async fn supersede_derived<C: GenericClient>(
    c: &C,
    records: &[&Event],
    now: i64,
) -> PgResult<u64> {
    if records.is_empty() {
        return Ok(0);
    }
    let tenants: Vec<&str> = records.iter().map(|e| e.tenant_id.as_str()).collect();
    let derived: Vec<String> = records
        .iter()
        .map(|e| format!("{DERIVED_CDR_PREFIX}{}", e.call_id))
        .collect();
    let seqs: Vec<i64> = query(
        c,
        "UPDATE events e SET ended_at = NULL FROM unnest($1::text[], $2::text[]) AS u(t, i)
         WHERE e.tenant_id = u.t AND e.id = u.i RETURNING e.seq",
        &[&tenants, &derived],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    if seqs.is_empty() {
        return Ok(0);
    }
    execute(
        c,
        "DELETE FROM batch_queue WHERE event_seq = ANY($1)",
        &[&seqs],
    )
    .await?;
    execute(
        c,
        "UPDATE deliveries SET status = 'cancelled', updated_at = $2
         WHERE event_seq = ANY($1) AND status IN ('pending', 'held') AND lease_owner IS NULL",
        &[&seqs, &now],
    )
    .await
}
