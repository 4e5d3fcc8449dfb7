//! The PostgreSQL store, for several callhook nodes sharing one database.
//!
//! Each write is one transaction from a pooled connection; PostgreSQL groups concurrent commits
//! itself. What several nodes need on top of what the SQLite store does:
//! - claims take rows `FOR UPDATE SKIP LOCKED`, so two nodes never claim the same delivery;
//! - per-call advisory locks serialise the steps that look at a call's other deliveries
//!   (ordering, call progress), whichever node runs them;
//! - batch windows close under an advisory lock per integration, the purge under one lock;
//! - nodes heartbeat in `nodes`; a node that stops heartbeating has its leases given up so
//!   the others take its work over;
//! - every change to integrations or tenants sends a NOTIFY in its transaction, which the
//!   other nodes apply to their caches (see [`listen`]).
//!
//! A transaction that loses a deadlock or serialisation race is run again.
//!
//! Rows are read with `Row::get`, which panics on a type mismatch: every column read here has
//! the type this module's own migrations give it, so no input can reach that panic.

mod access;
mod admin;
mod listen;
mod pipeline;
mod progress;
mod read;
mod schema;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::*;
use crate::model::tenancy::{Partner, Tenant, TokenRecord};

/// Connections per node: enough for concurrent ingest, records, claims and reads on a few cores.
const POOL_SIZE: usize = 16;
/// How many times a transaction that lost a deadlock or serialisation race is run again.
const RETRIES: u32 = 8;

/// Errors inside this module: the driver's (kept whole, so retryable ones are recognised) or
/// the store's own.
#[derive(Debug)]
pub enum PgError {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

pub type PgResult<T> = Result<T, PgError>;

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Db(e)
    }
}

impl From<StoreError> for PgError {
    fn from(e: StoreError) -> Self {
        PgError::Store(e)
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PgError::Store(StoreError::Internal(format!("database pool: {e}")))
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Store(s) => s,
            PgError::Db(e) => StoreError::Internal(describe(&e)),
        }
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
        None => format!("postgres: {e}"),
    }
}

impl PgError {
    pub(super) fn retryable(&self) -> bool {
        matches!(self, PgError::Db(e) if matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE))
    }

    pub(super) fn is_unique_violation(&self) -> bool {
        matches!(self, PgError::Db(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION))
    }
}

/// Runs `$body` (which may use `?` and `$tx`) in a transaction, committing at the end; runs it
/// again when PostgreSQL aborted it to break a deadlock or a serialisation conflict.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut tries = 0u32;
        loop {
            let result: PgResult<_> = async {
                let mut client = $store.pool.get().await?;
                let $tx = client.transaction().await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
            .await;
            match result {
                Err(e) if e.retryable() && tries < RETRIES => {
                    tries += 1;
                    tracing::debug!(tries, "transaction lost a race; running it again");
                }
                other => break other.map_err(StoreError::from),
            }
        }
    }};
}

/// Runs `$body` on a pooled connection, outside a transaction (single reads).
macro_rules! on_conn {
    ($store:expr, |$c:ident| $body:expr) => {{
        let result: PgResult<_> = async {
            let $c = $store.pool.get().await?;
            Ok($body)
        }
        .await;
        result.map_err(StoreError::from)
    }};
}

/// Prepares (once per connection) and runs a query.
mod group;

pub(super) async fn query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Vec<Row>> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, params).await?)
}

pub(super) async fn query_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Option<Row>> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, params).await?)
}

pub(super) async fn execute<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<u64> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, params).await?)
}

/// Takes transaction-scoped advisory locks on `keys`, in ascending order so that two
/// transactions needing overlapping keys cannot deadlock on them.
pub(super) async fn lock_keys<C: GenericClient>(c: &C, mut keys: Vec<i64>) -> PgResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    // Volatile functions in the select list run after ORDER BY: the locks are taken in order.
    query(
        c,
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k ORDER BY k",
        &[&keys],
    )
    .await?;
    Ok(())
}

/// The advisory-lock key of a pair of names (a call of a tenant, a call to an integration…).
pub(super) fn lock_key(space: &str, a: &str, b: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [space, a, b] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let mut k = [0u8; 8];
    k.copy_from_slice(&d[..8]);
    i64::from_le_bytes(k)
}

pub struct PgStore {
    pool: Pool,
    committers: group::Committers,
    /// This store's id in the NOTIFY payloads it sends, so it ignores its own.
    instance: Arc<str>,
    changes: Mutex<Option<mpsc::UnboundedReceiver<Notice>>>,
    /// The configuration version this node's caches reflect.
    applied: watch::Sender<i64>,
}

