//! Call progress: which state each call has reached, so a late or repeated `call.state` is
//! stored but not sent, and a call that terminates without a record of its own gets one built
//! from its states. Decided in the ingest transaction (on PostgreSQL under the call's lock).

use crate::model::call::TerminatedCall;
use crate::model::event::Event;
use crate::store::StoreError;

/// What a backend supplies, inside the ingest transaction.
#[allow(async_fn_in_trait)] // used with concrete backends only, never as a trait object
pub trait ProgressSql {
    /// The backend's own error, kept whole so that its transaction can tell a retryable
    /// failure (a deadlock) from a final one.
    type Error: From<StoreError>;

    async fn load_progress(
        &mut self,
        tenant_id: &str,
        call_id: &str,
    ) -> Result<Option<Progress>, Self::Error>;
    async fn save_progress(
        &mut self,
        tenant_id: &str,
        call_id: &str,
        progress: &Progress,
        now: i64,
    ) -> Result<(), Self::Error>;
    /// Whether the source sent its own `call.completed` for the event's call.
    async fn has_source_record(&mut self, e: &Event) -> Result<bool, Self::Error>;
}

/// What a stored call state means for routing it.
pub enum StateVerdict {
    /// Not past the call's latest accepted state: stored, not routed.
    Stale,
    /// Routed; `ended` when the call ended with it and has no record of its own yet.
    Route { ended: Option<TerminatedCall> },
}

/// Records the call state `e` at position `(rank, seq)` if it moves its call forward.
pub async fn call_state<S: ProgressSql>(
    sql: &mut S,
    e: &Event,
    rank: u8,
    seq: i64,
    now: i64,
) -> Result<StateVerdict, S::Error> {
    let known = sql.load_progress(&e.tenant_id, &e.call_id).await?;
    let (next, advance) = advance_call(known, rank, seq, e.occurred_at_ms);
    let Some(p) = next else {
        return Ok(StateVerdict::Stale);
    };
    sql.save_progress(&e.tenant_id, &e.call_id, &p, now).await?;
    let ended = match advance {
        Advance::Terminated {
            started_at,
            answered_at,
        } if !sql.has_source_record(e).await? => Some(TerminatedCall {
            event: e.clone(),
            started_at,
            answered_at,
        }),
        _ => None,
    };
    Ok(StateVerdict::Route { ended })
}

/// Where a call state leaves its call.
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

/// A call's progress as stored: its latest accepted state's (rank, seq), when it started and
/// when it was answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub rank: i64,
    pub seq: i64,
    pub started_at: i64,
    pub answered_at: Option<i64>,
}

const CONFIRMED: u8 = 3;
const TERMINATED: u8 = 4;

/// Decides a state at `(rank, seq)` occurring at `at` against the call's stored progress: the
/// progress to store (`None`: the state is stale, store nothing) and what it means.
pub fn advance_call(
    known: Option<Progress>,
    rank: u8,
    seq: i64,
    at: i64,
) -> (Option<Progress>, Advance) {
    if let Some(k) = known {
        if (rank as i64, seq) <= (k.rank, k.seq) {
            return (None, Advance::Stale);
        }
    }
    let started_at = known.map_or(at, |k| k.started_at.min(at));
    let answered_at = known
        .and_then(|k| k.answered_at)
        .or((rank == CONFIRMED).then_some(at));
    let next = Progress {
        rank: rank as i64,
        seq,
        started_at,
        answered_at,
    };
    let advance = match rank {
        TERMINATED => Advance::Terminated {
            started_at,
            answered_at,
        },
        _ => Advance::Moved,
    };
    (Some(next), advance)
}
