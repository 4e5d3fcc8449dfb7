//! Group commit on PostgreSQL ([`crate::store::group`]):
//!
//! - ingest: the group's requests go in with the same statements (one insert of all their
//!   events, one of all their deliveries), their advisory locks taken first and in order, so
//!   two groups cannot deadlock on them; if that fails for a reason other than a lost race,
//!   each request runs again in its own savepoint, so only a bad one fails;
//! - attempt outcomes: one `record` over all of them.

use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::oneshot;

use super::{events, ingest, lock_keys, queue, PgResult, RETRIES};
use crate::store::group::{merge_records, Group, RecordRequest};
use crate::store::{IngestBatch, Ingested, Lease, Outcome, StoreError, StoreResult};

/// What `in_tx!` needs.
pub struct Db {
    pub pool: Pool,
}

pub struct IngestRequest {
    batch: IngestBatch,
    reply: oneshot::Sender<StoreResult<Ingested>>,
}

/// The group committers of one store.
pub struct Committers {
    ingest: Group<IngestRequest>,
    record: Group<RecordRequest<events::Claimed>>,
}

impl Committers {
    pub fn start(pool: Pool) -> Committers {
        let db = Arc::new(Db { pool });
        Committers {
            ingest: Group::start(
                db.clone(),
                4,
                2_000,
                |r: &IngestRequest| r.batch.items.len().max(1),
                commit_ingest,
            ),
            record: Group::start(db, 2, 512, RecordRequest::weight, commit_record),
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
    ) -> StoreResult<Vec<events::Claimed>> {
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
) -> PgResult<PgResult<ingest::Stored>> {
    c.batch_execute("SAVEPOINT ingest_request").await?;
    match ingest::ingest(c, batch).await {
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
    let merged: StoreResult<Vec<ingest::Stored>> =
        in_tx!(db, |tx| ingest::ingest_many(&tx, &batches).await?);
    let result: StoreResult<Vec<PgResult<ingest::Stored>>> = match merged {
        Ok(outs) => Ok(outs.into_iter().map(Ok).collect()),
        Err(_) if group.len() > 1 => {
            let keys: Vec<i64> = group
                .iter()
                .flat_map(|r| ingest::ingest_lock_keys(&r.batch))
                .collect();
            in_tx!(db, |tx| {
                lock_keys(&tx, keys.clone()).await?;
                let mut outs = Vec::with_capacity(group.len());
                for r in &group {
                    outs.push(ingest_one(&tx, &r.batch).await?);
                }
                outs
            })
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(outs) => {
            for (r, out) in group.into_iter().zip(outs) {
                let answer = match out {
                    Ok(ingest::Stored::Done(out)) => Ok(Ingested::Stored(out)),
                    // Nothing stored: the request goes back to its node to be routed again.
                    Ok(ingest::Stored::Stale(version)) => Ok(Ingested::Reroute {
                        version,
                        batch: r.batch,
                    }),
                    Err(e) => Err(StoreError::from(e)),
                };
                let _ = r.reply.send(answer);
            }
        }
        Err(e) => {
            for r in group {
                let _ = r.reply.send(Err(e.clone()));
            }
        }
    }
}

async fn commit_record(db: Arc<Db>, group: Vec<RecordRequest<events::Claimed>>) {
    let (outcomes, lease, replies) = merge_records(group);
    let result: StoreResult<Vec<(usize, events::Claimed)>> =
        in_tx!(db, |tx| queue::record(&tx, &outcomes, &lease).await?);
    replies.send(result);
}
