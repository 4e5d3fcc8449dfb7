//! Each integration's worker: its bounded queue, its in-flight slots and its rate limit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use super::{rate, Dispatcher};
use crate::cache::Integration;
use crate::model::settings::{MAX_PER_SECOND, MIN_PER_SECOND};
use crate::store::DispatchJob;

/// Deliveries waiting in memory per integration: 64 per request in flight, at most 1 024. With
/// the longest timeout (30 s) a queued delivery is sent within 64 × 30 s = 32 min, well inside
/// its lease, so the claimer never takes a delivery that is still waiting in memory. A
/// rate-limited integration's queue holds a minute of its rate ([`rate::queue_room`]).
const QUEUE_PER_SLOT: usize = 64;
const QUEUE_CAPACITY: usize = 1024;

impl Dispatcher {
    /// How many deliveries an integration's queue holds.
    pub(super) fn queue_room(&self, integration: &Integration) -> usize {
        let delivery = &integration.valid.spec.delivery;
        let room = (delivery.max_in_flight as usize * QUEUE_PER_SLOT)
            .clamp(QUEUE_PER_SLOT, QUEUE_CAPACITY);
        match delivery.max_per_second {
            Some(r) => rate::queue_room(r, self.live_nodes.load(Ordering::Relaxed), room),
            None => room,
        }
    }

    pub(super) fn worker(
        self: &Arc<Self>,
        integration_id: &str,
    ) -> Option<mpsc::Sender<DispatchJob>> {
        let mut workers = self.workers.lock();
        if let Some(tx) = workers.get(integration_id) {
            return Some(tx.clone());
        }
        let integration = self.cache.get(integration_id)?;
        let limit = integration.valid.spec.delivery.max_in_flight as usize;
        let (tx, rx) = mpsc::channel(self.queue_room(&integration));
        workers.insert(integration_id.to_string(), tx.clone());
        let me = self.clone();
        let iid = integration_id.to_string();
        self.worker_tasks
            .spawn(async move { me.run_worker(iid, rx, limit).await });
        Some(tx)
    }

    async fn run_worker(
        self: Arc<Self>,
        integration_id: String,
        mut rx: mpsc::Receiver<DispatchJob>,
        limit: usize,
    ) {
        let slots = Arc::new(Semaphore::new(limit));
        let mut waiting = None;
        loop {
            // A slot first, then a job: while the endpoint is saturated, jobs stay queued and
            // the queue's fullness is the back-pressure the claimer and ingest see.
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p,
                _ = self.shutdown.cancelled() => break,
            };
            let Ok(permit) = permit else { break };
            let job = tokio::select! {
                j = rx.recv() => j,
                _ = self.shutdown.cancelled() => break,
            };
            let Some(job) = job else { return };
            if !self.token(&integration_id).await {
                waiting = Some(job);
                break;
            }
            let me = self.clone();
            self.tracker
                .spawn(async move { me.attempt(job, permit).await });
        }
        // Shutting down: what is still queued goes back to the store for the next run.
        rx.close();
        let mut left: Vec<String> = waiting.into_iter().map(|j| j.head.id).collect();
        while let Ok(job) = rx.try_recv() {
            left.push(job.head.id);
        }
        if !left.is_empty() {
            let _ = self.store.release(left).await;
        }
    }

    /// Waits until the endpoint's rate limit allows one more request (at once when it has
    /// none); false when the node is shutting down meanwhile. The rate is read from the
    /// integration's current settings and the bucket is the integration's, not the worker's:
    /// after an edit the old worker drains its queue while the new one starts, and both take
    /// from the one bucket at the new rate.
    async fn token(&self, integration_id: &str) -> bool {
        let mut counted = false;
        loop {
            let per_second = self
                .cache
                .get(integration_id)
                .and_then(|i| i.valid.spec.delivery.max_per_second);
            let Some(per_second) = per_second else {
                return true;
            };
            // Bounded as when saved, whatever the stored row says.
            let per_second = per_second.clamp(MIN_PER_SECOND, MAX_PER_SECOND);
            let share = rate::share(per_second, self.live_nodes.load(Ordering::Relaxed));
            let now = self.clock.now_ms();
            let next = {
                let mut buckets = self.buckets.lock();
                let bucket = buckets
                    .entry(integration_id.to_string())
                    .or_insert_with(|| rate::Bucket::new(share, now));
                bucket.set_rate(share, now);
                match bucket.take(now) {
                    Ok(()) => return true,
                    Err(at) => at,
                }
            };
            if !counted {
                crate::metrics::METRICS.rate_limited();
                counted = true;
            }
            tokio::select! {
                _ = self.clock.sleep_until(next) => {}
                _ = self.shutdown.cancelled() => return false,
            }
        }
    }
}
