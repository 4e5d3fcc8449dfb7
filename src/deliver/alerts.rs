//! Operational events: when an integration starts failing, is disabled or recovers, or one of
//! its deliveries uses up its retries, callhook tells
//! - the tenant, with an event stored and routed to the tenant's integrations that subscribe to
//!   it — never to the integration it is about — and retried like any delivery;
//! - the operator, if `CALLHOOK_NOTIFY_URL` is set (see [`super::notify`]).
//!
//! The dispatcher notices these changes on the attempt path and queues the events without
//! waiting; one task stores them in groups. Their number is bounded: attempts that carry an
//! operational event make none, `delivery.exhausted` comes at most once a minute per
//! integration (counting the others), and a full queue drops (and counts) rather than waits.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Dispatcher;
use crate::cache::Integration;
use crate::model::alert::{self, DeliveryExhausted, IntegrationAlert};
use crate::model::event::{Event, EventKind};
use crate::store::{DispatchJob, IngestBatch, StoreError};

/// Operational events waiting to be stored; past this they are dropped and counted
/// (`callhook_operational_events_dropped_total`): an attempt never waits for a notification.
const QUEUE: usize = 4096;
/// The most events stored in one write.
const GROUP: usize = 512;
/// At most one `delivery.exhausted` per integration in this time; the deliveries exhausted in
/// between are counted in the next one (`also_exhausted`).
const EXHAUSTED_EVERY_MS: i64 = 60_000;

/// The queue of operational events and what it remembers to keep their number bounded.
pub(crate) struct Alerts {
    tx: mpsc::Sender<Event>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    /// Per integration: when its last `delivery.exhausted` was made, and how many deliveries
    /// exhausted since without one of their own.
    exhausted: Mutex<HashMap<String, (i64, u32)>>,
    /// Asked at shutdown once the attempts are over: store what is queued, then stop.
    flush: CancellationToken,
    /// Cancelled when the queue has been stored and the task has stopped.
    flushed: CancellationToken,
}

impl Alerts {
    pub(super) fn new() -> Alerts {
        let (tx, rx) = mpsc::channel(QUEUE);
        Alerts {
            tx,
            rx: Mutex::new(Some(rx)),
            exhausted: Mutex::new(HashMap::new()),
            flush: CancellationToken::new(),
            flushed: CancellationToken::new(),
        }
    }

    /// At shutdown, after the attempts: stores what they queued (events made by the last
    /// attempts are not lost with the node) and waits for it, until `deadline`.
    pub(super) async fn finish(&self, deadline: tokio::time::Instant) {
        if self.rx.lock().is_some() {
            return; // never started
        }
        self.flush.cancel();
        if tokio::time::timeout_at(deadline, self.flushed.cancelled())
            .await
            .is_err()
        {
            tracing::warn!("operational events still being stored at shutdown");
        }
    }

    pub(super) fn take_receiver(&self) -> Option<mpsc::Receiver<Event>> {
        self.rx.lock().take()
    }

    /// Queues an event without waiting; a full queue drops it (counted, logged).
    fn queue(&self, event: Event) {
        if let Err(e) = self.tx.try_send(event) {
            crate::metrics::METRICS.operational_event_dropped();
            let kind = match &e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => {
                    ev.kind.as_str()
                }
            };
            tracing::warn!(
                event = kind,
                "an operational event was dropped: its queue is full or closed"
            );
        }
    }
}

/// The scheme, host and port of a URL: an endpoint's path and query may hold a credential
/// (webhook URLs of chat tools do), and operational events go to other receivers.
fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

impl Dispatcher {
    pub fn set_notifier(&self, n: super::notify::Notifier) {
        *self.notifier.lock() = Some(Arc::new(n));
    }

    /// An integration changed state (`integration.failing`, `.disabled` or `.recovered`): tells
    /// the operator's URL, if one is configured, and — with `tell_tenant` — the integration's
    /// tenant.
    pub fn notify(
        &self,
        kind: EventKind,
        iid: &str,
        reason: Option<&str>,
        last_error: Option<&str>,
        tell_tenant: bool,
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
        if !tell_tenant {
            return;
        }
        let data = IntegrationAlert {
            integration_id: i.id.clone(),
            trigger_id: crate::model::ids::guid(&i.id),
            name: i.valid.spec.name.clone(),
            url: origin(&i.valid.spec.url),
            status: i.status.as_str().to_string(),
            reason: reason.map(str::to_string),
            last_error: last_error.map(str::to_string),
            failing_since: i.failing_since.map(crate::time::format_ms),
            consecutive_failures: i.consecutive_failures,
        };
        self.alert(&i, kind, &data, now);
    }

    /// A delivery will not be attempted again by itself: tells its tenant, at most once a minute
    /// per integration. Not for deliveries of operational events: two integrations that tell
    /// each other of their failures would otherwise feed each other events for ever.
    pub(super) fn exhausted(&self, i: &Integration, job: &DispatchJob, last_error: &str) {
        if job.head.trigger.is_operational() {
            return;
        }
        let now = self.clock.now_ms();
        let also = {
            let mut seen = self.alerts.exhausted.lock();
            let entry = seen.entry(i.id.clone()).or_insert((i64::MIN, 0));
            if now.saturating_sub(entry.0) < EXHAUSTED_EVERY_MS {
                entry.1 += 1;
                return;
            }
            let also = entry.1;
            *entry = (now, 0);
            also
        };
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
            also_exhausted: also,
        };
        self.alert(i, EventKind::DeliveryExhausted, &data, now);
    }

    /// Queues an operational event for the integration's tenant. Partner-level integrations
    /// have no tenant to tell (the operator's URL hears of them).
    fn alert(&self, i: &Integration, kind: EventKind, data: &impl serde::Serialize, now: i64) {
        let Some(tid) = i.tenant_id.as_deref() else {
            return;
        };
        self.alerts.queue(alert::event(kind, tid, data, now));
    }

    /// Stores queued operational events in groups, with their deliveries, and hands those on.
    pub(super) async fn run_alerts(self: Arc<Self>, mut rx: mpsc::Receiver<Event>) {
        // However the task ends (a panic included), shutdown stops waiting for it.
        let _flushed = self.alerts.flushed.clone().drop_guard();
        let mut events = Vec::with_capacity(GROUP);
        loop {
            let flushing = tokio::select! {
                n = rx.recv_many(&mut events, GROUP) => if n == 0 { break } else { false },
                _ = self.alerts.flush.cancelled() => true,
            };
            if flushing {
                // The attempts are over (or their grace ran out): what they queued is stored
                // now; anything queued later is dropped and counted.
                rx.close();
                while let Ok(e) = rx.try_recv() {
                    events.push(e);
                }
                for group in events.chunks(GROUP) {
                    self.store_alerts(group).await;
                }
                break;
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
            // While the node stops, nothing it stores may stay leased to it (its queues are
            // closed): the deliveries go to the store for whichever node runs next.
            let stopping = self.shutdown.is_cancelled();
            let items = events
                .iter()
                .map(|e| {
                    let mut item = crate::route::plan(e.clone(), &self.cache, None, now);
                    if stopping {
                        item.deliveries.iter_mut().for_each(|d| d.defer = true);
                    }
                    item
                })
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
                        _ = self.alerts.flush.cancelled() => {
                            tracing::warn!(events = events.len(), "operational events not stored: the node is stopping and the store is away");
                            return;
                        }
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
