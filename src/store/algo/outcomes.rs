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
    /// Adds to the per-minute counts (`model::stats`): `(integration, minute, kind, n)`, sorted.
    async fn add_counts(&mut self, counts: &[MinuteCount<'_>]) -> Result<(), Self::Error>;
    /// Makes the call's oldest blocked ordered delivery pending, leased to `lease`.
    async fn promote_blocked(
        &mut self,
        integration_id: &str,
        call_id: &str,
        lease: &Lease,
        now: i64,
    ) -> Result<Option<(DeliveryHead, i64)>, Self::Error>;
}

/// One per-minute count to add: `(integration, minute, kind, n)`.
pub type MinuteCount<'a> = (&'a str, i64, i64, i64);

/// What the outcomes that changed their delivery add to the per-minute counts: one row per
/// (integration, minute, kind), sorted (so two nodes lock rows in one order).
pub fn tally<'a>(outcomes: &'a [Outcome], changed: &[bool]) -> Vec<MinuteCount<'a>> {
    use crate::model::stats;
    let mut counts: std::collections::BTreeMap<(&str, i64, i64), i64> = Default::default();
    for (o, _) in outcomes.iter().zip(changed).filter(|(_, c)| **c) {
        if o.attempt.is_none() {
            continue;
        }
        let kind = match o.next {
            NextStep::Succeeded if o.head.manual => stats::SUCCEEDED_MANUAL,
            NextStep::Succeeded => stats::succeeded(o.now - o.head.created_at),
            NextStep::Failed => stats::FAILED,
            NextStep::Retry { .. } => stats::RETRIED,
            NextStep::Held => continue,
        };
        let key = (o.head.integration_id.as_str(), stats::minute(o.now), kind);
        *counts.entry(key).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((i, m, k), n)| (i, m, k, n))
        .collect()
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
    let counts = tally(outcomes, &changed);
    if !counts.is_empty() {
        sql.add_counts(&counts).await?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::EventKind;
    use crate::model::stats;
    use crate::store::AttemptRecord;

    fn outcome(iid: &str, next: NextStep, manual: bool, attempted: bool) -> Outcome {
        Outcome {
            head: DeliveryHead {
                id: "d".into(),
                integration_id: iid.into(),
                call_id: "c".into(),
                trigger: EventKind::CallCompleted,
                ordered: false,
                manual,
                attempts: 0,
                retries_used: 0,
                created_at: 60_000,
            },
            attempt: attempted.then_some(AttemptRecord {
                started_at: 60_000,
                duration_ms: 1,
                status_code: Some(200),
                error_class: None,
                error: None,
                response_excerpt: None,
            }),
            next,
            now: 60_000 + 700,
        }
    }

    #[test]
    fn only_outcomes_that_changed_their_delivery_are_counted_and_manual_ones_have_no_latency() {
        let outcomes = [
            outcome("a", NextStep::Succeeded, false, true),
            outcome("a", NextStep::Succeeded, false, true),
            // Settled meanwhile by another node: not counted twice.
            outcome("a", NextStep::Succeeded, false, true),
            outcome("a", NextStep::Succeeded, true, true),
            outcome("b", NextStep::Failed, false, true),
            outcome(
                "b",
                NextStep::Retry {
                    at: 0,
                    keep_lease: true,
                },
                false,
                true,
            ),
            // Held: no attempt was made.
            outcome("b", NextStep::Held, false, false),
        ];
        let changed = [true, true, false, true, true, true, true];
        assert_eq!(
            tally(&outcomes, &changed),
            vec![
                ("a", 1, stats::SUCCEEDED_MANUAL, 1),
                ("a", 1, stats::succeeded(700), 2),
                ("b", 1, stats::FAILED, 1),
                ("b", 1, stats::RETRIED, 1),
            ]
        );
    }
}
