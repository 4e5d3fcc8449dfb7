//! The node's one clock. Everything the server schedules — retry waits, claims of due work,
//! batch-window boundaries, leases, link expiry, retention — reads the time and waits through
//! the [`Clock`] it was given, never the wall clock directly.
//!
//! In production the clock is the system's. Tests start the server with [`Clock::manual`]: it
//! runs with real time (sockets, timeouts and the database keep their real pace) plus an offset
//! the test moves forward with [`Clock::advance`], waking every wait whose moment has come. A
//! retry schedule of seconds is then checked in milliseconds, on the server's own timestamps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Manual>>);

/// The offset a test has moved the clock by, and the waits to wake when it moves.
#[derive(Default)]
struct Manual {
    offset_ms: AtomicI64,
    moved: Notify,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock a test moves forward with [`Clock::advance`]; it starts at the system's time.
    pub fn manual() -> Clock {
        Clock(Some(Arc::default()))
    }

    /// Milliseconds since the Unix epoch (UTC), now.
    pub fn now_ms(&self) -> i64 {
        let offset = self
            .0
            .as_ref()
            .map_or(0, |m| m.offset_ms.load(Ordering::Acquire));
        crate::time::now_ms() + offset
    }

    /// Moves a manual clock forward by `by` and wakes the waits that are due; the system clock
    /// cannot be moved (nothing happens).
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.0 {
            let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            m.offset_ms.fetch_add(by, Ordering::AcqRel);
            m.moved.notify_waiters();
        }
    }

    /// Waits until the clock reads `at_ms` or later.
    pub async fn sleep_until(&self, at_ms: i64) {
        loop {
            let now = self.now_ms();
            if now >= at_ms {
                return;
            }
            let real = tokio::time::sleep(Duration::from_millis((at_ms - now) as u64));
            match &self.0 {
                None => return real.await,
                Some(m) => {
                    // Registered before the time is read again, so an advance in between is
                    // not missed.
                    let moved = m.moved.notified();
                    tokio::pin!(moved);
                    moved.as_mut().enable();
                    if self.now_ms() >= at_ms {
                        return;
                    }
                    tokio::select! {
                        _ = real => {}
                        _ = moved => {}
                    }
                }
            }
        }
    }

    /// Waits `d` on this clock.
    pub async fn sleep(&self, d: Duration) {
        let d = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.sleep_until(self.now_ms().saturating_add(d)).await
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system"),
            Some(m) => write!(
                f,
                "Clock::manual(+{} ms)",
                m.offset_ms.load(Ordering::Relaxed)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_a_long_wait_when_advanced_past_it() {
        let clock = Clock::manual();
        let start = clock.now_ms();
        let waiting = tokio::spawn({
            let clock = clock.clone();
            async move {
                clock.sleep_until(start + 3_600_000).await;
                clock.now_ms()
            }
        });
        tokio::task::yield_now().await;
        // Not yet due: a shorter advance leaves it waiting.
        clock.advance(Duration::from_secs(1800));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        clock.advance(Duration::from_secs(1800));
        let woke_at = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the advance, not after an hour")
            .expect("task");
        assert!(woke_at - start >= 3_600_000);
    }

    #[tokio::test]
    async fn the_system_clock_cannot_be_moved() {
        let clock = Clock::system();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_ms() - before < 60_000);
    }
}
