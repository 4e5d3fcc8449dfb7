//! Call progress (see the SQLite store's `progress`): run under the call's advisory lock,
//! which the ingest transaction takes before it looks at any call.

use deadpool_postgres::GenericClient;

use super::{execute, query, query_opt, PgResult};
use crate::ingest::from_states::DERIVED_CDR_PREFIX;
use crate::model::event::Event;

pub enum Advance {
    Stale,
    Moved,
    Terminated {
        started_at: i64,
        answered_at: Option<i64>,
    },
}

const CONFIRMED: u8 = 3;
const TERMINATED: u8 = 4;

pub async fn advance<C: GenericClient>(
    c: &C,
    e: &Event,
    rank: u8,
    seq: i64,
    now: i64,
) -> PgResult<Advance> {
    let known: Option<(i64, i64, i64, Option<i64>)> = query_opt(
        c,
        "SELECT rank, seq, started_at, answered_at FROM call_progress WHERE tenant_id = $1 AND call_id = $2",
        &[&e.tenant_id, &e.call_id],
    )
    .await?
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)));
    if let Some((k_rank, k_seq, _, _)) = known {
        if (rank as i64, seq) <= (k_rank, k_seq) {
            return Ok(Advance::Stale);
        }
    }
    let started_at = known
        .map(|k| k.2.min(e.occurred_at_ms))
        .unwrap_or(e.occurred_at_ms);
    let answered_at = known
        .and_then(|k| k.3)
        .or((rank == CONFIRMED).then_some(e.occurred_at_ms));
    execute(
        c,
        "INSERT INTO call_progress (tenant_id, call_id, rank, seq, started_at, answered_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, call_id) DO UPDATE SET rank = $3, seq = $4, started_at = $5,
             answered_at = $6, updated_at = $7",
        &[&e.tenant_id, &e.call_id, &(rank as i64), &seq, &started_at, &answered_at, &now],
    )
    .await?;
    Ok(match rank {
        TERMINATED => Advance::Terminated {
            started_at,
            answered_at,
        },
        _ => Advance::Moved,
    })
}

pub async fn has_source_record<C: GenericClient>(c: &C, e: &Event) -> PgResult<bool> {
    let pattern = format!("{DERIVED_CDR_PREFIX}%");
    Ok(query_opt(
        c,
        "SELECT 1 FROM events WHERE tenant_id = $1 AND call_id = $2 AND type = 'call.completed'
           AND id NOT LIKE $3 LIMIT 1",
        &[&e.tenant_id, &e.call_id, &pattern],
    )
    .await?
    .is_some())
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
