//! The storage ports: one small trait per concern, so a caller asks for what it needs and a new
//! backend can be written — and read — one concern at a time. [`Store`] is their sum, implemented
//! for every type that implements them all, so a `DynStore` reaches every port.
//!
//! | port | concern | used by |
//! |---|---|---|
//! | [`Tenancy`] | partners and tenants | api, console |
//! | [`Access`] | API tokens, console sessions, node settings | auth, api, console, app |
//! | [`Portal`] | portal links and the sessions they open | api, console |
//! | [`Catalog`] | integrations and their health | api, cache, cluster, record |
//! | [`Queue`] | the hot path: store routed events, record outcomes, claim, release, recover | ingest, deliver |
//! | [`Resend`] | redelivery and re-enabling (the enable steps) | api, console |
//! | [`Journal`] | the read side: deliveries log, reconciliation, queue depth | api, console, metrics |
//! | [`Files`] | recording files' records | api |
//! | [`Windows`] | closing batch windows | deliver (batch scheduler) |
//! | [`Upkeep`] | retention's purge, readiness | retention, api |
//! | [`Membership`] | nodes sharing one store: heartbeats and change notices (no-ops alone) | cluster, ingest |
//!
//! Algorithms that do not depend on the dialect are written here once, over the ports'
//! primitives (e.g. [`Resend::enable_integration`]); backends supply SQL only.

use async_trait::async_trait;

use super::*;
use crate::model::portal::{PortalLink, PortalSession};
use crate::model::tenancy::{Partner, Tenant, TokenRecord};

/// How many deliveries one step of re-enabling touches: each step is its own short write, so a
/// million held deliveries never hold the writer (or a PostgreSQL transaction) for long.
pub const ENABLE_STEP: u32 = 5_000;

