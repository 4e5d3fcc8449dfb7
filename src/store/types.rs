//! Values that cross the [`Store`](super::Store) boundary.

use std::sync::Arc;

use serde::Serialize;

use crate::model::event::{EventKind, StoredEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    Active,
    Disabled,
}

impl IntegrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Active => "active",
            IntegrationStatus::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> IntegrationStatus {
        if s == "disabled" {
            IntegrationStatus::Disabled
        } else {
            IntegrationStatus::Active
        }
    }
}

/// An integration as stored: settings as validated JSON, secrets sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationRecord {
    pub id: String,
    pub tenant_id: Option<String>,
    pub partner_id: Option<String>,
    pub spec_json: String,
    pub status: IntegrationStatus,
    pub disabled_reason: Option<String>,
    pub secret_sealed: Option<Vec<u8>>,
    pub secret_hint: Option<String>,
    /// Sealed JSON list of signing keys (`whsec_…` and when each stops signing).
    pub signing_sealed: Vec<u8>,
    pub failing_since: Option<i64>,
    pub consecutive_failures: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How an integration is doing: written on every change of state, not on every attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationHealth {
    pub status: IntegrationStatus,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub consecutive_failures: u32,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Ordered: waits until the call's earlier delivery to the integration is settled.
    Blocked,
    /// The integration was disabled: recorded, not sent.
    Held,
    Succeeded,
    /// Given up (retries exhausted, 410 Gone, or a manual redelivery that failed).
    Failed,
    /// The integration was deleted before it was sent.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Blocked => "blocked",
            DeliveryStatus::Held => "held",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Blocked,
            DeliveryStatus::Held,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Failed,
            DeliveryStatus::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// What a heartbeat learnt: the integrations whose work it took over from dead nodes, and how
/// many nodes are alive (this one included), which the per-endpoint rate limit shares out.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    pub taken_over: Vec<String>,
    pub live_nodes: usize,
}

/// Who may send a delivery, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub owner: Arc<str>,
    pub until: i64,
}

/// A delivery to create at ingest.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub integration_id: String,
    pub trigger: EventKind,
    pub ordered: bool,
    /// The integration is disabled: record as held.
    pub held: bool,
    /// This node's queue for the integration is full: stored unleased for the claimer, rather
    /// than leased now and given back (one write instead of two).
    pub defer: bool,
    /// Held in the store until then (a batch integration sending one record per request
    /// holds its window's deliveries until the window's boundary).
    pub not_before: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct IngestItem {
    pub event: crate::model::event::Event,
    pub body: String,
    pub deliveries: Vec<NewDelivery>,
    /// Batch integrations this call goes to at their next window.
    pub batch: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct IngestBatch {
    pub items: Vec<IngestItem>,
    pub lease: Lease,
    pub now: i64,
    /// Deliveries wait until then (in the store, unleased) instead of going out at once: the
    /// grace given to a source's own record before one built from call states is sent.
    pub not_before: Option<i64>,
    /// The configuration version this node's caches reflected *before* the items were routed
    /// ([`super::Store::applied_version`], read ahead of the caches). A shared store whose
    /// configuration is newer stores nothing of the batch and answers `Reroute`. `None`: no
    /// check (a store with one node; records built from call states, which follow their
    /// states' stored request).
    pub config_version: Option<i64>,
}

#[derive(Debug, Default)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    /// The type of each accepted event (for metrics).
    pub accepted_kinds: Vec<EventKind>,
    pub ready: Vec<DispatchJob>,
    /// Call states stored but not routed: not past the call's latest accepted state.
    pub stale: usize,
    /// Calls whose terminated state was accepted and that have no record from the source.
    pub terminated: Vec<crate::model::call::TerminatedCall>,
    /// Integrations with deliveries stored for the claimer, and when the first is due.
    pub scheduled: Vec<(String, i64)>,
}

/// What the delivery stage needs to know about a delivery to attempt it.
#[derive(Debug, Clone)]
pub struct DeliveryHead {
    pub id: String,
    pub integration_id: String,
    pub call_id: String,
    pub trigger: EventKind,
    pub ordered: bool,
    /// A redelivery asked for by a person: one attempt, never rescheduled.
    pub manual: bool,
    /// Attempts made so far (the next one is `attempts + 1`).
    pub attempts: u32,
    /// Retries used in the current cycle (reset when a delivery is resent).
    pub retries_used: u32,
    pub created_at: i64,
}

/// A delivery ready to attempt, with its event.
#[derive(Debug, Clone)]
pub struct DispatchJob {
    pub head: DeliveryHead,
    pub event: Arc<StoredEvent>,
}

/// One attempt, as recorded.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub started_at: i64,
    pub duration_ms: u32,
    pub status_code: Option<u16>,
    pub error_class: Option<&'static str>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// Where a delivery goes after an attempt (or after finding its integration disabled).
#[derive(Debug, Clone, PartialEq)]
pub enum NextStep {
    Succeeded,
    Failed,
    Held,
    /// Try again at `at`; `keep_lease` when this node keeps it in memory until then.
    Retry {
        at: i64,
        keep_lease: bool,
    },
}

