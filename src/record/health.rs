//! An integration's health across attempts: when it starts failing, recovers, or is disabled.
//!
//! Only changes of state are written to the store; the count of consecutive failures between
//! them lives in memory (and is saved with each change).

use crate::store::{IntegrationHealth, IntegrationStatus};

/// What one attempt's result does to the integration.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing worth writing.
    None,
    /// The first failure after a success: `failing_since` starts.
    StartedFailing,
    /// A success after failures.
    Recovered,
    /// Disable now, with this reason.
    Disable(String),
}

/// The facts about one attempt that health depends on.
pub struct AttemptFacts<'a> {
    pub success: bool,
    pub gone: bool,
    /// This delivery has no retries left.
    pub exhausted: bool,
    /// The integration retries on the exponential schedule.
    pub exponential: bool,
    /// When the delivery was created: with `failing_since` at or before it, not one attempt
    /// to the integration succeeded during this delivery's whole schedule.
    pub delivery_created_at: i64,
    pub disable_after_failures: Option<u32>,
    pub last_error: &'a str,
    pub now: i64,
}

/// Updates `h` for one attempt and says what changed.
pub fn after_attempt(h: &mut IntegrationHealth, f: &AttemptFacts) -> Change {
    if h.status == IntegrationStatus::Disabled {
        return Change::None;
    }
    if f.success {
        let was_failing = h.failing_since.is_some();
        h.failing_since = None;
        h.consecutive_failures = 0;
        h.updated_at = f.now;
        return if was_failing {
            Change::Recovered
        } else {
            Change::None
        };
    }
    h.consecutive_failures = h.consecutive_failures.saturating_add(1);
    let started = h.failing_since.is_none();
    let since = *h.failing_since.get_or_insert(f.now);
    h.updated_at = f.now;
    let reason = if f.gone {
        Some(format!("the endpoint answered 410 Gone: {}", f.last_error))
    } else if f
        .disable_after_failures
        .is_some_and(|n| h.consecutive_failures >= n)
    {
        Some(format!(
            "{} consecutive failed attempts (threshold {}); last error: {}",
            h.consecutive_failures,
            f.disable_after_failures.unwrap_or_default(),
            f.last_error
        ))
    } else if f.disable_after_failures.is_none()
        && f.exponential
        && f.exhausted
        && since <= f.delivery_created_at
    {
        Some(format!(
            "a delivery exhausted the exponential retry schedule with no successful attempt since {}; last error: {}",
            crate::time::format_ms(since),
            f.last_error
        ))
    } else {
        None
    };
    match reason {
        Some(r) => {
            h.status = IntegrationStatus::Disabled;
            h.disabled_reason = Some(r.clone());
            Change::Disable(r)
        }
        None if started => Change::StartedFailing,
        None => Change::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> IntegrationHealth {
        IntegrationHealth {
            status: IntegrationStatus::Active,
            disabled_reason: None,
            failing_since: None,
            consecutive_failures: 0,
            updated_at: 0,
        }
    }

    fn facts(success: bool, now: i64) -> AttemptFacts<'static> {
        AttemptFacts {
            success,
            gone: false,
            exhausted: false,
            exponential: true,
            delivery_created_at: 0,
            disable_after_failures: None,
            last_error: "500",
            now,
        }
    }

    #[test]
    fn failing_then_recovering_is_reported_once_each() {
        let mut h = healthy();
        assert_eq!(
            after_attempt(&mut h, &facts(false, 10)),
            Change::StartedFailing
        );
        assert_eq!(after_attempt(&mut h, &facts(false, 20)), Change::None);
        assert_eq!((h.failing_since, h.consecutive_failures), (Some(10), 2));
        assert_eq!(after_attempt(&mut h, &facts(true, 30)), Change::Recovered);
        assert_eq!((h.failing_since, h.consecutive_failures), (None, 0));
    }

    #[test]
    fn gone_threshold_and_exhausted_schedule_disable() {
        let mut h = healthy();
        let gone = AttemptFacts {
            gone: true,
            ..facts(false, 1)
        };
        assert!(matches!(after_attempt(&mut h, &gone), Change::Disable(_)));
        assert_eq!(h.status, IntegrationStatus::Disabled);

        let mut h = healthy();
        let f = |now| AttemptFacts {
            disable_after_failures: Some(3),
            ..facts(false, now)
        };
        after_attempt(&mut h, &f(1));
        after_attempt(&mut h, &f(2));
        assert!(matches!(after_attempt(&mut h, &f(3)), Change::Disable(_)));

        // Exhausted, but another delivery succeeded since this one was created: stays active.
        let mut h = healthy();
        after_attempt(&mut h, &facts(false, 50));
        let late = AttemptFacts {
            exhausted: true,
            delivery_created_at: 40,
            ..facts(false, 60)
        };
        assert_eq!(after_attempt(&mut h, &late), Change::None);
        let whole = AttemptFacts {
            exhausted: true,
            delivery_created_at: 50,
            ..facts(false, 70)
        };
        assert!(matches!(after_attempt(&mut h, &whole), Change::Disable(_)));
    }
}
