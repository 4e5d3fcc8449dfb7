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
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::attempt;
use super::client::HttpClient;
use crate::cache::IntegrationCache;
use crate::clock::Clock;
use crate::model::event::EventKind;
use crate::model::integration::RetryPolicyKind;
use crate::record::health::{self, Change};
use crate::record::Verdict;
use crate::store::{
    AttemptRecord, DispatchJob, DynStore, IntegrationHealth, IntegrationStatus, Lease, NextStep,
    Outcome, StoreError,
};

/// How long a lease lasts: longer than any queue wait plus the longest timeout.
pub const LEASE_MS: i64 = 60 * 60 * 1000;
/// At most this many retries wait in memory at once.
const MAX_TIMERS: usize = 100_000;
/// At most this many attempts wait for their outcome's commit at once, past their request.
const MAX_RECORDING: usize = 8192;

pub struct Dispatcher {
    pub(super) store: DynStore,
    pub(super) cache: Arc<IntegrationCache>,
    pub(super) client: HttpClient,
    /// Signs recording URLs in payloads.
    pub(super) links: Option<crate::security::links::Links>,
    /// Payload parts shared by the integrations an event fans out to.
    pub(super) render_cache: crate::render::cache::RenderCache,
    /// Connections of broker destinations.
    pub(super) brokers: super::broker::Brokers,
    node: Arc<str>,
    pub(super) workers: Mutex<HashMap<String, mpsc::Sender<DispatchJob>>>,
    /// Integration → when its store work is next claimable. Entries only ever move earlier
    /// (min-merge), so a note made while a claim runs is never lost.
    pub(super) due: Mutex<HashMap<String, i64>>,
    /// Health between persisted changes: consecutive failures, failing since.
    health: Mutex<HashMap<String, IntegrationHealth>>,
    pub(super) wake: Notify,
    pub(super) shutdown: CancellationToken,
    /// The node's time: retry waits, claims and leases follow it.
    pub(super) clock: Clock,
    pub(super) tracker: TaskTracker,
    /// The integrations' workers: at shutdown each gives its queue back to the store, and the
    /// node waits for that before it stops.
    pub(super) worker_tasks: TaskTracker,
    pub(super) timers: AtomicUsize,
    /// Attempts past their request and waiting for their outcome's commit.
    pub(super) recording: Arc<Semaphore>,
    /// Tells the operator about integrations failing, disabled and recovered.
    pub(super) notifier: Mutex<Option<Arc<super::notify::Notifier>>>,
    /// Operational events for tenants, on their way to the store ([`super::alerts`]).
    pub(super) alerts: super::alerts::Alerts,
    /// Nodes alive on the store (this one included), from the heartbeat: each sends its share
    /// of an endpoint's `max_per_second`.
    pub(super) live_nodes: AtomicUsize,
    /// Each rate-limited integration's token bucket ([`super::rate`]), shared by its workers.
    pub(super) buckets: Mutex<HashMap<String, super::rate::Bucket>>,
}

