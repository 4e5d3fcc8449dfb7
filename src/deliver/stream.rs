//! Live streams: a `stream` integration's events, read by the tenant's clients (agent desktops)
//! as they are stored, and from any earlier position within retention.
//!
//! One tailer per node reads the event log in order (the store's [`Tail`] port, whatever the
//! backend) and hands each event to every reader on the node through one bounded broadcast
//! ring: one query per wake-up however many readers there are, and a reader that falls a whole
//! ring behind is cut off (it is told the cursor to come back with) instead of holding memory
//! or slowing anyone else. A reader that resumes from a cursor reads its tenant's events from
//! the store up to where the ring starts, then goes on from the ring.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::store::{Cursor, DynStore, StoreResult, TailItem};

/// Events the ring holds: how far a reader may fall behind before it is cut off.
pub const RING: usize = 4096;
/// Events read from the store at a time.
const PAGE: u32 = 256;
/// How often the tailer looks for events stored by other nodes (this node's own ingest wakes
/// it at once).
const POLL: Duration = Duration::from_millis(100);
/// Streams one tenant may hold open on a node.
pub const MAX_PER_TENANT: usize = 200;
/// Calls a reader remembers the last state of (see [`Progression`]).
const CALLS_REMEMBERED: usize = 4096;

/// The node's tailer and the ring its readers take events from.
pub struct StreamHub {
    store: DynStore,
    ring: broadcast::Sender<TailItem>,
    /// The position of the last event put in the ring; taken under the same lock as a new
    /// subscription, so a reader knows exactly which events the ring will still give it.
    head: Mutex<Cursor>,
    wake: Notify,
    open: Mutex<HashMap<String, usize>>,
    stop: CancellationToken,
}

/// A reader's place among the node's open streams; dropping it frees the place.
pub struct Slot {
    hub: Arc<StreamHub>,
    tenant: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock();
        if let Some(n) = open.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

impl StreamHub {
    /// The hub, with its tailer running until `stop`.
    pub fn start(store: DynStore, stop: CancellationToken) -> Arc<StreamHub> {
        let (ring, _) = broadcast::channel(RING);
        let hub = Arc::new(StreamHub {
            store,
            ring,
            head: Mutex::new(Cursor::default()),
            wake: Notify::new(),
            open: Mutex::new(HashMap::new()),
            stop,
        });
        tokio::spawn(hub.clone().run());
        hub
    }

    /// Events were stored: look now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Cancelled when the node stops: readers close their streams.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// A place for one more of `tenant`'s streams, unless it holds [`MAX_PER_TENANT`].
    pub fn admit(self: &Arc<Self>, tenant: &str) -> Option<Slot> {
        let mut open = self.open.lock();
        let n = open.entry(tenant.to_string()).or_insert(0);
        if *n >= MAX_PER_TENANT {
            return None;
        }
        *n += 1;
        Some(Slot {
            hub: self.clone(),
            tenant: tenant.to_string(),
        })
    }

    fn subscribe(&self) -> (broadcast::Receiver<TailItem>, Cursor) {
        let head = self.head.lock();
        (self.ring.subscribe(), *head)
    }

    async fn run(self: Arc<Self>) {
        let mut at = loop {
            match self.store.tail_head().await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "live streams: cannot read the event log yet");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = self.stop.cancelled() => return,
                    }
                }
            }
        };
        *self.head.lock() = at;
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = self.stop.cancelled() => return,
            }
            if self.ring.receiver_count() == 0 {
                // Nobody reads: only keep up with where the log ends.
                if let Ok(c) = self.store.tail_head().await {
                    at = c.max(at);
                    *self.head.lock() = at;
                }
                continue;
            }
            loop {
                let page = match self.store.tail(None, at, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, "live streams: reading the event log");
                        break;
                    }
                };
                let full = page.len() == PAGE as usize;
                for item in page {
                    let mut head = self.head.lock();
                    at = item.cursor;
                    *head = at;
                    // No reader is an error only to the sender; nothing to do.
                    let _ = self.ring.send(item);
                }
                if !full {
                    break;
                }
            }
        }
    }
}

