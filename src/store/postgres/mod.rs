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

mod listen;
mod progress;
mod schema;

use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::*;

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
        use deadpool_postgres::PoolError as P;
        let message = format!("database pool: {e}");
        PgError::Store(match e {
            // No connection could be had or made: the server is down, restarting or full.
            P::Timeout(_) | P::Backend(_) | P::Closed => StoreError::Unavailable(message),
            _ => StoreError::Internal(message),
        })
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Store(s) => s,
            PgError::Db(e) => {
                let message = describe(&e);
                match unavailability(&e) {
                    Some(Unavailability::Away) => StoreError::Unavailable(message),
                    Some(Unavailability::DiskFull) => StoreError::Full(message),
                    None => StoreError::Internal(message),
                }
            }
        }
    }
}

enum Unavailability {
    Away,
    DiskFull,
}

/// Whether `e` says the server is away (connection lost or refused, shutting down, starting,
/// out of connections) or out of disk, rather than that the statement was wrong: the first two
/// are the operator's to fix, and the client's to try again.
fn unavailability(e: &tokio_postgres::Error) -> Option<Unavailability> {
    if let Some(code) = e.code() {
        let code = code.code();
        return if code == SqlState::DISK_FULL.code() {
            Some(Unavailability::DiskFull)
        } else if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
            // connection exception, operator intervention (shutdown, crash, cannot connect
            // now), insufficient resources
            Some(Unavailability::Away)
        } else {
            None
        };
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return Some(Unavailability::Away);
        }
        source = s.source();
    }
    e.is_closed().then_some(Unavailability::Away)
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

// After the macros above, which they use.
mod access;
mod catalog;
mod events;
mod files;
mod group;
mod ingest;
mod journal;
mod membership;
mod portal;
mod queue;
mod resend;
mod stats;
mod tail;
mod tenancy;
mod upkeep;
mod windows;

/// Prepares (once per connection) and runs a query.
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
        // The URL's own `options=-c plan_cache_mode=…` (or the role's setting, which a
        // connection reads unless told otherwise) is the operator's choice and wins.
        let own_plans = config
            .get_options()
            .is_some_and(|o| o.contains("plan_cache_mode"));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let mut builder = Pool::builder(manager).max_size(POOL_SIZE);
        if !own_plans {
            builder = builder.post_create(deadpool_postgres::Hook::async_fn(|client, _| {
                Box::pin(async move {
                    custom_plans(client).await;
                    Ok(())
                })
            }));
        }
        let pool = builder
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

/// Every statement is planned for its own parameters. With PostgreSQL's default, a prepared
/// statement switches to a generic plan after five runs and keeps it until the table is next
/// analysed: on a new store that plan is made while `deliveries` holds a few rows, so it scans
/// the table, and it went on scanning a table of 100 000 rows for the minute before autovacuum
/// came (the outcome update took 4.5 ms per group). Planning each run costs tens of
/// microseconds per statement, spread over a group. Set on each new connection rather than as a
/// startup option, which poolers such as PgBouncer refuse; a server that does not know the
/// setting (before PostgreSQL 12) keeps its generic plans, and the node says so once.
async fn custom_plans(client: &tokio_postgres::Client) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = client
        .batch_execute("SET plan_cache_mode = force_custom_plan")
        .await
    {
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(error = %e, "could not set plan_cache_mode; statements keep generic plans, which may scan a table that grew since it was analysed");
        }
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

pub(super) fn conflict_on_unique(what: &str) -> impl Fn(PgError) -> PgError + '_ {
    move |e| {
        if e.is_unique_violation() {
            PgError::Store(StoreError::Conflict(format!("{what} already exists")))
        } else {
            e
        }
    }
}