/// Whose portal access [`super::Portal::end_portal_access`] ends.
#[derive(Debug, Clone)]
pub enum PortalAccess {
    Tenant(String),
    CreatedBy(String),
}

impl PortalAccess {
    /// The column it is matched on, and the value.
    pub fn column(&self) -> (&'static str, &str) {
        match self {
            PortalAccess::Tenant(t) => ("tenant_id", t),
            PortalAccess::CreatedBy(t) => ("created_by", t),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub head: DeliveryHead,
    pub attempt: Option<AttemptRecord>,
    pub next: NextStep,
    pub now: i64,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Deliveries created strictly before this id (ids sort by creation): the page cursor.
    pub before: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub integration_id: String,
    pub event_id: String,
    pub event_type: &'static str,
    pub call_id: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error_class: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: u32,
    pub started_at: String,
    pub duration_ms: u32,
    pub status_code: Option<u16>,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub manual: bool,
}

/// An uploaded recording file.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecordingMeta {
    pub file_id: String,
    pub tenant_id: String,
    pub content_type: String,
    pub bytes: u64,
    pub sha256: String,
    pub created_at: i64,
}

/// What one purge step removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PurgeReport {
    pub deliveries: u64,
    pub attempts: u64,
    pub events: u64,
    /// Recording rows removed; their files are the caller's to delete.
    pub recordings: Vec<RecordingMeta>,
}

impl PurgeReport {
    pub fn total(&self) -> u64 {
        self.deliveries + self.events + self.recordings.len() as u64
    }
}

/// Renders one call record as an item of a batch. The batch scheduler supplies it (the `cdr`
/// record with the integration's privacy rules), so the store holds no knowledge of payload
/// shapes: it only runs it over the calls it takes out of the window, in the same step.
#[derive(Clone)]
pub struct ItemRenderer(
    Arc<dyn Fn(&crate::model::event::Event) -> serde_json::Value + Send + Sync>,
);

impl ItemRenderer {
    pub fn new(
        f: impl Fn(&crate::model::event::Event) -> serde_json::Value + Send + Sync + 'static,
    ) -> ItemRenderer {
        ItemRenderer(Arc::new(f))
    }

    pub fn render(&self, event: &crate::model::event::Event) -> serde_json::Value {
        (self.0)(event)
    }
}

impl std::fmt::Debug for ItemRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ItemRenderer")
    }
}

/// Closing one window of a batch integration.
#[derive(Debug, Clone)]
pub struct BatchWindow {
    pub integration_id: String,
    /// Who the batch parts are stored under (the tenant, or `partner:<id>`).
    pub owner: String,
    /// The boundary T being closed (epoch ms); a boundary is closed once.
    pub boundary: i64,
    /// Calls that ended before this (T − delay) go out.
    pub cutoff: i64,
    /// The nominal window `[T − delay − interval, T − delay)`, for the payload.
    pub window_start: i64,
    pub feed: Option<crate::model::integration::Feed>,
    /// Turns one queued call into an item of the batch (the caller's profile and privacy rules).
    pub render_item: ItemRenderer,
    pub lease: Lease,
    pub now: i64,
}

/// Which calls a reconciliation query counts or lists.
#[derive(Debug, Clone, PartialEq)]
pub enum CdrScope {
    /// Every call of the partner's tenants.
    Analytics { partner_id: String },
    /// Calls under a licence the partner sold.
    Billing { partner_id: String },
}

/// A call record found by reconciliation: its end time, sequence and stored event.
#[derive(Debug, Clone)]
pub struct CdrRow {
    pub ended_at: i64,
    pub seq: i64,
    pub event: Arc<StoredEvent>,
}

/// A position in the event log, in the order events became visible to readers. On SQLite the
/// event's `seq` (one writer commits in `seq` order; `xid` is 0). On PostgreSQL the id of the
/// transaction that stored it, then `seq`: identities are handed out before commit, so `seq`
/// alone could commit out of order, while every transaction older than the oldest one still
/// running is final (see `postgres/tail.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub xid: i64,
    pub seq: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.xid, self.seq)
    }
}

impl std::str::FromStr for Cursor {
    type Err = ();
    fn from_str(s: &str) -> Result<Cursor, ()> {
        let (xid, seq) = s.split_once('.').ok_or(())?;
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(xid) || !digits(seq) {
            return Err(());
        }
        Ok(Cursor {
            xid: xid.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

/// An event read from the log, with its position.
#[derive(Debug, Clone)]
pub struct TailItem {
    pub cursor: Cursor,
    pub event: Arc<StoredEvent>,
}

/// A page of the log: the events read, how many rows were looked at (an unreadable one is
/// skipped but counted), and the position of the last row looked at, so a reader goes on past
/// rows it skipped.
#[derive(Debug, Clone, Default)]
pub struct TailPage {
    pub items: Vec<TailItem>,
    pub scanned: usize,
    pub last: Option<Cursor>,
}
