//! The claimer: takes due work from the store — retries due later than the memory horizon,
//! overflow, work recovered after a restart or from a dead node — one integration at a time,
//! only as fast as that integration's queue has room, so a backlog stays in the store.
//! Part of the [`Dispatcher`]: it fills the same per-integration queues.

use std::sync::Arc;
use std::time::Duration;

use super::Dispatcher;

/// The most deliveries one claim takes.
const CLAIM_BATCH: usize = 256;
/// How often the claimer re-reads which integrations have pending work, as a safety net.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Dispatcher {
    pub(super) async fn run_claimer(self: Arc<Self>) {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            let now = self.clock.now_ms();
            let next = self.due.lock().values().min().copied();
            let wait = next.map_or(1000, |t| (t - now).clamp(0, 1000));
            if wait > 0 {
                tokio::select! {
                    _ = self.clock.sleep(Duration::from_millis(wait as u64)) => {}
                    _ = self.wake.notified() => {}
                    _ = self.shutdown.cancelled() => return,
                }
            }
            if self.shutdown.is_cancelled() {
                return;
            }
            let now = self.clock.now_ms();
            let ready: Vec<String> = self
                .due
                .lock()
                .iter()
                .filter(|(_, t)| **t <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for iid in ready {
                self.claim_for(&iid, now).await;
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = tokio::time::Instant::now();
                if let Ok(ids) = self.store.integrations_with_pending().await {
                    for iid in ids {
                        self.note_due(&iid, now);
                    }
                }
            }
        }
    }

    async fn claim_for(self: &Arc<Self>, iid: &str, now: i64) {
        self.due.lock().remove(iid);
        let Some(tx) = self.worker(iid) else { return };
        let room = tx.capacity();
        if room == 0 {
            self.note_due(iid, now + 50);
            return;
        }
        let limit = room.min(CLAIM_BATCH);
        let body_only = self
            .cache
            .get(iid)
            .is_some_and(|i| crate::render::splices_body(&i.valid));
        match self
            .store
            .claim_due(iid, limit as u32, self.lease(), now, body_only)
            .await
        {
            Ok(jobs) => {
                let n = jobs.len();
                let mut back = Vec::new();
                for job in jobs {
                    if let Err(e) = tx.try_send(job) {
                        back.push(e.into_inner().head.id);
                    }
                }
                if !back.is_empty() {
                    let _ = self.store.release(back).await;
                }
                if n >= limit {
                    self.note_due(iid, now);
                } else {
                    match self.store.next_due_at(iid).await {
                        Ok(Some(t)) => self.note_due(iid, t.max(now + 1)),
                        Ok(None) => {}
                        Err(_) => self.note_due(iid, now + 1000),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, integration = iid, "claim failed; trying again shortly");
                self.note_due(iid, now + 1000);
            }
        }
    }
}
