//! The embedded SQLite store: WAL, one group-committing writer thread ([`writer`]) and a small
//! pool of read connections used from blocking tasks, so reads never wait behind commits.

mod access;
mod catalog;
mod events;
mod files;
mod journal;
mod portal;
mod progress;
mod queue;
mod resend;
mod schema;
mod stats;
mod tail;
mod tenancy;
mod upkeep;
mod windows;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::group::{merge_records, Group, RecordRequest};
use super::*;
use writer::Writer;

async fn commit_records(writer: Writer, group: Vec<RecordRequest<events::Claimed>>) {
    let (outcomes, lease, replies) = merge_records(group);
    let result = writer
        .write(move |c| queue::record(c, &outcomes, &lease))
        .await;
    replies.send(result);
}

pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    /// Attempt outcomes go to the writer together: one closure and one savepoint for all
    /// those queued meanwhile, not one each.
    records: Group<RecordRequest<events::Claimed>>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// A store error from SQLite's or the file system's: a full disk says so (the client is told
/// 507 and nothing was written), anything else is internal.
pub(crate) fn internal<E: std::fmt::Display + 'static>(e: E) -> StoreError {
    let any = &e as &dyn std::any::Any;
    let full = match (
        any.downcast_ref::<rusqlite::Error>(),
        any.downcast_ref::<std::io::Error>(),
    ) {
        (Some(rusqlite::Error::SqliteFailure(f, _)), _) => f.code == rusqlite::ErrorCode::DiskFull,
        (_, Some(io)) => io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    };
    if full {
        StoreError::Full(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

fn open_conn(path: &Path, cache_kib: i64) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(internal)?;
    schema::configure(&conn, cache_kib).map_err(internal)?;
    Ok(conn)
}

impl SqliteStore {
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let path = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| internal(format!("{}: {e}", dir.display())))?;
            }
            let mut conn = open_conn(&path, schema::WRITER_CACHE_KIB)?;
            if !schema::savepoint_journal_in_memory(&conn) {
                tracing::warn!(
                    "this build's SQLite spills savepoint journals to disk at 64 KiB (built without the repository's .cargo/config.toml): small writes cost a pwrite per page"
                );
            }
            schema::migrate(&mut conn).map_err(internal)?;
            // The database and its WAL hold call data: this user's only, whatever the umask.
            let name = path.file_name().map(|n| n.to_string_lossy().to_string());
            for suffix in ["", "-wal", "-shm"] {
                let file =
                    path.with_file_name(format!("{}{suffix}", name.as_deref().unwrap_or_default()));
                if file.exists() {
                    crate::security::private_file(&file)
                        .map_err(|e| internal(format!("{}: {e}", file.display())))?;
                }
            }
            Ok::<_, StoreError>((Writer::start(conn)?, path))
        })
        .await
        .map_err(internal)??;
        let (writer, path) = opened;
        Ok(SqliteStore {
            records: Group::start(
                writer.clone(),
                2,
                512,
                RecordRequest::weight,
                commit_records,
            ),
            writer,
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    async fn with_events(&self, heads: Vec<events::Claimed>) -> StoreResult<Vec<DispatchJob>> {
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |c| events::jobs_with_events(c, heads)).await
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.idle.lock().pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_conn(&readers.path, schema::READER_CACHE_KIB)?,
            };
            let out = f(&conn);
            let mut idle = readers.idle.lock();
            if idle.len() < 8 {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(internal)?
    }
}

pub(super) fn owned(s: &str) -> String {
    s.to_string()
}

/// One node owns an SQLite file: there are no other nodes to hear from.
impl Membership for SqliteStore {}

pub(super) fn conflict_on_unique(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(format!("{what} already exists"))
        }
        other => internal(other),
    }
}

/// Writes a consistent copy of the database at `db` to `target` while the server keeps running
/// (`VACUUM INTO`: one read transaction, so the copy is the database as of one moment, compacted).
/// Refuses to overwrite: `target` must not exist.
pub fn backup(db: &Path, target: &Path) -> StoreResult<()> {
    if target.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists; a backup never overwrites, name a new file",
            target.display()
        )));
    }
    if !db.exists() {
        return Err(StoreError::NotFound);
    }
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(internal)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(internal)?;
    let target_text = target.to_string_lossy().to_string();
    conn.execute("VACUUM INTO ?1", [target_text])
        .map_err(internal)?;
    // Call data: this user's only, whatever the umask.
    crate::security::private_file(target).map_err(internal)?;
    Ok(())
}
