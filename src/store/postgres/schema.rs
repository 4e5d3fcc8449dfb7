//! PostgreSQL migrations, applied in order under an advisory lock (several nodes may start at
//! once) and tracked in `callhook_schema`.

use tokio_postgres::Client;

use super::{PgError, PgResult};

/// Held while migrating, so two nodes starting together do not both migrate.
const MIGRATION_LOCK: i64 = 0x6361_6c6c_686f_6f6b; // "callhook"

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE partners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    partner_id TEXT,
    max_integrations BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tenants_by_partner ON tenants(partner_id);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    hash BYTEA NOT NULL UNIQUE,
    role TEXT NOT NULL,
    tenant_id TEXT,
    partner_id TEXT,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX tokens_by_name ON tokens(name);
CREATE INDEX tokens_by_tenant ON tokens(tenant_id);
CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT,
    partner_id TEXT,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    disabled_reason TEXT,
    secret_sealed BYTEA,
    secret_hint TEXT,
    signing_sealed BYTEA NOT NULL,
    failing_since BIGINT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX integrations_by_tenant ON integrations(tenant_id);
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    call_id TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    ingested_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    ended_at BIGINT,
    license_partner TEXT,
    UNIQUE (tenant_id, id)
);
CREATE INDEX events_by_age ON events(ingested_at);
CREATE INDEX cdrs_by_end ON events(ended_at, tenant_id) WHERE ended_at IS NOT NULL;
CREATE INDEX cdrs_by_org ON events(tenant_id, ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX cdrs_by_licence ON events(license_partner, ended_at) WHERE license_partner IS NOT NULL;
CREATE INDEX records_by_call ON events(tenant_id, call_id) WHERE type = 'call.completed';
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    integration_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    ordered BOOLEAN NOT NULL,
    manual BOOLEAN NOT NULL DEFAULT false,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    retries_used BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_status_code BIGINT,
    last_error_class TEXT
);
-- Claims: unleased pending rows in due order, and leases by expiry (partial, so rows that are
-- settled or in memory somewhere are not in the range a claim reads).
CREATE INDEX deliveries_unleased ON deliveries(integration_id, next_attempt_at)
    WHERE status = 'pending' AND lease_until IS NULL;