impl PgStore {
    /// This node committed configuration versions `first..=last` itself (and applies them to
    /// its caches as it answers). Counted as applied at once when nothing before them is
    /// missing; otherwise their notices, which come after the missing ones, count them.
    fn own_committed(&self, first: i64, last: i64) {
        self.applied.send_if_modified(|v| {
            let next = *v + 1 == first;
            if next {
                *v = last;
            }
            next
        });
    }

    pub async fn open(url: &str) -> StoreResult<PgStore> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Internal(format!(
                "CALLHOOK_DATABASE_URL is not a valid postgres:// URL: {e}"
            ))
        })?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Internal(format!("database pool: {e}")))?;
        {
            let mut client = pool
                .get()
                .await
                .map_err(|e| StoreError::Internal(format!("cannot connect to PostgreSQL: {e}")))?;
            schema::migrate(&mut client).await?;
        }
        let instance: Arc<str> = Arc::from(hex::encode(crate::security::random_bytes::<8>()));
        let changes = listen::start(config.clone(), instance.clone()).await?;
        // Listening already: the caches the node loads next reflect at least this version, and
        // every later change arrives as a notice.
        let version = {
            let client = pool.get().await.map_err(PgError::from)?;
            listen::current_version(&client).await?
        };
        let (applied, _) = watch::channel(version);
        Ok(PgStore {
            committers: group::Committers::start(pool.clone()),
            pool,
            instance,
            changes: Mutex::new(Some(changes)),
            applied,
        })
    }
}

/// Bumps the configuration version and sends a change notice, in the caller's transaction
/// (delivered on commit). The version row's lock orders concurrent changes, so notices arrive
/// in version order.
pub(super) async fn notify<C: GenericClient>(
    c: &C,
    instance: &str,
    change: &Change,
) -> PgResult<i64> {
    notify_with(c, instance, change, true).await
}

/// [`notify`]; without `routing`, for a change that cannot alter how an event is routed (an
/// integration's failure count): the notice goes out without a new version, so ingest on other
/// nodes is not sent back to re-route for it.
pub(super) async fn notify_with<C: GenericClient>(
    c: &C,
    instance: &str,
    change: &Change,
    routing: bool,
) -> PgResult<i64> {
    let sql = if routing {
        "UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version"
    } else {
        "SELECT version FROM config_version WHERE id = 1"
    };
    let version: i64 = query(c, sql, &[])
        .await?
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::Internal("config_version has no row".into()))?;
    let payload = listen::encode(instance, version, change);
    query(c, "SELECT pg_notify('callhook_changes', $1)", &[&payload]).await?;
    Ok(version)
}