impl Dispatcher {
    pub fn new(
        store: DynStore,
        cache: Arc<IntegrationCache>,
        client: HttpClient,
        links: Option<crate::security::links::Links>,
        clock: Clock,
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
            brokers: Default::default(),
            node,
            workers: Mutex::new(HashMap::new()),
            due: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            clock,
            tracker: TaskTracker::new(),
            worker_tasks: TaskTracker::new(),
            timers: AtomicUsize::new(0),
            recording: Arc::new(Semaphore::new(MAX_RECORDING)),
            notifier: Mutex::new(None),
            alerts: super::alerts::Alerts::new(),
            live_nodes: AtomicUsize::new(1),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// This node's id: the owner of its leases.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// How many nodes share the store now (the heartbeat tells).
    pub fn set_live_nodes(&self, n: usize) {
        self.live_nodes.store(n.max(1), Ordering::Relaxed);
    }

    /// A lease for work this node takes now.
    pub fn lease(&self) -> Lease {
        Lease {
            owner: self.node.clone(),
            until: self.clock.now_ms() + LEASE_MS,
        }
    }

    /// Recovers work left by a previous run and starts the claimer.
    pub async fn start(
        self: &Arc<Self>,
        node_timeout_ms: i64,
    ) -> Result<(), crate::store::StoreError> {
        let released = self
            .store
            .recover(self.clock.now_ms(), node_timeout_ms)
            .await?;
        if released > 0 {
            tracing::info!(
                released,
                "recovered deliveries left in flight by the previous run"
            );
        }
        let now = self.clock.now_ms();
        for iid in self.store.integrations_with_pending().await? {
            self.note_due(&iid, now);
        }
        let me = self.clone();
        tokio::spawn(async move { me.run_claimer().await });
        tokio::spawn(super::batch::run(self.clone()));
        if let Some(rx) = self.alerts.take_receiver() {
            tokio::spawn(self.clone().run_alerts(rx));
        }
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
                let now = me.clock.now_ms();
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
                    None => self
                        .cache
                        .get(&d.integration_id)
                        .map_or(0, |i| self.queue_room(&i)),
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
        self.client.forget(integration_id);
        self.brokers.forget(integration_id);
        self.workers.lock().remove(integration_id);
        self.health.lock().remove(integration_id);
        if self.cache.get(integration_id).is_none() {
            // Deleted.
            self.buckets.lock().remove(integration_id);
            self.brokers.remove(integration_id);
        }
    }

    /// One attempt of `job`, and what follows from its answer. `slot` is the integration's
    /// in-flight slot: it is given back as soon as the endpoint has answered, so the endpoint's
    /// concurrency is not spent waiting for the outcome's commit (which the writer groups).
    pub(super) async fn attempt(self: &Arc<Self>, job: DispatchJob, slot: OwnedSemaphorePermit) {
        let Some(integration) = self.cache.get(&job.head.integration_id) else {
            return; // deleted while queued; its deliveries were cancelled
        };
        if integration.status == IntegrationStatus::Disabled {
            drop(slot);
            crate::metrics::METRICS.delivery("held", None);
            self.settle(&job, None, NextStep::Held, self.clock.now_ms())
                .await;
            return;
        }
        let sent = attempt::send(&self.sender(), &integration, &job, self.clock.now_ms()).await;
        // The slot is handed on once a place among the outcomes waiting for the writer is
        // taken: if the writer falls behind, endpoints wait for it, and outcomes in memory stay
        // bounded.
        let _recording = self.recording.clone().acquire_owned().await;
        drop(slot);
        let now = self.clock.now_ms();
        let decision = attempt::decide(
            &integration,
            &job.head,
            &sent.result,
            now,
            self.may_hold_timer(),
            rand::random::<f64>(),
        );
        let record = attempt::record(&sent);
        let m = &crate::metrics::METRICS;
        m.attempt_latency.observe_ms(sent.duration_ms as f64);
        let label = match &decision.next {
            NextStep::Succeeded => {
                m.end_to_end.observe_ms((now - job.head.created_at) as f64);
                "succeeded"
            }
            NextStep::Retry { .. } => "retry",
            NextStep::Failed => "failed",
            NextStep::Held => "held",
        };
        m.delivery(label, record.error_class);
        let last_error = attempt::describe(&sent.result);
        let spec = &integration.valid.spec;
        // An attempt carrying an operational event tells no tenant of what it did to the
        // integration's health: two flapping integrations that hear of each other would
        // otherwise feed each other events for ever. The operator still hears.
        let tell_tenant = !job.head.trigger.is_operational();
        self.observe_health(
            tell_tenant,
            &integration.id,
            &health::AttemptFacts {
                success: decision.verdict == Verdict::Success,
                gone: decision.verdict == Verdict::Gone,
                exhausted: decision.exhausted,
                exponential: integration.valid.retry_policy() == RetryPolicyKind::Exponential,
                delivery_created_at: job.head.created_at,
                disable_after_failures: spec.delivery.disable_after_failures,
                last_error: &last_error,
                now,
            },
        )
        .await;
        if !self
            .settle(&job, Some(record), decision.next.clone(), now)
            .await
        {
            return;
        }
        if decision.exhausted && decision.next == NextStep::Failed {
            self.exhausted(&integration, &job, &last_error);
        }
        if let NextStep::Retry { at, keep_lease } = decision.next {
            if keep_lease {
                self.schedule_retry(job, at);
            } else {
                self.note_due(&integration.id, at);
            }
        }
    }

    /// Records the outcome; dispatches any delivery it releases. While the store is away (down,
    /// or its disk full) the outcome is kept and written again every few seconds, holding the
    /// attempt's in-flight slot, so the integration sends nothing more that could not be
    /// recorded either. False when it could not be recorded (another error, or shutdown: the
    /// lease then runs out and the delivery is attempted again).
    async fn settle(
        self: &Arc<Self>,
        job: &DispatchJob,
        attempt: Option<AttemptRecord>,
        next: NextStep,
        now: i64,
    ) -> bool {
        let outcome = Outcome {
            head: job.head.clone(),
            attempt,
            next,
            now,
        };
        let mut wait = Duration::from_millis(100);
        let recorded = loop {
            match self.store.record(vec![outcome.clone()], self.lease()).await {
                Err(e @ (StoreError::Unavailable(_) | StoreError::Full(_))) => {
                    tracing::warn!(error = %e, delivery = %job.head.id, "could not record an attempt; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.cancelled() => break Err(e),
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => break other,
            }
        };
        match recorded {
            Ok(promoted) => {
                self.dispatch(promoted);
                // The call's next delivery may have been handed over still held for its batch
                // window's boundary (the store leaves it for the claimer): look then.
                let iid = &job.head.integration_id;
                if job.head.ordered {
                    if let Some(at) = self.cache.get(iid).and_then(|i| i.valid.next_boundary(now)) {
                        self.note_due(iid, at);
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, delivery = %job.head.id, "could not record an attempt");
                false
            }
        }
    }

    /// A retry due soon waits in memory, with its lease, until its moment on the clock.
    fn schedule_retry(self: &Arc<Self>, mut job: DispatchJob, at: i64) {
        job.head.attempts += 1;
        job.head.retries_used += 1;
        self.timers.fetch_add(1, Ordering::Relaxed);
        let d = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = d.clock.sleep_until(at) => {
                    d.timers.fetch_sub(1, Ordering::Relaxed);
                    d.dispatch(vec![job]);
                }
                // Abandoned on shutdown: the lease is released at the next start.
                _ = d.shutdown.cancelled() => {
                    d.timers.fetch_sub(1, Ordering::Relaxed);
                }
            }
        });
    }

    /// What attempts need of this node: the client, the link signer, the shared render cache.
    pub fn sender(&self) -> attempt::Sender<'_> {
        attempt::Sender {
            client: &self.client,
            brokers: &self.brokers,
            links: self.links.as_ref(),
            render_cache: Some(&self.render_cache),
        }
    }