CREATE INDEX deliveries_leased ON deliveries(integration_id, lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
-- Taking over the work of a node that died.
CREATE INDEX deliveries_by_owner ON deliveries(lease_owner) WHERE lease_owner IS NOT NULL;
-- Every update of a delivery changes an indexed column, so it writes to every index whose
-- predicate the new row matches: indexes are partial wherever a query allows, and a row that
-- succeeded lives in only three (key, log, event).
-- What is still to be sent (pending counts and age).
CREATE INDEX deliveries_open ON deliveries(created_at) WHERE status IN ('pending', 'blocked');
-- What re-enabling or a redelivery may send again.
CREATE INDEX deliveries_to_resend ON deliveries(integration_id, next_attempt_at)
    WHERE status IN ('held', 'failed');
-- Ordered delivery: the earlier deliveries of one call to one integration.
CREATE INDEX deliveries_by_call ON deliveries(integration_id, call_id, event_seq) WHERE ordered;
-- The delivery log, newest first (ids sort by creation time).
CREATE INDEX deliveries_log ON deliveries(integration_id, id);
CREATE INDEX deliveries_by_event ON deliveries(event_seq);
CREATE TABLE attempts (
    delivery_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code BIGINT,
    error_class TEXT,
    error TEXT,
    response_excerpt TEXT,
    manual BOOLEAN NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
CREATE TABLE recordings (
    file_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX recordings_by_age ON recordings(created_at);
CREATE TABLE batch_queue (
    integration_id TEXT NOT NULL,
    ended_at BIGINT NOT NULL,
    event_seq BIGINT NOT NULL,
    PRIMARY KEY (integration_id, ended_at, event_seq)
);
CREATE INDEX batch_queue_by_event ON batch_queue(event_seq);
CREATE TABLE batch_windows (
    integration_id TEXT PRIMARY KEY,
    last_boundary BIGINT NOT NULL
);
CREATE TABLE call_progress (
    tenant_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    rank BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
);
CREATE INDEX call_progress_by_age ON call_progress(updated_at);
-- Nodes sharing the database, and when each last said it was alive.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
"#,
    // 2: the configuration version: bumped by every change to integrations or tenants, in the
    // change's transaction; ingest compares it with what the node's caches reflect.
    r#"
CREATE TABLE config_version (
    id INT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
"#,
    // 3: a recording file belongs to one tenant: its id is unique within the tenant only (a
    // taken id in another tenant reveals nothing). Node settings (the sealing key's check
    // value), and console sessions ended by signing out.
    r#"
ALTER TABLE recordings DROP CONSTRAINT recordings_pkey;
ALTER TABLE recordings ADD PRIMARY KEY (tenant_id, file_id);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE ended_sessions (
    id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
"#,
    // 4: portal links (the hash of each single-use code) and the console sessions they opened.
    r#"
CREATE TABLE portal_links (
    hash BYTEA PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    role TEXT NOT NULL,
    integration_ids TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX portal_links_by_tenant ON portal_links(tenant_id);
CREATE TABLE portal_sessions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    role TEXT NOT NULL,
    integration_ids TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX portal_sessions_by_tenant ON portal_sessions(tenant_id, created_at);
"#,
    // 5: what a partner's tenants see of it: origins that may frame their console, its brand
    // (name, accent), its logo and the logo's checked media type (a column of its own, written
    // only with the logo, so a settings change cannot undo an upload).
    r#"
ALTER TABLE partners ADD COLUMN frame_ancestors TEXT;
ALTER TABLE partners ADD COLUMN brand TEXT;
ALTER TABLE partners ADD COLUMN logo BYTEA;
ALTER TABLE partners ADD COLUMN logo_type TEXT;
"#,
    // 6: a tenant's operational events (integration failing, disabled, recovered; delivery
    // exhausted), newest first, for its notifications page. Partial: call events, the bulk, pay
    // nothing for it. The predicate is `store::shared::OPERATIONAL_TYPES`, word for word.
    r#"
CREATE INDEX notifications_by_tenant ON events(tenant_id, seq)
    WHERE type IN ('integration.failing', 'integration.disabled', 'integration.recovered', 'delivery.exhausted');
"#,
    // 7: deliveries per integration and minute by kind (failed, retried, succeeded by latency
    // bucket: `model::stats`), added to as outcomes are recorded; the charts read these, never
    // the deliveries. Kept 48 hours.
    r#"
CREATE TABLE minute_counts (
    integration_id TEXT NOT NULL,
    minute BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (integration_id, minute, kind)
);
CREATE INDEX minute_counts_by_age ON minute_counts(minute);
"#,
    // 8: each node adds to its own count rows (`queue::count_shard`), so nodes' outcome commits
    // never wait on one another's row lock; the charts sum the shards. The table holds two days
    // of per-minute rows, so rebuilding its key is quick.
    r#"
ALTER TABLE minute_counts ADD COLUMN shard INT2 NOT NULL DEFAULT 0;
ALTER TABLE minute_counts DROP CONSTRAINT minute_counts_pkey;
ALTER TABLE minute_counts ADD PRIMARY KEY (integration_id, minute, kind, shard);
"#,
    // 9: the transaction that stored each event, so live streams read the log in the order
    // events became visible (`tail.rs`). Events stored before are transaction 0: read first,
    // in `seq` order. A constant default first (no rewrite of the table), then the real one.
    r#"
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX events_in_log_order ON events(xid, seq);
CREATE INDEX events_by_tenant_in_log_order ON events(tenant_id, xid, seq);
"#,
    // 10: deleted tenants whose call data is still being removed (`upkeep::purge_deleted_tenant`):
    // their ids stay taken until it is gone, so a new tenant of the same id inherits nothing.
    r#"
CREATE TABLE tenant_purges (tenant_id TEXT PRIMARY KEY);
"#,
];

pub async fn migrate(client: &mut Client) -> PgResult<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS callhook_schema (version BIGINT NOT NULL)")
        .await?;
    let version: i64 = tx
        .query_opt("SELECT version FROM callhook_schema", &[])
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0);
    if version as usize > MIGRATIONS.len() {
        return Err(PgError::Store(crate::store::StoreError::Internal(format!(
            "the database schema is version {version}, newer than this build knows ({}); run a newer callhook",
            MIGRATIONS.len()
        ))));
    }
    for sql in MIGRATIONS.iter().skip(version as usize) {
        tx.batch_execute(sql).await?;
    }
    tx.execute("DELETE FROM callhook_schema", &[]).await?;
    tx.execute(
        "INSERT INTO callhook_schema (version) VALUES ($1)",
        &[&(MIGRATIONS.len() as i64)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