#[async_trait]
impl Store for PgStore {
    async fn create_partner(&self, partner: Partner) -> StoreResult<()> {
        in_tx!(self, |tx| admin::create_partner(&tx, &partner).await?)
    }
    async fn get_partner(&self, id: &str) -> StoreResult<Option<Partner>> {
        on_conn!(self, |c| admin::get_partner(&c, id).await?)
    }
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        in_tx!(self, |tx| admin::create_tenant(&tx, &tenant).await?)
    }
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        on_conn!(self, |c| admin::get_tenant(&c, id).await?)
    }
    async fn update_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            admin::update_tenant(&tx, &tenant).await?;
            notify(&tx, &self.instance, &Change::Tenant(tenant.id.clone())).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
    async fn delete_tenant(&self, id: &str) -> StoreResult<bool> {
        let versions = in_tx!(self, |tx| {
            let mut versions = Vec::new();
            if let Some(integrations) = admin::delete_tenant(&tx, id).await? {
                for iid in integrations {
                    versions.push(notify(&tx, &self.instance, &Change::Integration(iid)).await?);
                }
                versions.push(notify(&tx, &self.instance, &Change::Tenant(id.to_string())).await?);
            }
            versions
        })?;
        if let (Some(first), Some(last)) = (versions.first(), versions.last()) {
            self.own_committed(*first, *last);
        }
        Ok(!versions.is_empty())
    }
    async fn create_token(&self, token: TokenRecord) -> StoreResult<()> {
        in_tx!(self, |tx| admin::create_token(&tx, &token).await?)
    }
    async fn find_token(&self, hash: [u8; 32]) -> StoreResult<Option<TokenRecord>> {
        on_conn!(self, |c| admin::find_token(&c, &hash).await?)
    }
    async fn has_token_named(&self, name: &str) -> StoreResult<bool> {
        on_conn!(self, |c| admin::has_token_named(&c, name).await?)
    }
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        on_conn!(self, |c| access::list_tokens(&c).await?)
    }
    async fn delete_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        in_tx!(self, |tx| {
            let gone = access::delete_token(&tx, id).await?;
            if gone.is_some() {
                // Not routing-relevant: other nodes forget the token as the notice arrives.
                let change = Change::Token(id.to_string());
                notify_with(&tx, &self.instance, &change, false).await?;
            }
            gone
        })
    }
    async fn end_session(&self, id: &str, expires_at: i64, now: i64) -> StoreResult<()> {
        in_tx!(self, |tx| access::end_session(&tx, id, expires_at, now)
            .await?)
    }
    async fn session_ended(&self, id: &str) -> StoreResult<bool> {
        on_conn!(self, |c| access::session_ended(&c, id).await?)
    }
    async fn claim_setting(&self, name: &str, value: Vec<u8>) -> StoreResult<Vec<u8>> {
        in_tx!(self, |tx| access::claim_setting(&tx, name, &value).await?)
    }
    async fn insert_integration(
        &self,
        rec: IntegrationRecord,
        max: Option<u32>,
    ) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            admin::insert_integration(&tx, &rec, max).await?;
            notify(&tx, &self.instance, &Change::Integration(rec.id.clone())).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
    async fn update_integration(&self, rec: IntegrationRecord) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            admin::update_integration(&tx, &rec).await?;
            notify(&tx, &self.instance, &Change::Integration(rec.id.clone())).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
    async fn delete_integration(&self, id: &str) -> StoreResult<bool> {
        let (found, v) = in_tx!(self, |tx| {
            let found = admin::delete_integration(&tx, id).await?;
            let v = notify(&tx, &self.instance, &Change::Integration(id.to_string())).await?;
            (found, v)
        })?;
        self.own_committed(v, v);
        Ok(found)
    }
    async fn load_integrations(&self) -> StoreResult<Vec<IntegrationRecord>> {
        on_conn!(self, |c| admin::load_integrations(&c, None).await?)
    }
    async fn get_integration(&self, id: &str) -> StoreResult<Option<IntegrationRecord>> {
        on_conn!(self, |c| admin::load_integrations(&c, Some(id))
            .await?
            .pop())
    }
    async fn set_integration_health(&self, id: &str, health: IntegrationHealth) -> StoreResult<()> {
        let v = in_tx!(self, |tx| {
            // Disabled or re-activated changes routing (held or sent); failing or recovered not.
            let status_changed = admin::set_health(&tx, id, &health).await?;
            let change = Change::Integration(id.to_string());
            notify_with(&tx, &self.instance, &change, status_changed).await?
        })?;
        self.own_committed(v, v);
        Ok(())
    }
    async fn enable_integration(&self, id: &str, resend: bool, now: i64) -> StoreResult<u64> {
        use crate::store::sqlite::ENABLE_STEP;
        let since = in_tx!(self, |tx| pipeline::enable_begin(&tx, id).await?)?.unwrap_or(i64::MAX);
        let mut queued = 0;
        if resend {
            loop {
                let n = in_tx!(self, |tx| pipeline::enable_resend_step(
                    &tx,
                    id,
                    since,
                    now,
                    ENABLE_STEP
                )
                .await?)?;
                queued += n;
                if n == 0 {
                    break;
                }
            }
        }
        while in_tx!(self, |tx| pipeline::enable_promote_step(
            &tx,
            id,
            now,
            ENABLE_STEP
        )
        .await?)?
            > 0
        {}
        let v = in_tx!(self, |tx| {
            pipeline::enable_finish(&tx, id, now).await?;
            notify(&tx, &self.instance, &Change::Integration(id.to_string())).await?
        })?;
        self.own_committed(v, v);
        Ok(queued)
    }
    async fn ingest(&self, batch: IngestBatch) -> StoreResult<IngestOutcome> {
        match self.committers.ingest(batch).await? {
            Ingested::Stored(out) => Ok(out),
            Ingested::Reroute { version, .. } => Err(StoreError::StaleConfig(version)),
        }
    }
    async fn ingest_routed(&self, batch: IngestBatch) -> StoreResult<Ingested> {
        self.committers.ingest(batch).await
    }
    async fn record(&self, outcomes: Vec<Outcome>, lease: Lease) -> StoreResult<Vec<DispatchJob>> {
        let heads = self.committers.record(outcomes, lease).await?;
        on_conn!(self, |c| pipeline::jobs_with_events(&c, heads, false)
            .await?)
    }
    async fn claim_due(
        &self,
        integration_id: &str,
        limit: u32,
        lease: Lease,
        now: i64,
        body_only: bool,
    ) -> StoreResult<Vec<DispatchJob>> {
        let heads = in_tx!(self, |tx| pipeline::claim_due(
            &tx,
            integration_id,
            limit,
            &lease,
            now
        )
        .await?)?;
        on_conn!(self, |c| pipeline::jobs_with_events(&c, heads, body_only)
            .await?)
    }
    async fn next_due_at(&self, integration_id: &str) -> StoreResult<Option<i64>> {
        on_conn!(self, |c| read::next_due_at(&c, integration_id).await?)
    }
    async fn release(&self, delivery_ids: Vec<String>) -> StoreResult<()> {
        in_tx!(self, |tx| pipeline::release(&tx, &delivery_ids).await?)
    }
    async fn recover(&self, now: i64, dead_after_ms: i64) -> StoreResult<u64> {
        // Node ids are new on every start, so a previous run of this node is one of the nodes
        // no longer heartbeating; live nodes keep their work.
        in_tx!(self, |tx| pipeline::release_dead(&tx, now - dead_after_ms)
            .await?)
    }
    async fn heartbeat(
        &self,
        node: &str,
        now: i64,
        dead_after_ms: i64,
    ) -> StoreResult<Vec<String>> {
        in_tx!(self, |tx| pipeline::heartbeat(
            &tx,
            node,
            now,
            dead_after_ms
        )
        .await?)
    }
    fn shared(&self) -> bool {
        true
    }
    fn changes(&self) -> Option<mpsc::UnboundedReceiver<Notice>> {
        self.changes.lock().take()
    }
    fn applied(&self, version: i64) {
        self.applied.send_if_modified(|v| {
            let newer = version > *v;
            if newer {
                *v = version;
            }
            newer
        });
    }
    fn applied_version(&self) -> Option<i64> {
        Some(*self.applied.borrow())
    }
    async fn wait_applied(&self, version: i64, within: std::time::Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(within, rx.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }
    async fn integrations_with_pending(&self) -> StoreResult<Vec<String>> {
        on_conn!(self, |c| read::integrations_with_pending(&c).await?)
    }
    async fn list_deliveries(
        &self,
        integration_id: &str,
        filter: DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryView>> {
        on_conn!(self, |c| read::list_deliveries(&c, integration_id, &filter)
            .await?)
    }
    async fn get_delivery(
        &self,
        id: &str,
    ) -> StoreResult<Option<(DeliveryView, Vec<AttemptView>)>> {
        on_conn!(self, |c| read::get_delivery(&c, id).await?)
    }
    async fn delivery_job(&self, id: &str) -> StoreResult<Option<DispatchJob>> {
        on_conn!(self, |c| {
            match pipeline::delivery_head(&c, id).await? {
                None => None,
                Some(head) => pipeline::jobs_with_events(&c, vec![head], false)
                    .await?
                    .pop(),
            }
        })
    }
    async fn redeliver(&self, id: &str, lease: Lease, now: i64) -> StoreResult<DispatchJob> {
        let head = in_tx!(self, |tx| pipeline::redeliver(&tx, id, &lease, now).await?)?;
        on_conn!(self, |c| pipeline::jobs_with_events(&c, vec![head], false)
            .await?
            .pop())?
        .ok_or(StoreError::NotFound)
    }
    async fn redeliver_failed(
        &self,
        integration_id: &str,
        since: i64,
        until: i64,
        now: i64,
    ) -> StoreResult<u64> {
        in_tx!(self, |tx| pipeline::redeliver_failed(
            &tx,
            integration_id,
            since,
            until,
            now
        )
        .await?)
    }
    async fn put_recording(&self, meta: RecordingMeta) -> StoreResult<()> {
        in_tx!(self, |tx| access::put_recording(&tx, &meta).await?)
    }
    async fn get_recording(
        &self,
        tenant_id: &str,
        file_id: &str,
    ) -> StoreResult<Option<RecordingMeta>> {
        on_conn!(self, |c| access::get_recording(&c, tenant_id, file_id)
            .await?)
    }
    async fn close_window(&self, window: BatchWindow) -> StoreResult<Vec<DispatchJob>> {
        let heads = in_tx!(self, |tx| pipeline::close_window(&tx, &window).await?)?;
        on_conn!(self, |c| pipeline::jobs_with_events(&c, heads, false)
            .await?)
    }
    async fn cdr_counts(
        &self,
        scope: CdrScope,
        start: i64,
        end: i64,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<(String, u64)>, u64)> {
        on_conn!(self, |c| read::cdr_counts(
            &c, &scope, start, end, offset, limit
        )
        .await?)
    }
    async fn cdr_records(
        &self,
        tenant_id: &str,
        scope: Option<CdrScope>,
        start: i64,
        end: i64,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> StoreResult<Vec<CdrRow>> {
        on_conn!(self, |c| read::cdr_records(
            &c, tenant_id, &scope, start, end, after, limit
        )
        .await?)
    }
    async fn purge(&self, before: i64, limit: u32) -> StoreResult<PurgeReport> {
        in_tx!(self, |tx| read::purge(&tx, before, limit).await?)
    }
    async fn pending_stats(&self) -> StoreResult<(u64, Option<i64>)> {
        on_conn!(self, |c| read::pending_stats(&c).await?)
    }
    async fn ping(&self) -> StoreResult<()> {
        on_conn!(self, |c| {
            query(&c, "SELECT 1", &[]).await?;
        })
    }
}
