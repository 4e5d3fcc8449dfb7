//! Call progress in the writer's transaction: which state each call has reached, so a late or
//! repeated state is not sent, and a source's own call record supersedes one built from states.

use rusqlite::{params, Connection, OptionalExtension};

use super::internal;
use crate::ingest::from_states::DERIVED_CDR_PREFIX;
use crate::model::event::Event;
use crate::store::StoreResult;

pub enum Advance {
    /// Not past the call's latest accepted state: stored, not routed.
    Stale,
    /// Past it; the call goes on.
    Moved,
    /// The call ended with this state.
    Terminated {
        started_at: i64,
        answered_at: Option<i64>,
    },
}

const CONFIRMED: u8 = 3;
const TERMINATED: u8 = 4;

/// Records the state at `(rank, seq)` if it moves the call forward.
pub fn advance(c: &Connection, e: &Event, rank: u8, seq: i64, now: i64) -> StoreResult<Advance> {
    let known: Option<(u8, i64, i64, Option<i64>)> = c
        .prepare_cached(
            "SELECT rank, seq, started_at, answered_at FROM call_progress WHERE tenant_id = ?1 AND call_id = ?2",
        )
        .and_then(|mut st| {
            st.query_row([&e.tenant_id, &e.call_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(internal)?;
    if let Some((k_rank, k_seq, _, _)) = known {
        if (rank, seq) <= (k_rank, k_seq) {
            return Ok(Advance::Stale);
        }
    }
    let started_at = known
        .map(|k| k.2.min(e.occurred_at_ms))
        .unwrap_or(e.occurred_at_ms);
    let answered_at = known
        .and_then(|k| k.3)
        .or((rank == CONFIRMED).then_some(e.occurred_at_ms));
    c.prepare_cached(
        "INSERT INTO call_progress (tenant_id, call_id, rank, seq, started_at, answered_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant_id, call_id) DO UPDATE SET rank = ?3, seq = ?4, started_at = ?5,
             answered_at = ?6, updated_at = ?7",
    )
    .and_then(|mut st| {
        st.execute(params![
            e.tenant_id,
            e.call_id,
            rank,
            seq,
            started_at,
            answered_at,
            now
        ])
    })
    .map_err(internal)?;
    Ok(match rank {
        TERMINATED => Advance::Terminated {
            started_at,
            answered_at,
        },
        _ => Advance::Moved,
    })
}

/// Whether the source sent its own `call.completed` for the call.
pub fn has_source_record(c: &Connection, e: &Event) -> StoreResult<bool> {
    c.prepare_cached(
        "SELECT 1 FROM events WHERE tenant_id = ?1 AND call_id = ?2 AND type = 'call.completed'
           AND substr(id, 1, ?3) <> ?4 LIMIT 1",
    )
    .and_then(|mut st| {
        st.query_row(
            params![
                e.tenant_id,
                e.call_id,
                DERIVED_CDR_PREFIX.len(),
                DERIVED_CDR_PREFIX
            ],
            |_| Ok(()),
        )
        .optional()
    })
    .map(|o| o.is_some())
    .map_err(internal)
}

/// A source's own record arrived: the one built from states stops counting as the call's
/// record, and those of its deliveries still waiting for their grace time are cancelled.
/// Returns how many were cancelled.
pub fn supersede_derived(c: &Connection, e: &Event, now: i64) -> StoreResult<u64> {
    let derived = format!("{DERIVED_CDR_PREFIX}{}", e.call_id);
    let seq: Option<i64> = c
        .prepare_cached(
            "UPDATE events SET ended_at = NULL WHERE tenant_id = ?1 AND id = ?2 RETURNING seq",
        )
        .and_then(|mut st| {
            st.query_row([&e.tenant_id, &derived], |r| r.get(0))
                .optional()
        })
        .map_err(internal)?;
    let Some(seq) = seq else {
        return Ok(0);
    };
    c.prepare_cached("DELETE FROM batch_queue WHERE event_seq = ?1")
        .and_then(|mut st| st.execute([seq]))
        .map_err(internal)?;
    c.prepare_cached(
        "UPDATE deliveries SET status = 'cancelled', updated_at = ?2
         WHERE event_seq = ?1 AND status IN ('pending', 'held') AND lease_owner IS NULL",
    )
    .and_then(|mut st| st.execute(params![seq, now]))
    .map(|n| n as u64)
    .map_err(internal)
}
