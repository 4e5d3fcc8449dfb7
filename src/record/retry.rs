//! How long to wait before a retry. Linear (seed 002): the n-th retry waits n × 2 s.
//! Exponential (seed 000): about 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h, each
//! ±20 % so that many deliveries failing together do not retry together. A receiver's
//! `Retry-After` can lengthen a wait, never shorten it, up to [`MAX_RETRY_AFTER`].

use std::time::Duration;

use crate::model::integration::RetryPolicyKind;

const EXPONENTIAL_S: [u64; 10] = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800];

/// The longest wait a `Retry-After` can ask for; beyond it the receiver is treated as down
/// and the schedule runs on.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait before retry number `retries_used + 1`, or `None` when the retries are used up.
/// `jitter` is a number in [0, 1) (random in production, fixed in tests).
pub fn wait(
    policy: RetryPolicyKind,
    max_retries: u32,
    retries_used: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    if retries_used >= max_retries {
        return None;
    }
    let n = retries_used + 1;
    let base = match policy {
        RetryPolicyKind::Linear => Duration::from_secs(2 * n as u64),
        RetryPolicyKind::Exponential => {
            let s = EXPONENTIAL_S[(n as usize - 1).min(EXPONENTIAL_S.len() - 1)];
            Duration::from_secs_f64(s as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
        }
    };
    Some(match retry_after {
        Some(ra) => base.max(ra.min(MAX_RETRY_AFTER)),
        None => base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_waits_grow_by_two_seconds_and_stop() {
        let w = |used| wait(RetryPolicyKind::Linear, 3, used, None, 0.5);
        assert_eq!(w(0), Some(Duration::from_secs(2)));
        assert_eq!(w(1), Some(Duration::from_secs(4)));
        assert_eq!(w(2), Some(Duration::from_secs(6)));
        assert_eq!(w(3), None);
        assert_eq!(wait(RetryPolicyKind::Linear, 0, 0, None, 0.5), None);
    }

    #[test]
    fn exponential_follows_the_schedule_within_jitter() {
        for (used, secs) in EXPONENTIAL_S.iter().enumerate() {
            let lo =
                wait(RetryPolicyKind::Exponential, 10, used as u32, None, 0.0).unwrap_or_default();
            let hi = wait(RetryPolicyKind::Exponential, 10, used as u32, None, 0.999)
                .unwrap_or_default();
            assert!(lo.as_secs_f64() >= *secs as f64 * 0.8 - 0.001);
            assert!(hi.as_secs_f64() <= *secs as f64 * 1.2);
        }
        assert_eq!(wait(RetryPolicyKind::Exponential, 10, 10, None, 0.5), None);
    }

    #[test]
    fn retry_after_lengthens_within_bounds_but_never_shortens() {
        let p = RetryPolicyKind::Exponential;
        assert_eq!(
            wait(p, 10, 0, Some(Duration::from_secs(7)), 0.5),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            wait(p, 10, 0, Some(Duration::from_secs(1)), 0.5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            wait(p, 10, 0, Some(Duration::from_secs(86_400)), 0.5),
            Some(MAX_RETRY_AFTER)
        );
    }
}
