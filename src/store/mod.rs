//! Storage: small ports, one trait per concern ([`ports`]), and [`Store`], their sum, for
//! everything callhook keeps. SQLite (embedded, one node) implements them in [`sqlite`];
//! PostgreSQL, for several nodes sharing one database, in [`postgres`] — one file per port in
//! each.
//!
//! Callers never see SQL or assume a backend. Every method that writes returns only after its
//! change is durable: this is what lets the API acknowledge an event with 202 and the delivery
//! stage count an attempt as recorded.
//!
//! Deliveries carry a lease (`owner`, `until`): the node that holds it is the only one sending
//! the delivery. Fresh deliveries are inserted already leased to the ingesting node so the fast
//! path needs no extra write; a retry far in the future gives its lease up; anything whose lease
//! expired is claimed again with [`Queue::claim_due`].

pub mod algo;
pub(crate) mod group;
pub mod ports;
pub mod postgres;
pub(crate) mod shared;
pub mod sqlite;
mod types;

use std::sync::Arc;

pub use ports::*;
pub use types::*;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
    /// The store cannot be reached (PostgreSQL down or restarting, connections cut): nothing of
    /// the operation happened, and the same operation can be tried again.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store's disk is full: nothing of the operation was written.
    #[error("store full: {0}")]
    Full(String),
    /// Another node changed the configuration (version `0`) and this node's caches do not
    /// reflect it yet: routing must be decided again once they do.
    #[error("configuration version {0} is not applied on this node yet")]
    StaleConfig(i64),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub type DynStore = Arc<dyn Store>;

/// What [`Store::ingest_routed`] did with a batch.
#[derive(Debug)]
pub enum Ingested {
    Stored(IngestOutcome),
    /// The configuration is at `version`, newer than the caches the batch was routed with.
    Reroute {
        version: i64,
        batch: IngestBatch,
    },
}

/// A committed configuration change: its version, and what to apply — `None` for this node's
/// own changes, which it applied itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub version: i64,
    pub change: Option<Change>,
}

/// A change another node committed, that this node's caches must follow.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Created, edited, disabled, re-enabled or deleted.
    Integration(String),
    /// Edited or deleted (with its tokens and integrations).
    Tenant(String),
    /// An API token was revoked: forget it.
    Token(String),
    /// Notices may have been missed (the listening connection was lost): reload everything.
    Resync,
}

/// Opens the store named by a database URL.
pub async fn open(url: &str) -> Result<DynStore, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::SqliteStore::open(std::path::Path::new(path)).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PgStore::open(url).await?));
    }
    Err(StoreError::Internal(format!(
        "CALLHOOK_DATABASE_URL `{url}` is neither sqlite://PATH nor postgres://…"
    )))
}
