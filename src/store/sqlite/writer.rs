//! The single writer: one thread owns the write connection and commits in groups.
//!
//! SQLite allows one writer; the cost of a durable commit is one fsync. Callers hand the writer
//! closures; it runs every closure queued at that moment inside one transaction (each in its own
//! savepoint, so one failing closure does not undo the others), commits once, and only then
//! answers each caller. Under load, groups grow by themselves while the previous commit syncs.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::internal;
use crate::store::{StoreError, StoreResult};

type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// The most closures committed together; bounds the latency one group adds.
const MAX_GROUP: usize = 512;

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> StoreResult<Writer> {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name("callhook-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Internal(format!("writer thread: {e}")))?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the next group and returns its result once the group is committed.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let res = f(conn);
            let ok = res.is_ok();
            let reply: Reply = Box::new(move |commit_err| {
                let _ = tx.send(match commit_err {
                    Some(e) => Err(e.clone()),
                    None => res,
                });
            });
            (ok, reply)
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Internal("the store writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Internal("the store writer dropped a write".into()))?
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, &mut group);
    }
}

fn commit_group(conn: &Connection, group: &mut Vec<Job>) {
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        let err = internal(e);
        for job in group.drain(..) {
            // The closure still has to run to hand back its reply channel; nothing it wrote
            // survives because no transaction was open… so reply with the error instead.
            let (_, reply) = job_discarded(job, conn);
            reply(Some(&err));
        }
        return;
    }
    // Each reply with the error that undid its job, if one did: a job run in a discarded
    // savepoint must not be answered with what it returned, which nothing kept.
    let mut replies: Vec<(Option<StoreError>, Reply)> = Vec::with_capacity(group.len());
    for job in group.drain(..) {
        if let Err(e) = exec_cached(conn, "SAVEPOINT job") {
            let (_, reply) = job_discarded(job, conn);
            replies.push((Some(internal(e)), reply));
            continue;
        }
        let (ok, reply) = job(conn);
        if !ok {
            let _ = exec_cached(conn, "ROLLBACK TO job");
        }
        let _ = exec_cached(conn, "RELEASE job");
        replies.push((None, reply));
    }
    let commit_err = exec_cached(conn, "COMMIT").err().map(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = %e, "store commit failed");
        internal(e)
    });
    for (own, reply) in replies {
        reply(own.as_ref().or(commit_err.as_ref()));
    }
}

/// Runs a job whose writes must not count (outside a transaction, in a savepoint rolled back).
fn job_discarded(job: Job, conn: &Connection) -> (bool, Reply) {
    let _ = conn.execute_batch("SAVEPOINT discard");
    let out = job(conn);
    let _ = conn.execute_batch("ROLLBACK TO discard");
    let _ = conn.execute_batch("RELEASE discard");
    out
}

/// Transaction-control statements run for every job: prepared once, not parsed each time.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}