    /// Folds one attempt into the integration's health; writes and applies a change of state.
    pub(super) async fn observe_health(
        &self,
        tell_tenant: bool,
        iid: &str,
        facts: &health::AttemptFacts<'_>,
    ) {
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
                (EventKind::IntegrationDisabled, Some(reason.as_str()))
            }
            Change::StartedFailing => {
                tracing::info!(integration = iid, "integration failing");
                (EventKind::IntegrationFailing, None)
            }
            Change::Recovered => {
                tracing::info!(integration = iid, "integration recovered");
                (EventKind::IntegrationRecovered, None)
            }
        };
        self.apply_health(iid, snapshot).await;
        let last_error = (kind != EventKind::IntegrationRecovered).then_some(facts.last_error);
        self.notify(kind, iid, reason, last_error, tell_tenant);
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
        // One grace for everything: the attempts, the queues given back, the last events.
        let deadline = tokio::time::Instant::now() + grace;
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.tracker.len(),
                "shutdown grace ran out; unfinished attempts are retried after restart"
            );
        }
        // The workers stopped at the cancel and are giving their queues back meanwhile.
        self.worker_tasks.close();
        if tokio::time::timeout_at(deadline, self.worker_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "queued deliveries not all given back in time; they are taken over after restart"
            );
        }
        self.alerts.finish(deadline).await;
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
