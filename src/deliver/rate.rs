//! The per-endpoint rate limit (`delivery.max_per_second`): a token bucket on the node's clock,
//! for receivers whose APIs enforce a quota that a burst of calls would exceed.
//!
//! The bucket holds one second's worth of requests (at least one), so a burst after a quiet
//! spell is bounded by the rate itself. With several nodes each takes an equal share of the
//! rate ([`share`]): over time the endpoint sees at most the rate from all of them together,
//! and less when its traffic lands on one node only (a quota is a ceiling, so erring low is the
//! safe side). Each node's burst is at least one request, so N nodes may together send up to
//! N at once after a quiet spell; and a node learns that another joined or left at the next
//! heartbeat (seconds). Deliveries waiting for a token wait in the integration's bounded queue;
//! the rest wait in the store, as for a saturated endpoint.

/// A token bucket; time in the node clock's milliseconds.
#[derive(Debug, Clone)]
pub struct Bucket {
    per_ms: f64,
    burst: f64,
    tokens: f64,
    at_ms: i64,
}

impl Bucket {
    /// A full bucket for `per_second` requests a second.
    pub fn new(per_second: f64, now_ms: i64) -> Bucket {
        let burst = burst(per_second);
        Bucket {
            per_ms: per_second / 1000.0,
            burst,
            tokens: burst,
            at_ms: now_ms,
        }
    }

    /// Changes the rate (the node's share moved as nodes came and went); tokens held stay,
    /// up to the new burst.
    pub fn set_rate(&mut self, per_second: f64, now_ms: i64) {
        self.refill(now_ms);
        self.per_ms = per_second / 1000.0;
        self.burst = burst(per_second);
        self.tokens = self.tokens.min(self.burst);
    }

    /// Takes a token if there is one; otherwise says when the next one will be there.
    pub fn take(&mut self, now_ms: i64) -> Result<(), i64> {
        self.refill(now_ms);
        // Within a rounding error of a whole token is a token: 200 ms at 5/s is 1.0 give or
        // take the last bit, and waiting a millisecond more each time would drift.
        if self.tokens >= 1.0 - EPSILON {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Ok(());
        }
        let wait_ms = ((1.0 - self.tokens) / self.per_ms - EPSILON)
            .ceil()
            .max(1.0);
        Err(self.at_ms + wait_ms as i64)
    }

    fn refill(&mut self, now_ms: i64) {
        // A clock that went back (never the node's own) adds nothing and takes nothing.
        if now_ms > self.at_ms {
            let added = (now_ms - self.at_ms) as f64 * self.per_ms;
            self.tokens = (self.tokens + added).min(self.burst);
            self.at_ms = now_ms;
        }
    }
}

const EPSILON: f64 = 1e-9;

/// One second's worth of requests, at least one.
fn burst(per_second: f64) -> f64 {
    per_second.ceil().max(1.0)
}

/// This node's share of an endpoint's rate when `nodes` nodes are alive.
pub fn share(per_second: f64, nodes: usize) -> f64 {
    per_second / nodes.max(1) as f64
}

/// How many deliveries the integration's queue holds while rate-limited: a minute of them at
/// the node's share (at least one). A queued delivery is leased to this node, so the queue must
/// drain well inside a lease; the rest waits in the store.
pub fn queue_room(per_second: f64, nodes: usize, unlimited_room: usize) -> usize {
    let minute = (share(per_second, nodes) * 60.0).ceil() as usize;
    minute.clamp(1, unlimited_room)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends as fast as the bucket allows for `ms` and returns the send times.
    fn sends(per_second: f64, ms: i64) -> Vec<i64> {
        let mut b = Bucket::new(per_second, 0);
        let (mut now, mut out) = (0, Vec::new());
        while now <= ms {
            match b.take(now) {
                Ok(()) => out.push(now),
                Err(at) => {
                    assert!(at > now, "the next token is in the future");
                    now = at;
                }
            }
        }
        out
    }

    #[test]
    fn a_burst_is_one_seconds_worth_and_then_the_rate_holds() {
        let s = sends(5.0, 10_000);
        // Five at once, then one every 200 ms: 5 + 50 over ten seconds.
        assert_eq!(s.iter().filter(|t| **t == 0).count(), 5);
        assert_eq!(s.len(), 55);
        // In every window of one second, never more than burst + rate.
        for (i, t) in s.iter().enumerate() {
            let within = s[i..].iter().take_while(|u| **u < t + 1000).count();
            assert!(within <= 10, "{within} sends in the second from {t}");
        }
    }

    #[test]
    fn a_rate_below_one_a_second_waits_whole_intervals() {
        let s = sends(0.5, 10_000);
        assert_eq!(s, vec![0, 2000, 4000, 6000, 8000, 10_000]);
    }

    #[test]
    fn a_quiet_spell_refills_no_more_than_the_burst() {
        let mut b = Bucket::new(2.0, 0);
        assert!(b.take(0).is_ok() && b.take(0).is_ok());
        assert_eq!(b.take(0), Err(500));
        // An hour of quiet still allows two at once, not 7 200.
        let later = 3_600_000;
        assert!(b.take(later).is_ok() && b.take(later).is_ok());
        assert_eq!(b.take(later), Err(later + 500));
    }

    #[test]
    fn nodes_share_the_rate_and_the_queue_holds_a_minute_of_it() {
        assert_eq!(share(10.0, 2), 5.0);
        assert_eq!(share(10.0, 0), 10.0);
        assert_eq!(queue_room(10.0, 1, 1024), 600);
        assert_eq!(queue_room(100.0, 1, 1024), 1024);
        assert_eq!(queue_room(0.1, 4, 1024), 2);
        let mut b = Bucket::new(10.0, 0);
        b.set_rate(share(10.0, 2), 0);
        let taken = (0..20).filter(|_| b.take(0).is_ok()).count();
        assert_eq!(taken, 5, "the burst follows the share");
    }
}