/// What a reader gets next.
pub enum Step {
    /// One of the tenant's events (not yet routed: the caller applies the integration's
    /// current filters, so an edit takes effect at once).
    Event(TailItem),
    /// Caught up: everything of the tenant's up to this cursor was given.
    Live(Cursor),
    /// Fell a whole ring behind while live: cut off; resume from this cursor.
    Lagged(Cursor),
    /// The node is stopping.
    Closed,
}

/// One stream's reader: the store from its cursor, then the ring.
pub struct Reader {
    hub: Arc<StreamHub>,
    tenant: String,
    rx: broadcast::Receiver<TailItem>,
    /// The ring gives every event after this.
    ring_from: Cursor,
    /// The last position given to the client.
    sent: Cursor,
    backlog: VecDeque<TailItem>,
    caught_up: bool,
    announced: bool,
}

impl Reader {
    /// A reader of `tenant`'s events after `resume`, or from now. A cursor past the end of the
    /// log (a store that was reset) reads from the end.
    pub async fn open(
        hub: &Arc<StreamHub>,
        tenant: &str,
        resume: Option<Cursor>,
    ) -> StoreResult<Reader> {
        let (rx, ring_from) = hub.subscribe();
        let sent = match resume {
            None => ring_from,
            Some(c) => c.min(hub.store.tail_head().await?.max(ring_from)),
        };
        Ok(Reader {
            hub: hub.clone(),
            tenant: tenant.to_string(),
            rx,
            ring_from,
            sent,
            backlog: VecDeque::new(),
            caught_up: resume.is_none() || sent >= ring_from,
            announced: false,
        })
    }

    /// The last position given.
    pub fn cursor(&self) -> Cursor {
        self.sent
    }

    /// The next step. Cancel-safe: state changes only once an await has finished.
    pub async fn next(&mut self) -> StoreResult<Step> {
        loop {
            if let Some(item) = self.backlog.pop_front() {
                self.sent = item.cursor;
                return Ok(Step::Event(item));
            }
            if !self.caught_up {
                let page = self
                    .hub
                    .store
                    .tail(Some(&self.tenant), self.sent, PAGE)
                    .await?;
                let full = page.len() == PAGE as usize;
                let mut reached = !full;
                for item in page {
                    if item.cursor > self.ring_from {
                        reached = true;
                        break;
                    }
                    self.backlog.push_back(item);
                }
                if reached {
                    self.caught_up = true;
                }
                continue;
            }
            if !self.announced {
                self.announced = true;
                self.sent = self.sent.max(self.ring_from);
                return Ok(Step::Live(self.sent));
            }
            match self.rx.recv().await {
                Ok(item) => {
                    if item.cursor <= self.sent || item.event.event.tenant_id != self.tenant {
                        continue;
                    }
                    self.sent = item.cursor;
                    return Ok(Step::Event(item));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return Ok(Step::Lagged(self.sent)),
                Err(broadcast::error::RecvError::Closed) => return Ok(Step::Closed),
            }
        }
    }
}

/// A call's states in the order the call went through them: a state that arrives after a later
/// one (the store keeps it, webhooks skip it as stale) is skipped here too, so a desktop never
/// steps back. Per reader, bounded: when it has seen more calls than it remembers it forgets
/// them all (the next state of each is then shown, whatever came before).
#[derive(Default)]
pub struct Progression {
    last: HashMap<String, (u8, i64)>,
}

impl Progression {
    /// Whether `event` moves its call on (everything but call states does).
    pub fn advances(&mut self, event: &crate::model::event::Event) -> bool {
        let Some((rank, seq)) = event.call_state_position() else {
            return true;
        };
        if self
            .last
            .get(&event.call_id)
            .is_some_and(|&known| (rank, seq) <= known)
        {
            return false;
        }
        if self.last.len() >= CALLS_REMEMBERED && !self.last.contains_key(&event.call_id) {
            self.last.clear();
        }
        self.last.insert(event.call_id.clone(), (rank, seq));
        true
    }
}
