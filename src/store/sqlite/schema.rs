//! Embedded migrations, applied in order and tracked with `PRAGMA user_version`.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE partners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    partner_id TEXT,
    max_integrations INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    role TEXT NOT NULL,
    tenant_id TEXT,
    partner_id TEXT,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT,
    partner_id TEXT,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    disabled_reason TEXT,
    secret_sealed BLOB,
    secret_hint TEXT,
    signing_sealed BLOB NOT NULL,
    failing_since INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX integrations_by_tenant ON integrations(tenant_id);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    call_id TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    ingested_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    integration_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    event_seq INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    ordered INTEGER NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    retries_used INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_status_code INTEGER,
    last_error_class TEXT
) WITHOUT ROWID;
-- Claiming due work per integration, and finding when it is next due.
CREATE INDEX deliveries_due ON deliveries(integration_id, status, next_attempt_at);
-- Ordered delivery: the earlier deliveries of one call to one integration.
CREATE INDEX deliveries_by_call ON deliveries(integration_id, call_id, event_seq) WHERE ordered = 1;
-- The delivery log, newest first (ids sort by creation time).
CREATE INDEX deliveries_log ON deliveries(integration_id, id);
CREATE TABLE attempts (
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,
    error_class TEXT,
    error TEXT,
    response_excerpt TEXT,
    manual INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE recordings (
    file_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX recordings_by_age ON recordings(created_at);
"#,
    r#"
-- Retention: events by age, and whether any delivery still needs an event.
CREATE INDEX events_by_age ON events(ingested_at);
CREATE INDEX deliveries_by_event ON deliveries(event_seq);
"#,
    r#"
-- Call records (call.completed) carry when the call ended and whose licence it used: batch
-- windows and reconciliation select by these.
ALTER TABLE events ADD COLUMN ended_at INTEGER;
ALTER TABLE events ADD COLUMN license_partner TEXT;
CREATE INDEX cdrs_by_end ON events(ended_at, tenant_id) WHERE ended_at IS NOT NULL;
CREATE INDEX cdrs_by_org ON events(tenant_id, ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX cdrs_by_licence ON events(license_partner, ended_at) WHERE license_partner IS NOT NULL;
-- Calls routed to a batch integration, waiting for their window.
CREATE TABLE batch_queue (
    integration_id TEXT NOT NULL,
    ended_at INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    PRIMARY KEY (integration_id, ended_at, event_seq)
) WITHOUT ROWID;
CREATE INDEX batch_queue_by_event ON batch_queue(event_seq);
-- The last window boundary each batch integration has closed.
CREATE TABLE batch_windows (
    integration_id TEXT PRIMARY KEY,
    last_boundary INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Analytics reconciliation joins a partner's tenants.
CREATE INDEX tenants_by_partner ON tenants(partner_id);
"#,
    // 7: call progress (call-state hygiene, records built from states) and a lookup of a
    // call's records.
    r#"
CREATE TABLE call_progress (
    tenant_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    rank INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    answered_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
) WITHOUT ROWID;
CREATE INDEX call_progress_by_age ON call_progress(updated_at);
CREATE INDEX records_by_call ON events(tenant_id, call_id) WHERE type = 'call.completed';
"#,
    // 8: the due index also knows the lease, so a claim reads unleased rows in due order (and
    // expired leases by their expiry) without stepping over the rows leased to in-memory queues.
    r#"
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries(integration_id, status, lease_until, next_attempt_at);
"#,
    // 9: a recording file belongs to one tenant: its id is unique within the tenant only (a
    // taken id in another tenant reveals nothing). Node settings (the sealing key's check
    // value), and console sessions ended by signing out.
    r#"
CREATE TABLE recordings_scoped (
    tenant_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, file_id)
) WITHOUT ROWID;
INSERT INTO recordings_scoped (tenant_id, file_id, content_type, bytes, sha256, created_at)
    SELECT tenant_id, file_id, content_type, bytes, sha256, created_at FROM recordings;
DROP TABLE recordings;
ALTER TABLE recordings_scoped RENAME TO recordings;
CREATE INDEX recordings_by_age ON recordings(created_at);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE ended_sessions (
    id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // Portal links (the hash of each single-use code) and the console sessions they opened.
    r#"
CREATE TABLE portal_links (
    hash BLOB PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    role TEXT NOT NULL,
    integration_ids TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) WITHOUT ROWID;
CREATE INDEX portal_links_by_tenant ON portal_links(tenant_id);
CREATE TABLE portal_sessions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    role TEXT NOT NULL,
    integration_ids TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER
) WITHOUT ROWID;
CREATE INDEX portal_sessions_by_tenant ON portal_sessions(tenant_id, created_at);
"#,
    // 5: what a partner's tenants see of it: origins that may frame their console, its brand
    // (name, accent), its logo and the logo's checked media type (a column of its own, written
    // only with the logo, so a settings change cannot undo an upload).
    r#"
ALTER TABLE partners ADD COLUMN frame_ancestors TEXT;
ALTER TABLE partners ADD COLUMN brand TEXT;
ALTER TABLE partners ADD COLUMN logo BLOB;
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
    minute INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (integration_id, minute, kind)
) WITHOUT ROWID;
CREATE INDEX minute_counts_by_age ON minute_counts(minute);
"#,
    // A tenant's events in log order, for a live stream that resumes from a cursor.
    r#"
CREATE INDEX events_by_tenant ON events(tenant_id, seq);
"#,
    // Deleted tenants whose call data is still being removed (`upkeep::purge_deleted_tenant`):
    // their ids stay taken until it is gone, so a new tenant of the same id inherits nothing.
    r#"
CREATE TABLE tenant_purges (tenant_id TEXT PRIMARY KEY) WITHOUT ROWID;
"#,
];

/// Page cache of the writer, in KiB: it touches the hot indexes on every commit.
pub const WRITER_CACHE_KIB: i64 = 32_000;
/// Page cache of each reader, in KiB: up to eight readers, so memory stays bounded.
pub const READER_CACHE_KIB: i64 = 4_000;

/// The compile-time option `.cargo/config.toml` builds the embedded SQLite with: a savepoint's
/// journal stays in memory up to just under 128 KiB (the most SQLite's spill can write in one
/// call). With the default 64 KiB, a group of single-event ingests spilled it to a temporary file
/// and paid a pwrite() per page (13 % of all CPU).
pub const SAVEPOINT_JOURNAL_IN_MEMORY: &str = "STMTJRNL_SPILL=131064";

/// Whether this build's SQLite has [`SAVEPOINT_JOURNAL_IN_MEMORY`] (a build outside this
/// repository's cargo configuration would not: it works, more slowly).
pub fn savepoint_journal_in_memory(conn: &Connection) -> bool {
    conn.prepare("PRAGMA compile_options")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .is_ok_and(|opts| opts.iter().any(|o| o == SAVEPOINT_JOURNAL_IN_MEMORY))
}

pub fn configure(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    // WAL with synchronous=FULL: a commit is durable when it returns, and readers never block
    // the writer. NORMAL would lose acknowledged events on power loss.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    // temp_store stays FILE: a savepoint's journal for a large write (re-enabling an integration
    // with a million held deliveries) would otherwise be held in memory.
    Ok(())
}

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        // A newer release wrote this store: running on it could misread what it added.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the database schema is version {version}, newer than this build knows ({}); run a newer callhook or restore the backup taken before the upgrade",
                MIGRATIONS.len()
            )),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the option a group of small writes spills its savepoint journal to a file.
    #[test]
    fn the_savepoint_journal_of_a_group_of_small_writes_stays_in_memory() {
        let conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            savepoint_journal_in_memory(&conn),
            "SQLite was built without {SAVEPOINT_JOURNAL_IN_MEMORY} (.cargo/config.toml)"
        );
    }

    /// A job whose savepoint journal outgrows memory goes on in a temporary file and commits:
    /// with a 4 MiB in-memory journal the spill wrote nothing and the job failed as "disk full".
    #[test]
    fn a_savepoint_journal_larger_than_memory_spills_to_a_file_and_commits() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let conn = Connection::open(dir.path().join("spill.db")).unwrap_or_else(|e| panic!("{e}"));
        configure(&conn, 32 * 1024).unwrap_or_else(|e| panic!("{e}"));
        let run = |sql: &str| {
            conn.execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        };
        run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
        // 20 MB of rows, then one savepoint that rewrites every page of them.
        run(
            "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO t SELECT i, zeroblob(1000) FROM n; COMMIT",
        );
        run("BEGIN IMMEDIATE; SAVEPOINT job; UPDATE t SET v = zeroblob(1001); RELEASE job; COMMIT");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE length(v) = 1001", [], |r| {
                r.get(0)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 20_000);
    }
}
