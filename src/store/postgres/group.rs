//! Group commit. One transaction per request would cost a commit (a WAL flush) per ingest
//! request and per attempt outcome. Requests queued while a group commits go together in the
//! next one, so under load one flush covers many requests, and alone a request waits for
//! nothing.
//!
//! - ingest: the group's requests go in with the same statements (one insert of all their
//!   events, one of all their deliveries), their advisory locks taken first and in order, so
//!   two groups cannot deadlock on them; if that fails for a reason other than a lost race,
//!   each request runs again in its own savepoint, so only a bad one fails;
//! - attempt outcomes: one `record` over all of them.

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use super::{lock_keys, pipeline, PgResult, RETRIES};
use crate::store::{IngestBatch, IngestOutcome, Ingested, Lease, Outcome, StoreError, StoreResult};

/// What `in_tx!` needs (the pool), and the configuration version the node's caches reflect.
pub struct Db {
    pub pool: Pool,
    applied: watch::Receiver<i64>,
}

/// Requests queued for one kind of group commit.
pub struct Group<R> {
    tx: mpsc::Sender<R>,
}

impl<R: Send + 'static> Group<R> {
    /// `committers` groups may commit at once (one collects while another waits for its
    /// flush); a group holds requests up to `max_weight`.
    fn start<F, Fut>(
        db: Arc<Db>,
        committers: usize,
        max_weight: usize,
        weight: fn(&R) -> usize,
        commit: F,
    ) -> Group<R>
    where
        F: Fn(Arc<Db>, Vec<R>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (tx, rx) = mpsc::channel::<R>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..committers {
            let (db, rx, commit) = (db.clone(), rx.clone(), commit.clone());
            tokio::spawn(async move {
                loop {
                    let group = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        let mut n = weight(&first);
                        let mut group = vec![first];
                        while n < max_weight {
                            match rx.try_recv() {
                                Ok(r) => {
                                    n += weight(&r);
                                    group.push(r);
                                }
                                Err(_) => break,
                            }
                        }
                        group
                    };
                    commit(db.clone(), group).await;
                }
            });
        }
        Group { tx }
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> R,
    ) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Internal("the group committer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Internal("the group committer dropped a write".into()))?
    }
}

pub struct IngestRequest {
    batch: IngestBatch,
    reply: oneshot::Sender<StoreResult<Ingested>>,
}

pub struct RecordRequest {
    outcomes: Vec<Outcome>,
    lease: Lease,
    reply: oneshot::Sender<StoreResult<Vec<pipeline::Claimed>>>,
}

/// The group committers of one store.
pub struct Committers {
    ingest: Group<IngestRequest>,
    record: Group<RecordRequest>,
}

impl Committers {
    pub fn start(pool: Pool, applied: watch::Receiver<i64>) -> Committers {
        let db = Arc::new(Db { pool, applied });
        Committers {
            ingest: Group::start(
                db.clone(),
                4,
                2_000,
                |r: &IngestRequest| r.batch.items.len().max(1),
                commit_ingest,
            ),
            record: Group::start(
                db,
                2,
                512,
                |r: &RecordRequest| r.outcomes.len().max(1),
                commit_record,
            ),
        }
    }

    pub async fn ingest(&self, batch: IngestBatch) -> StoreResult<Ingested> {
        self.ingest
            .submit(|reply| IngestRequest { batch, reply })
            .await
    }

    pub async fn record(
        &self,
        outcomes: Vec<Outcome>,
        lease: Lease,
    ) -> StoreResult<Vec<pipeline::Claimed>> {
        self.record
            .submit(|reply| RecordRequest {
                outcomes,
                lease,
                reply,
            })
            .await
    }
}

/// Runs one request of an ingest group in its own savepoint.
async fn ingest_one<C: GenericClient>(
    c: &C,
    batch: &IngestBatch,
    applied: i64,
) -> PgResult<PgResult<IngestOutcome>> {
    c.batch_execute("SAVEPOINT ingest_request").await?;
    match pipeline::ingest(c, batch, applied).await {
        Ok(out) => {
            c.batch_execute("RELEASE SAVEPOINT ingest_request").await?;
            Ok(Ok(out))
        }
        // Lost a race: the whole group runs again.
        Err(e) if e.retryable() => Err(e),
        Err(e) => {
            c.batch_execute("ROLLBACK TO SAVEPOINT ingest_request")
                .await?;
            Ok(Err(e))
        }
    }
}

async fn commit_ingest(db: Arc<Db>, group: Vec<IngestRequest>) {
    // All requests with the same statements; should that fail for a reason of its own (not a
    // lost race), each request again in its own savepoint so only the bad one fails.
    let batches: Vec<&IngestBatch> = group.iter().map(|r| &r.batch).collect();
    let applied = *db.applied.borrow();
    let merged: StoreResult<Vec<IngestOutcome>> =
        in_tx!(db, |tx| pipeline::ingest_many(&tx, &batches, applied)
            .await?);
    let result: StoreResult<Vec<PgResult<IngestOutcome>>> = match merged {
        Ok(outs) => Ok(outs.into_iter().map(Ok).collect()),
        Err(StoreError::StaleConfig(version)) => {
            // Nothing stored: every request goes back to its node to be routed again.
            for r in group {
                let _ = r.reply.send(Ok(Ingested::Reroute {
                    version,
                    batch: r.batch,
                }));
            }
            return;
        }
        Err(_) if group.len() > 1 => {
            let keys: Vec<i64> = group
                .iter()
                .flat_map(|r| pipeline::ingest_lock_keys(&r.batch))
                .collect();
            in_tx!(db, |tx| {
                lock_keys(&tx, keys.clone()).await?;
                let mut outs = Vec::with_capacity(group.len());
                for r in &group {
                    outs.push(ingest_one(&tx, &r.batch, applied).await?);
                }
                outs
            })
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(outs) => {
            for (r, out) in group.into_iter().zip(outs) {
                let _ = r
                    .reply
                    .send(out.map(Ingested::Stored).map_err(StoreError::from));
            }
        }
        Err(e) => {
            for r in group {
                let _ = r.reply.send(Err(e.clone()));
            }
        }
    }
}

async fn commit_record(db: Arc<Db>, group: Vec<RecordRequest>) {
    // All outcomes are this node's: the latest lease serves them all.
    let lease = group
        .iter()
        .map(|r| r.lease.clone())
        .max_by_key(|l| l.until)
        .unwrap_or_else(|| Lease {
            owner: Arc::from(""),
            until: 0,
        });
    let mut outcomes = Vec::new();
    let mut owners = Vec::new();
    for (i, r) in group.iter().enumerate() {
        owners.extend(std::iter::repeat_n(i, r.outcomes.len()));
        outcomes.extend(r.outcomes.iter().cloned());
    }
    let result: StoreResult<Vec<(usize, pipeline::Claimed)>> =
        in_tx!(db, |tx| pipeline::record(&tx, &outcomes, &lease).await?);
    match result {
        Ok(promoted) => {
            let mut per_request: Vec<Vec<pipeline::Claimed>> = vec![Vec::new(); group.len()];
            for (i, head) in promoted {
                per_request[owners[i]].push(head);
            }
            for (r, heads) in group.into_iter().zip(per_request) {
                let _ = r.reply.send(Ok(heads));
            }
        }
        Err(e) => {
            for r in group {
                let _ = r.reply.send(Err(e.clone()));
            }
        }
    }
}
