//! Per-integration workers and the claimer.
//!
//! Fresh deliveries arrive from ingest already leased to this node and go straight into their
//! integration's queue — no polling on the fast path. Each integration has its own bounded
//! queue and in-flight limit, so a hanging endpoint fills only its own queue. When a queue is
//! full, the overflow gives its leases back and waits in the store; the claimer takes it (and
//! due retries, and work recovered after a restart) only as fast as the queue has room, so the
//! backlog lives in the store and memory stays bounded.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::attempt;
use super::client::HttpClient;
use crate::cache::IntegrationCache;
use crate::record::health::{self, Change};
use crate::store::{DispatchJob, DynStore, IntegrationHealth, Lease};
use crate::time::now_ms;

/// Deliveries waiting in memory per integration: 64 per request in flight, at most 1 024. With
/// the longest timeout (30 s) a queued delivery is sent within 64 × 30 s = 32 min, well inside
/// its lease, so the claimer never takes a delivery that is still waiting in memory.
const QUEUE_PER_SLOT: usize = 64;
const QUEUE_CAPACITY: usize = 1024;
/// How long a lease lasts: longer than any queue wait plus the longest timeout.
pub const LEASE_MS: i64 = 60 * 60 * 1000;
/// Retries due within this horizon wait in memory; later ones give their lease up.
pub const MEMORY_HORIZON_MS: i64 = 60_000;
/// At most this many retries wait in memory at once.
const MAX_TIMERS: usize = 100_000;
/// At most this many attempts wait for their outcome's commit at once, past their request.
const MAX_RECORDING: usize = 8192;
/// The most deliveries one claim takes.
const CLAIM_BATCH: usize = 256;
/// How often the claimer re-reads which integrations have pending work, as a safety net.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct Dispatcher {
    pub(super) store: DynStore,
    pub(super) cache: Arc<IntegrationCache>,
    pub(super) client: HttpClient,
    /// Signs recording URLs in payloads.
    pub(super) links: Option<crate::security::links::Links>,
    /// Payload parts shared by the integrations an event fans out to.
    pub(super) render_cache: crate::render::cache::RenderCache,
    node: Arc<str>,
    workers: Mutex<HashMap<String, mpsc::Sender<DispatchJob>>>,
    /// Integration → when its store work is next claimable. Entries only ever move earlier
    /// (min-merge), so a note made while a claim runs is never lost.
    due: Mutex<HashMap<String, i64>>,
    /// Health between persisted changes: consecutive failures, failing since.
    health: Mutex<HashMap<String, IntegrationHealth>>,
    wake: Notify,
    pub(super) shutdown: CancellationToken,
    tracker: TaskTracker,
    pub(super) timers: AtomicUsize,
    /// Attempts past their request and waiting for their outcome's commit.
    pub(super) recording: Arc<Semaphore>,
    /// Tells the operator about integrations failing, disabled and recovered.
    notifier: Mutex<Option<Arc<super::notify::Notifier>>>,
}

impl Dispatcher {
    pub fn new(
        store: DynStore,
        cache: Arc<IntegrationCache>,
        client: HttpClient,
        links: Option<crate::security::links::Links>,
    ) -> Arc<Dispatcher> {
        let node: Arc<str> = Arc::from(format!(
            "node-{}",
            hex::encode(crate::security::random_bytes::<6>())
        ));
        Arc::new(Dispatcher {
            store,
            cache,
            client,
            links,
            render_cache: Default::default(),
            node,
            workers: Mutex::new(HashMap::new()),
            due: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            timers: AtomicUsize::new(0),
            recording: Arc::new(Semaphore::new(MAX_RECORDING)),
            notifier: Mutex::new(None),
        })
    }

    pub fn set_notifier(&self, n: super::notify::Notifier) {
        *self.notifier.lock() = Some(Arc::new(n));
    }

