//! Group commit for attempt outcomes. Every attempt ends in a `record`; one transaction each
//! would cost a commit (a WAL flush) per delivery. Outcomes queued while a group commits go
//! together in the next one, so under load one flush covers hundreds of attempts, and alone an
//! outcome waits for nothing.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use deadpool_postgres::Pool;

use super::{pipeline, PgResult, RETRIES};
use crate::store::{Lease, Outcome, StoreError, StoreResult};

/// What `in_tx!` needs: the pool.
struct Db {
    pool: Pool,
}

/// The most outcomes committed together.
const MAX_GROUP: usize = 512;
/// Groups committing at once: one collects while another waits for its flush.
const COMMITTERS: usize = 2;

type Reply = oneshot::Sender<StoreResult<Vec<pipeline::Claimed>>>;

pub struct Request {
    outcomes: Vec<Outcome>,
    lease: Lease,
    reply: Reply,
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Request>,
}

impl Recorder {
    pub fn start(pool: Pool) -> Recorder {
        let (tx, rx) = mpsc::channel::<Request>(4096);
        let rx = Arc::new(Mutex::new(rx));
        let db = Arc::new(Db { pool });
        for _ in 0..COMMITTERS {
            let (store, rx) = (db.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let group = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        let mut group = vec![first];
                        let mut n = group[0].outcomes.len();
                        while n < MAX_GROUP {
                            match rx.try_recv() {
                                Ok(r) => {
                                    n += r.outcomes.len();
                                    group.push(r);
                                }
                                Err(_) => break,
                            }
                        }
                        group
                    };
                    commit(&store, group).await;
                }
            });
        }
        Recorder { tx }
    }

    pub async fn record(
        &self,
        outcomes: Vec<Outcome>,
        lease: Lease,
    ) -> StoreResult<Vec<pipeline::Claimed>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                outcomes,
                lease,
                reply,
            })
            .await
            .map_err(|_| StoreError::Internal("the outcome recorder has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Internal("the outcome recorder dropped a write".into()))?
    }
}

async fn commit(store: &Db, group: Vec<Request>) {
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
        in_tx!(store, |tx| pipeline::record(&tx, &outcomes, &lease).await?);
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