#[async_trait]
pub trait Tenancy: Send + Sync {
    async fn create_partner(&self, partner: Partner) -> StoreResult<()>;
    async fn get_partner(&self, id: &str) -> StoreResult<Option<Partner>>;
    /// Replaces a partner's name and settings; false when there is none of that id.
    async fn update_partner(&self, partner: Partner) -> StoreResult<bool>;
    /// Stores (or, with `None`, removes) a partner's logo: its media type and bytes.
    async fn set_partner_logo(
        &self,
        id: &str,
        logo: Option<(String, Vec<u8>)>,
    ) -> StoreResult<bool>;
    async fn partner_logo(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()>;
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>>;
    async fn update_tenant(&self, tenant: Tenant) -> StoreResult<()>;
    /// Deletes a tenant with its tokens, integrations and recording records (the caller removes
    /// the files); pending deliveries are cancelled.
    async fn delete_tenant(&self, id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait Access: Send + Sync {
    async fn create_token(&self, token: TokenRecord) -> StoreResult<()>;
    async fn find_token(&self, hash: [u8; 32]) -> StoreResult<Option<TokenRecord>>;
    async fn has_token_named(&self, name: &str) -> StoreResult<bool>;
    /// Every stored token (hashes only), oldest first; callers narrow them to their scope.
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes a token; the deleted record, so callers can forget it. On a shared store every
    /// node is told to forget it too.
    async fn delete_token(&self, id: &str) -> StoreResult<Option<TokenRecord>>;
    /// Records that a console session ended (signed out) before its cookie expires.
    async fn end_session(&self, id: &str, expires_at: i64, now: i64) -> StoreResult<()>;
    async fn session_ended(&self, id: &str) -> StoreResult<bool>;
    /// Stores `value` under `name` unless something is stored there already; returns what is
    /// stored (the first writer wins, so nodes starting together agree).
    async fn claim_setting(&self, name: &str, value: Vec<u8>) -> StoreResult<Vec<u8>>;
}

#[async_trait]
pub trait Portal: Send + Sync {
    async fn create_portal_link(&self, link: PortalLink) -> StoreResult<()>;
    /// Opens the session `session` with the link whose code hashes to `hash`, in one step: the
    /// link must be unused and unexpired at `now`, and is used up by this. `None` otherwise (and
    /// nothing is stored). The session takes the link's tenant, role and scope.
    async fn redeem_portal_link(
        &self,
        hash: [u8; 32],
        session_id: &str,
        session_expires_at: i64,
        now: i64,
    ) -> StoreResult<Option<PortalSession>>;
    async fn portal_session(&self, id: &str) -> StoreResult<Option<PortalSession>>;
    /// The tenant's sessions not yet expired at `now` (ended ones included), newest first.
    async fn list_portal_sessions(
        &self,
        tenant_id: &str,
        now: i64,
    ) -> StoreResult<Vec<PortalSession>>;
    /// Ends a session of the tenant; false when it has none of that id (or it had ended).
    async fn end_portal_session(&self, tenant_id: &str, id: &str, now: i64) -> StoreResult<bool>;
    /// Drops the unopened links and ends the sessions of a tenant (it moved to another partner)
    /// or made by a token (it was revoked).
    async fn end_portal_access(&self, whose: PortalAccess, now: i64) -> StoreResult<()>;
}

#[async_trait]
pub trait Catalog: Send + Sync {
    /// Inserts unless the tenant already has `max` integrations (then `Conflict`).
    async fn insert_integration(&self, rec: IntegrationRecord, max: Option<u32>)
        -> StoreResult<()>;
    async fn update_integration(&self, rec: IntegrationRecord) -> StoreResult<()>;
    /// Deletes the integration; its pending deliveries are cancelled, its log kept until purge.
    async fn delete_integration(&self, id: &str) -> StoreResult<bool>;
    async fn load_integrations(&self) -> StoreResult<Vec<IntegrationRecord>>;
    /// One integration as stored (a change another node made, to apply to the cache).
    async fn get_integration(&self, id: &str) -> StoreResult<Option<IntegrationRecord>>;
    /// Records a health change (failing, disabled, recovered).
    async fn set_integration_health(&self, id: &str, health: IntegrationHealth) -> StoreResult<()>;
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Stores events (skipping ids already stored for the tenant) with their deliveries, in one
    /// durable step, and returns the deliveries ready to send now.
    async fn ingest(&self, batch: IngestBatch) -> StoreResult<IngestOutcome>;
    /// [`Queue::ingest`] for a batch routed with this node's caches: where another node changed
    /// the configuration since (a shared store), nothing is stored and the batch comes back to
    /// be routed again — its events with it, so the caller keeps no copy for that case.
    async fn ingest_routed(&self, batch: IngestBatch) -> StoreResult<Ingested> {
        self.ingest(batch).await.map(Ingested::Stored)
    }
    /// Records attempt outcomes; returns deliveries that became ready (the next of an ordered
    /// call whose previous delivery was settled).
    async fn record(&self, outcomes: Vec<Outcome>, lease: Lease) -> StoreResult<Vec<DispatchJob>>;
    /// Leases up to `limit` due deliveries of one integration whose lease is free or expired.
    ///
    /// `body_only`: the integration's payload is the stored body spliced (canonical JSON), so
    /// the events come with their envelope fields and body but unparsed `data` — the render
    /// path parses the body itself should it need more.
    async fn claim_due(
        &self,
        integration_id: &str,
        limit: u32,
        lease: Lease,
        now: i64,
        body_only: bool,
    ) -> StoreResult<Vec<DispatchJob>>;
    /// When the integration's earliest unleased pending delivery is due, if it has any.
    async fn next_due_at(&self, integration_id: &str) -> StoreResult<Option<i64>>;
    /// Gives leases up so the deliveries are claimed again (memory was full, or shutting down).
    async fn release(&self, delivery_ids: Vec<String>) -> StoreResult<()>;
    /// Called once at start: makes work leased by a previous run of this node claimable — on a
    /// shared store, the work of every node that has not heartbeaten for `dead_after_ms`.
    async fn recover(&self, now: i64, dead_after_ms: i64) -> StoreResult<u64>;
    /// Integrations that have pending deliveries (at start-up, to schedule claims).
    async fn integrations_with_pending(&self) -> StoreResult<Vec<String>>;
}

#[async_trait]
pub trait Resend: Send + Sync {
    /// Sends one settled delivery again, once (a manual redelivery is never retried).
    async fn redeliver(&self, id: &str, lease: Lease, now: i64) -> StoreResult<DispatchJob>;
    /// Queues every failed delivery of the integration created in `[since, until)`; returns the count.
    async fn redeliver_failed(
        &self,
        integration_id: &str,
        since: i64,
        until: i64,
        now: i64,
    ) -> StoreResult<u64>;

    // The steps of re-enabling, each its own short write (see [`Resend::enable_integration`]).
    /// Marks the integration as being re-enabled; returns since when it has been failing.
    async fn enable_begin(&self, id: &str) -> StoreResult<Option<i64>>;
    /// Queues up to `limit` more of what was held or failed since `since`; how many it queued.
    async fn enable_resend_step(
        &self,
        id: &str,
        since: i64,
        now: i64,
        limit: u32,
    ) -> StoreResult<u64>;
    /// Promotes up to `limit` ordered deliveries left blocked behind settled ones; how many.
    async fn enable_promote_step(&self, id: &str, now: i64, limit: u32) -> StoreResult<u64>;
    /// Makes the integration active again (on a shared store, every node is told).
    async fn enable_finish(&self, id: &str, now: i64) -> StoreResult<()>;

    /// Re-enables; with `resend`, what was held or failed since it started failing goes out
    /// again. Returns how many deliveries were queued. Written once over the steps above, in
    /// steps of [`ENABLE_STEP`].
    async fn enable_integration(&self, id: &str, resend: bool, now: i64) -> StoreResult<u64> {
        let since = self.enable_begin(id).await?.unwrap_or(i64::MAX);
        let mut queued = 0;
        if resend {
            loop {
                let n = self.enable_resend_step(id, since, now, ENABLE_STEP).await?;
                queued += n;
                if n == 0 {
                    break;
                }
            }
        }
        while self.enable_promote_step(id, now, ENABLE_STEP).await? > 0 {}
        self.enable_finish(id, now).await?;
        Ok(queued)
    }
}

#[async_trait]
pub trait Journal: Send + Sync {
    async fn list_deliveries(
        &self,
        integration_id: &str,
        filter: DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryView>>;
    async fn get_delivery(&self, id: &str)
        -> StoreResult<Option<(DeliveryView, Vec<AttemptView>)>>;
    /// A delivery with its event, as it would be sent; read-only (the console's request view).
    async fn delivery_job(&self, id: &str) -> StoreResult<Option<DispatchJob>>;
    /// Calls per tenant that ended in `[start, end)`, ordered by tenant: one page and the total
    /// number of tenants.
    async fn cdr_counts(
        &self,
        scope: CdrScope,
        start: i64,
        end: i64,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<(String, u64)>, u64)>;
    /// One tenant's calls that ended in `[start, end)` (within `scope` when given), ordered by
    /// end time, after the cursor `(ended_at, seq)`.
    async fn cdr_records(
        &self,
        tenant_id: &str,
        scope: Option<CdrScope>,
        start: i64,
        end: i64,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> StoreResult<Vec<CdrRow>>;
    /// Deliveries not yet settled, and when the oldest of them was created (for metrics).
    async fn pending_stats(&self) -> StoreResult<(u64, Option<i64>)>;
    /// A tenant's operational events, newest first, older than the sequence number `before`.
    async fn list_notifications(
        &self,
        tenant_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>>;
}

#[async_trait]
pub trait Files: Send + Sync {
    /// Records an uploaded file. File ids are the tenant's own: the same id in two tenants names
    /// two files, and uploading an id again replaces the tenant's file.
    async fn put_recording(&self, meta: RecordingMeta) -> StoreResult<()>;
    async fn get_recording(
        &self,
        tenant_id: &str,
        file_id: &str,
    ) -> StoreResult<Option<RecordingMeta>>;
}

#[async_trait]
pub trait Windows: Send + Sync {
    /// Closes a window: takes the queued calls that ended before the cutoff, renders their items
    /// with `window.render`, stores the batch parts as deliveries leased to this node, and
    /// records the boundary — all in one step, so a window is neither skipped nor sent twice.
    /// Empty when the boundary was already closed.
    async fn close_window(&self, window: BatchWindow) -> StoreResult<Vec<DispatchJob>>;
}

#[async_trait]
pub trait Stats: Send + Sync {
    /// The per-minute counts of these integrations from `since_minute` on, summed over them:
    /// `(minute, kind, n)` (`model::stats`). Written with the outcomes ([`Queue::record`]).
    async fn minute_counts(
        &self,
        integration_ids: &[String],
        since_minute: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>>;
    /// Forgets the counts of minutes before `before_minute`.
    async fn forget_minutes(&self, before_minute: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait Upkeep: Send + Sync {
    /// Removes up to `limit` each of settled deliveries (with their attempts), events no
    /// delivery needs any more, and recordings, all older than `before` (epoch ms). Pending and
    /// blocked deliveries and their events are never removed. Called repeatedly, in small
    /// steps, so it never holds the writer for long.
    async fn purge(&self, before: i64, limit: u32) -> StoreResult<PurgeReport>;
    /// Removes up to `limit` each of a deleted tenant's events (with every delivery of them,
    /// partner feeds' included, and its attempts) and call progress rows: `tenant`'s, or any
    /// deleted tenant's. Once none is left, frees its id for a new tenant. Returns the rows
    /// removed, or `None` when there was no such deleted tenant left.
    async fn purge_deleted_tenant(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> StoreResult<Option<u64>>;
    /// A cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
}

/// The event log read in order, for live streams: where it ends, and what follows a position.
#[async_trait]
pub trait Tail: Send + Sync {
    /// The end of the log now: every event that will ever be at or before it is visible.
    async fn tail_head(&self) -> StoreResult<Cursor>;
    /// Up to `limit` events after `after`, in log order; only `tenant`'s when given. Never
    /// returns an event before one that is not yet visible, so a reader that goes on from the
    /// last cursor it got misses nothing.
    async fn tail(&self, tenant: Option<&str>, after: Cursor, limit: u32) -> StoreResult<TailPage>;
}

/// Nodes sharing one store. Every method has the single-node answer as its default, so a store
/// only one node uses implements it with an empty `impl`.
#[async_trait]
pub trait Membership: Send + Sync {
    /// Says this node is alive, and gives up the leases of nodes that stopped saying so for
    /// `dead_after_ms`, so their work is claimed again. Returns the integrations with work
    /// given up and the nodes alive. A store only one node uses has nothing to do.
    async fn heartbeat(&self, _node: &str, _now: i64, _dead_after_ms: i64) -> StoreResult<Beat> {
        Ok(Beat {
            taken_over: Vec::new(),
            live_nodes: 1,
        })
    }
    /// Whether several nodes may share this store (heartbeats and change notices matter).
    fn shared(&self) -> bool {
        false
    }
    /// Changes to integrations and tenants as they commit, in order, each with the
    /// configuration version it made. `None` when no other node can change anything (or the
    /// receiver was already taken).
    fn changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        None
    }
    /// This node's caches reflect every configuration change up to `version`. Ingest refuses
    /// (`StaleConfig`) to route against caches older than the store's configuration.
    fn applied(&self, _version: i64) {}
    /// The configuration version this node's caches reflect, for [`IngestBatch::config_version`];
    /// `None` on a store no other node changes.
    fn applied_version(&self) -> Option<i64> {
        None
    }
    /// Waits up to `within` until [`Membership::applied`] reaches `version`; false if it did not.
    async fn wait_applied(&self, _version: i64, _within: std::time::Duration) -> bool {
        true
    }
}

/// Everything callhook keeps: the sum of the ports, for wiring. Implemented for every type that
/// implements them all.
pub trait Store:
    Tenancy
    + Access
    + Portal
    + Catalog
    + Queue
    + Resend
    + Journal
    + Stats
    + Files
    + Windows
    + Upkeep
    + Membership
    + Tail
    + 'static
{
}

impl<T> Store for T where
    T: Tenancy
        + Access
        + Portal
        + Catalog
        + Queue
        + Resend
        + Journal
        + Stats
        + Files
        + Windows
        + Upkeep
        + Membership
        + Tail
        + 'static
{
}