    /// Sends an operational notification about an integration, if one is configured.
    pub fn notify(&self, kind: &str, iid: &str, reason: Option<&str>, last_error: Option<&str>) {
        let notifier = self.notifier.lock().clone();
        if let (Some(n), Some(i)) = (notifier, self.cache.get(iid)) {
            n.send(super::notify::Notifier::event(
                kind,
                &i,
                reason,
                last_error,
                now_ms(),
            ));
        }
    }

    /// This node's id: the owner of its leases.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// A lease for work this node takes now.
    pub fn lease(&self) -> Lease {
        Lease {
            owner: self.node.clone(),
            until: now_ms() + LEASE_MS,
        }
    }

    /// Recovers work left by a previous run and starts the claimer.
    pub async fn start(
        self: &Arc<Self>,
        node_timeout_ms: i64,
    ) -> Result<(), crate::store::StoreError> {
        let released = self.store.recover(now_ms(), node_timeout_ms).await?;
        if released > 0 {
            tracing::info!(
                released,
                "recovered deliveries left in flight by the previous run"
            );
        }
        let now = now_ms();
        for iid in self.store.integrations_with_pending().await? {
            self.note_due(&iid, now);
        }
        let me = self.clone();
        tokio::spawn(async move { me.run_claimer().await });
        tokio::spawn(super::batch::run(self.clone()));
        Ok(())
    }

