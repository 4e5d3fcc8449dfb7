//! Live streams: a `stream` integration's events, read by the tenant's clients (agent desktops)
//! as they are stored, and from any earlier position within retention.
//!
//! One tailer per node reads the event log in order (the store's [`Tail`] port, whatever the
//! backend) and hands each event to its tenant's ring: one query per wake-up however many
//! readers there are, and one tenant's burst never pushes another tenant's readers out. A
//! reader that falls a ring behind (a burst) goes back to the store from its own position and
//! rejoins the ring; memory stays the rings' and a page per reader. A client that does not take
//! what is sent is the slow consumer, cut off by the caller (see the API's stream handler).
//!
//! [`Tail`]: crate::store::Tail

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::store::{Cursor, DynStore, StoreResult, TailItem};

/// Events a tenant's ring holds: a burst larger than this sends its readers to the store.
pub const RING: usize = 1024;
/// Events read from the store at a time.
const PAGE: u32 = 256;
/// Store reads for catching up at once on a node, all readers together.
const CATCH_UP_READS: usize = 4;
/// How often the tailer looks for events stored by other nodes (this node's own ingest wakes
/// it at once).
const POLL: Duration = Duration::from_millis(100);
/// Streams one tenant may hold open on a node.
pub const MAX_PER_TENANT: usize = 200;
/// Streams a node holds open, all tenants together (an upgraded connection no longer counts
/// against the server's connection limit).
pub const MAX_PER_NODE: usize = 5_000;
/// Calls a reader remembers the last state of (see [`Progression`]).
const CALLS_REMEMBERED: usize = 4096;

/// Where the tailer is, and the rings of the tenants being read; one lock, so a new reader
/// knows exactly which events its ring will still give it.
struct Rings {
    head: Cursor,
    by_tenant: HashMap<String, broadcast::Sender<TailItem>>,
}

/// The node's tailer and the rings its readers take events from.
pub struct StreamHub {
    store: DynStore,
    rings: Mutex<Rings>,
    wake: Notify,
    open: Mutex<HashMap<String, usize>>,
    catch_up: Semaphore,
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
    /// The hub, from the end of the log as it is now, with its tailer running until `stop`.
    pub async fn start(store: DynStore, stop: CancellationToken) -> StoreResult<Arc<StreamHub>> {
        let head = store.tail_head().await?;
        let hub = Arc::new(StreamHub {
            store,
            rings: Mutex::new(Rings {
                head,
                by_tenant: HashMap::new(),
            }),
            wake: Notify::new(),
            open: Mutex::new(HashMap::new()),
            catch_up: Semaphore::new(CATCH_UP_READS),
            stop,
        });
        tokio::spawn(hub.clone().run(head));
        Ok(hub)
    }

    /// Events were stored: look now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Cancelled when the node stops: readers close their streams.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// A place for one more of `tenant`'s streams, unless it holds [`MAX_PER_TENANT`] or the
    /// node [`MAX_PER_NODE`].
    pub fn admit(self: &Arc<Self>, tenant: &str) -> Option<Slot> {
        let mut open = self.open.lock();
        if open.values().sum::<usize>() >= MAX_PER_NODE {
            return None;
        }
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

    /// The tenant's ring, and the position after which it gives every event.
    fn subscribe(&self, tenant: &str) -> (broadcast::Receiver<TailItem>, Cursor) {
        let mut rings = self.rings.lock();
        let rx = rings
            .by_tenant
            .entry(tenant.to_string())
            .or_insert_with(|| broadcast::channel(RING).0)
            .subscribe();
        (rx, rings.head)
    }

    async fn run(self: Arc<Self>, mut at: Cursor) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = self.stop.cancelled() => return,
            }
            let reading = {
                let mut rings = self.rings.lock();
                rings.by_tenant.retain(|_, ring| ring.receiver_count() > 0);
                !rings.by_tenant.is_empty()
            };
            if !reading {
                // Nobody reads: only keep up with where the log ends — unless a reader came
                // meanwhile, who was promised everything after the old position.
                if let Ok(c) = self.store.tail_head().await {
                    let mut rings = self.rings.lock();
                    if rings.by_tenant.is_empty() && c > at {
                        at = c;
                        rings.head = c;
                    }
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
                let full = page.scanned == PAGE as usize;
                let mut rings = self.rings.lock();
                for item in page.items {
                    at = item.cursor;
                    rings.head = at;
                    if let Some(ring) = rings.by_tenant.get(&item.event.event.tenant_id) {
                        // A ring whose readers all left is removed at the next wake-up.
                        let _ = ring.send(item);
                    }
                }
                // Past rows that could not be read too.
                if let Some(last) = page.last {
                    at = at.max(last);
                    rings.head = at;
                }
                drop(rings);
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
    /// The node is stopping.
    Closed,
}

/// One stream's reader: the store from its cursor, then its tenant's ring; back to the store
/// whenever it falls a ring behind.
pub struct Reader {
    hub: Arc<StreamHub>,
    tenant: String,
    rx: broadcast::Receiver<TailItem>,
    /// The ring gives every event after this.
    ring_from: Cursor,
    /// The last position given to the client.
    sent: Cursor,
    /// Where catching up goes on from (past rows that could not be read).
    scanned_to: Cursor,
    backlog: VecDeque<TailItem>,
    caught_up: bool,
    announced: bool,
}

impl Reader {
    /// A reader of `tenant`'s events after `resume`, or from now.
    pub async fn open(
        hub: &Arc<StreamHub>,
        tenant: &str,
        resume: Option<Cursor>,
    ) -> StoreResult<Reader> {
        let (rx, ring_from) = hub.subscribe(tenant);
        // A resume cursor is taken as given. It is never compared with the store's end: on
        // PostgreSQL that end waits for the oldest running transaction in the cluster, and a
        // cursor handed out a moment ago (or by another node) can lie beyond it.
        let sent = resume.unwrap_or(ring_from);
        Ok(Reader {
            hub: hub.clone(),
            tenant: tenant.to_string(),
            rx,
            ring_from,
            sent,
            scanned_to: sent,
            backlog: VecDeque::new(),
            caught_up: sent >= ring_from,
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
                let page = {
                    let _turn = self.hub.catch_up.acquire().await;
                    self.hub
                        .store
                        .tail(Some(&self.tenant), self.scanned_to, PAGE)
                        .await?
                };
                let mut reached = page.scanned < PAGE as usize;
                for item in page.items {
                    if item.cursor > self.ring_from {
                        reached = true;
                        break;
                    }
                    self.backlog.push_back(item);
                }
                match page.last {
                    Some(last) if last > self.ring_from => reached = true,
                    Some(last) => self.scanned_to = self.scanned_to.max(last),
                    None => {}
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
                    if item.cursor <= self.sent {
                        continue;
                    }
                    self.sent = item.cursor;
                    return Ok(Step::Event(item));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // A burst went past: read it from the store, then rejoin the ring.
                    let (rx, ring_from) = self.hub.subscribe(&self.tenant);
                    self.rx = rx;
                    self.ring_from = ring_from;
                    self.scanned_to = self.sent;
                    self.caught_up = self.sent >= ring_from;
                }
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
