//! Recording attempt outcomes, and the ordered hand-over: when an ordered delivery settles
//! (succeeded or failed), the next blocked delivery of its call becomes pending, leased to this
//! node — unless something of the call is still pending. Decided in the transaction that
//! records the outcomes, so no per-call state lives in memory.

use crate::store::{DeliveryHead, DeliveryStatus, Lease, NextStep, Outcome, StoreError};

/// A delivery's row after its outcome: what [`OutcomeSql::settle`] writes, only where the
/// delivery is still pending (a delivery settled meanwhile, e.g. by another node's redelivery,
/// is left alone).
pub struct Settle<'a> {
    pub id: &'a str,
    pub status: DeliveryStatus,
    /// The outcome carries an attempt (a held delivery has none).
    pub attempted: bool,
    pub retries_used: u32,
    pub next_attempt_at: i64,
    /// A retry that waits in memory keeps its lease; anything else gives it up.
    pub lease: Option<(&'a str, i64)>,
    pub now: i64,
    pub status_code: Option<u16>,
    pub error_class: Option<&'static str>,
}

/// What a backend supplies, inside the transaction that records a group of outcomes.
#[allow(async_fn_in_trait)] // used with concrete backends only, never as a trait object
pub trait OutcomeSql {
    /// The backend's own error, kept whole so that its transaction can tell a retryable
    /// failure (a deadlock) from a final one.
    type Error: From<StoreError>;

    /// Serialises hand-overs of these `(integration, call)` pairs against other nodes (nothing
    /// to do where one writer does everything).
    async fn lock_calls(&mut self, calls: &[(&str, &str)]) -> Result<(), Self::Error>;
    /// Stores the attempts the outcomes carry (an attempt stored again is replaced).
    async fn insert_attempts(&mut self, with_attempt: &[&Outcome]) -> Result<(), Self::Error>;
    /// Writes the rows; for each row, whether its delivery was still pending and changed.
    async fn settle(&mut self, rows: &[Settle<'_>]) -> Result<Vec<bool>, Self::Error>;
    /// Whether an ordered delivery of the call is pending.
    async fn has_pending_ordered(
        &mut self,
        integration_id: &str,
        call_id: &str,
    ) -> Result<bool, Self::Error>;
    /// Makes the call's oldest blocked ordered delivery pending, leased to `lease`.
    async fn promote_blocked(
        &mut self,
        integration_id: &str,
        call_id: &str,
        lease: &Lease,
        now: i64,
    ) -> Result<Option<(DeliveryHead, i64)>, Self::Error>;
}

fn settles(o: &Outcome) -> bool {
    matches!(o.next, NextStep::Succeeded | NextStep::Failed)
}

/// The row an outcome leaves. A retry kept in memory keeps its lease for as long past its due
/// time as the lease had left now.
pub fn settle_row<'a>(o: &'a Outcome, lease: &'a Lease) -> Settle<'a> {
    let h = &o.head;
    let (status, next_attempt_at, keep, retries_used) = match o.next {
        NextStep::Succeeded => (DeliveryStatus::Succeeded, o.now, false, h.retries_used),
        NextStep::Failed => (DeliveryStatus::Failed, o.now, false, h.retries_used),
        NextStep::Held => (DeliveryStatus::Held, o.now, false, h.retries_used),
        NextStep::Retry { at, keep_lease } => {
            (DeliveryStatus::Pending, at, keep_lease, h.retries_used + 1)
        }
    };
    Settle {
        id: &h.id,
        status,
        attempted: o.attempt.is_some(),
        retries_used,
        next_attempt_at,
        lease: keep.then(|| {
            (
                lease.owner.as_ref(),
                next_attempt_at + (lease.until - o.now).max(0),
            )
        }),
        now: o.now,
        status_code: o.attempt.as_ref().and_then(|a| a.status_code),
        error_class: o.attempt.as_ref().and_then(|a| a.error_class),
    }
}

/// Records `outcomes`; returns the deliveries they released, each with the index of the outcome
/// that released it and its event's seq.
pub async fn record<S: OutcomeSql>(
    sql: &mut S,
    outcomes: &[Outcome],
    lease: &Lease,
) -> Result<Vec<(usize, (DeliveryHead, i64))>, S::Error> {
    // A manual redelivery is outside the call's order: it hands nothing over.
    let hands_over = |o: &Outcome| settles(o) && o.head.ordered && !o.head.manual;
    let calls: Vec<(&str, &str)> = outcomes
        .iter()
        .filter(|o| hands_over(o))
        .map(|o| (o.head.integration_id.as_str(), o.head.call_id.as_str()))
        .collect();
    sql.lock_calls(&calls).await?;
    let with_attempt: Vec<&Outcome> = outcomes.iter().filter(|o| o.attempt.is_some()).collect();
    if !with_attempt.is_empty() {
        sql.insert_attempts(&with_attempt).await?;
    }
    let rows: Vec<Settle> = outcomes.iter().map(|o| settle_row(o, lease)).collect();
    let changed = sql.settle(&rows).await?;
    let mut promoted = Vec::new();
    for (i, (o, changed)) in outcomes.iter().zip(changed).enumerate() {
        let h = &o.head;
        if hands_over(o)
            && changed
            && !sql
                .has_pending_ordered(&h.integration_id, &h.call_id)
                .await?
        {
            if let Some(next) = sql
                .promote_blocked(&h.integration_id, &h.call_id, lease, o.now)
                .await?
            {
                promoted.push((i, next));
            }
        }
    }
    Ok(promoted)
}