    /// Hands ready deliveries to their integrations' queues; overflow goes back to the store.
    pub fn dispatch(self: &Arc<Self>, jobs: Vec<DispatchJob>) {
        if jobs.is_empty() || self.shutdown.is_cancelled() {
            return;
        }
        let mut spilled = Vec::new();
        let mut spilled_from = HashSet::new();
        for job in jobs {
            let Some(tx) = self.worker(&job.head.integration_id) else {
                continue; // deleted: its deliveries were cancelled with it
            };
            if let Err(e) = tx.try_send(job) {
                let job = e.into_inner();
                spilled_from.insert(job.head.integration_id.clone());
                spilled.push(job.head.id);
            }
        }
        if !spilled.is_empty() {
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.store.release(spilled).await {
                    tracing::warn!(error = %e, "could not release overflow; it is claimed when its lease expires");
                }
                let now = now_ms();
                for iid in spilled_from {
                    me.note_due(&iid, now);
                }
            });
        }
    }

    /// Marks the deliveries this node's queues have no room for, so they are stored for the
    /// claimer instead of leased here and given back.
    pub fn defer_beyond_room(&self, items: &mut [crate::store::IngestItem]) {
        let mut room: HashMap<String, usize> = HashMap::new();
        for d in items.iter_mut().flat_map(|i| i.deliveries.iter_mut()) {
            if d.held {
                continue;
            }
            let left = room.entry(d.integration_id.clone()).or_insert_with(|| {
                match self.workers.lock().get(&d.integration_id) {
                    Some(tx) => tx.capacity(),
                    None => QUEUE_PER_SLOT, // a new queue holds at least this many
                }
            });
            if *left == 0 {
                d.defer = true;
            } else {
                *left -= 1;
            }
        }
    }

    /// Notes that an integration has store work claimable at `at`.
    pub fn note_due(&self, integration_id: &str, at: i64) {
        let mut due = self.due.lock();
        let entry = due.entry(integration_id.to_string()).or_insert(at);
        *entry = (*entry).min(at);
        drop(due);
        self.wake.notify_one();
    }

    /// Settings changed (or the integration is gone): the next delivery starts a new worker
    /// with the new limits; the old one finishes what it holds.
    pub fn integration_changed(&self, integration_id: &str) {
        self.workers.lock().remove(integration_id);
        self.health.lock().remove(integration_id);
    }

    fn worker(self: &Arc<Self>, integration_id: &str) -> Option<mpsc::Sender<DispatchJob>> {
        let mut workers = self.workers.lock();
        if let Some(tx) = workers.get(integration_id) {
            return Some(tx.clone());
        }
        let integration = self.cache.get(integration_id)?;
        let limit = integration.valid.spec.delivery.max_in_flight as usize;
        let (tx, rx) =
            mpsc::channel((limit * QUEUE_PER_SLOT).clamp(QUEUE_PER_SLOT, QUEUE_CAPACITY));
        workers.insert(integration_id.to_string(), tx.clone());
        let me = self.clone();
        tokio::spawn(async move { me.run_worker(rx, limit).await });
        Some(tx)
    }

    async fn run_worker(self: Arc<Self>, mut rx: mpsc::Receiver<DispatchJob>, limit: usize) {
        let slots = Arc::new(Semaphore::new(limit));
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
            let me = self.clone();
            self.tracker
                .spawn(async move { attempt::run(&me, job, permit).await });
        }
        // Shutting down: what is still queued goes back to the store for the next run.
        rx.close();
        let mut left = Vec::new();
        while let Ok(job) = rx.try_recv() {
            left.push(job.head.id);
        }
        if !left.is_empty() {
            let _ = self.store.release(left).await;
        }
    }

    async fn run_claimer(self: Arc<Self>) {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            let now = now_ms();
            let next = self.due.lock().values().min().copied();
            let wait = next.map_or(1000, |t| (t - now).clamp(0, 1000));
            if wait > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                    _ = self.wake.notified() => {}
                    _ = self.shutdown.cancelled() => return,
                }
            }
            if self.shutdown.is_cancelled() {
                return;
            }
            let now = now_ms();
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

    /// Folds one attempt into the integration's health; writes and applies a change of state.
    pub(super) async fn observe_health(&self, iid: &str, facts: &health::AttemptFacts<'_>) {
        let (change, snapshot) = {
            let mut all = self.health.lock();
            let h = match all.get_mut(iid) {
                Some(h) => h,
                None => {
                    let Some(i) = self.cache.get(iid) else { return };
                    all.entry(iid.to_string()).or_insert_with(|| i.health())
                }
            };
            let change = health::after_attempt(h, facts);
            (change, h.clone())
        };
        let (kind, reason) = match &change {
            Change::None => return,
            Change::Disable(reason) => {
                tracing::warn!(integration = iid, reason, "integration disabled");
                ("integration.disabled", Some(reason.as_str()))
            }
            Change::StartedFailing => {
                tracing::info!(integration = iid, "integration failing");
                ("integration.failing", None)
            }
            Change::Recovered => {
                tracing::info!(integration = iid, "integration recovered");
                ("integration.recovered", None)
            }
        };
        self.apply_health(iid, snapshot).await;
        let last_error = (kind != "integration.recovered").then_some(facts.last_error);
        self.notify(kind, iid, reason, last_error);
    }

    /// Writes a health state and applies it to the cache (disabling stops sends at once).
    pub async fn apply_health(&self, iid: &str, h: IntegrationHealth) {
        if let Err(e) = self.store.set_integration_health(iid, h.clone()).await {
            tracing::error!(error = %e, integration = iid, "could not store integration health");
        }
        if let Some(i) = self.cache.get(iid) {
            self.cache.put(i.with_health(&h));
        }
        self.health.lock().insert(iid.to_string(), h);
    }

    /// Forgets in-memory health (after enable or disable by a person).
    pub fn reset_health(&self, iid: &str) {
        self.health.lock().remove(iid);
    }

    /// Stops taking work, waits up to `grace` for attempts in flight, and reports what is left.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.tracker.len(),
                "shutdown grace ran out; unfinished attempts are retried after restart"
            );
        }
    }

    /// Deliveries waiting in this node's per-integration queues.
    pub fn queued_in_memory(&self) -> usize {
        self.workers
            .lock()
            .values()
            .map(|tx| tx.max_capacity() - tx.capacity())
            .sum()
    }

    /// Retries waiting in memory right now.
    pub fn retries_in_memory(&self) -> usize {
        self.timers.load(Ordering::Relaxed)
    }

    pub(super) fn may_hold_timer(&self) -> bool {
        self.timers.load(Ordering::Relaxed) < MAX_TIMERS
    }
}
