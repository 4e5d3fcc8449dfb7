//! Operational events: when an integration starts failing, is disabled or recovers, or one of
//! its deliveries uses up its retries, callhook tells
//! - the tenant, with an event stored and routed to the tenant's integrations that subscribe to
//!   it — never to the integration it is about — and retried like any delivery;
//! - the operator, if `CALLHOOK_NOTIFY_URL` is set (see [`super::notify`]).
//!
//! The dispatcher notices these changes on the attempt path; the events are handed to one task
//! that stores them in groups, so a burst of exhausted deliveries costs a few writes, not one
//! per delivery.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Dispatcher;
use crate::cache::Integration;
use crate::model::alert::{self, DeliveryExhausted, IntegrationAlert};
use crate::model::event::{Event, EventKind};
use crate::store::{DispatchJob, IngestBatch, StoreError};

/// Operational events waiting to be stored; past this, the attempts that make them wait.
pub(super) const QUEUE: usize = 4096;
/// The most events stored in one write.
const GROUP: usize = 512;

impl Dispatcher {
    pub fn set_notifier(&self, n: super::notify::Notifier) {
        *self.notifier.lock() = Some(Arc::new(n));
    }

    /// An integration changed state (`integration.failing`, `.disabled` or `.recovered`): tells
    /// the operator's URL, if one is configured, and the integration's tenant.
    pub async fn notify(
        &self,
        kind: EventKind,
        iid: &str,
        reason: Option<&str>,
        last_error: Option<&str>,
    ) {
        let Some(i) = self.cache.get(iid) else { return };
        let now = self.clock.now_ms();
        let notifier = self.notifier.lock().clone();
        if let Some(n) = notifier {
            n.send(super::notify::Notifier::event(
                kind.as_str(),
                &i,
                reason,
                last_error,
                now,
            ));
        }
        let data = IntegrationAlert {
            integration_id: i.id.clone(),
            trigger_id: crate::model::ids::guid(&i.id),
            name: i.valid.spec.name.clone(),
            url: i.valid.spec.url.clone(),
            status: i.status.as_str().to_string(),
            reason: reason.map(str::to_string),
            last_error: last_error.map(str::to_string),
            failing_since: i.failing_since.map(crate::time::format_ms),
            consecutive_failures: i.consecutive_failures,
        };
        self.alert(&i, kind, &data, now).await;
    }

    /// A delivery will not be attempted again by itself: tells its tenant. Not for deliveries
    /// of operational events: two integrations that tell each other of their failures would
    /// otherwise feed each other events for ever.
    pub(super) async fn exhausted(&self, i: &Integration, job: &DispatchJob, last_error: &str) {
        if job.head.trigger.is_operational() {
            return;
        }
        let e = &job.event.event;
        let data = DeliveryExhausted {
            integration_id: i.id.clone(),
            trigger_id: crate::model::ids::guid(&i.id),
            name: i.valid.spec.name.clone(),
            delivery_id: job.head.id.clone(),
            event_id: e.id.clone(),
            event_type: job.head.trigger.as_str().to_string(),
            call_id: (!e.call_id.is_empty()).then(|| e.call_id.clone()),
            attempts: job.head.attempts + 1,
            last_error: last_error.to_string(),
        };
        let now = self.clock.now_ms();
        self.alert(i, EventKind::DeliveryExhausted, &data, now)
            .await;
    }

    /// Queues an operational event for the integration's tenant. Partner-level integrations
    /// have no tenant to tell (the operator's URL hears of them).
    async fn alert(
        &self,
        i: &Integration,
        kind: EventKind,
        data: &impl serde::Serialize,
        now: i64,
    ) {
        let Some(tid) = i.tenant_id.as_deref() else {
            return;
        };
        let sent = self.alerts.send(alert::event(kind, tid, data, now)).await;
        if sent.is_err() {
            tracing::warn!(
                event = kind.as_str(),
                "shutting down: an operational event was not stored"
            );
        }
    }

    /// Stores queued operational events in groups, with their deliveries, and hands those on.
    pub(super) async fn run_alerts(self: Arc<Self>, mut rx: mpsc::Receiver<Event>) {
        let mut events = Vec::with_capacity(GROUP);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut events, GROUP) => if n == 0 { return },
                _ = self.shutdown.cancelled() => return,
            }
            self.store_alerts(&events).await;
            events.clear();
        }
    }

    /// While the store is away (down, or its disk full) the group is kept and written again,
    /// as attempt outcomes are; the attempts making more events wait on the full queue.
    async fn store_alerts(self: &Arc<Self>, events: &[Event]) {
        let mut wait = std::time::Duration::from_millis(100);
        loop {
            let now = self.clock.now_ms();
            let items = events
                .iter()
                .map(|e| crate::route::plan(e.clone(), &self.cache, None, now))
                .collect();
            let batch = IngestBatch {
                items,
                lease: self.lease(),
                now,
                not_before: None,
                config_version: None,
            };
            match self.store.ingest(batch).await {
                Ok(outcome) => {
                    self.dispatch(outcome.ready);
                    for (iid, due) in &outcome.scheduled {
                        self.note_due(iid, *due);
                    }
                    return;
                }
                Err(e @ (StoreError::Unavailable(_) | StoreError::Full(_))) => {
                    tracing::warn!(error = %e, "could not store operational events; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), "could not store operational events for tenants");
                    return;
                }
            }
        }
    }
}
