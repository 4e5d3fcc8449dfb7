//! Group commit of requests, for either backend. One write per request would cost a commit (a
//! WAL flush, and on SQLite a savepoint and a closure on the writer thread) per ingest request
//! and per attempt outcome. Requests queued while a group commits go together in the next one,
//! so under load one write covers many requests, and alone a request waits for nothing.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::{Lease, Outcome, StoreError, StoreResult};

/// Requests queued for one kind of group commit.
pub struct Group<R> {
    tx: mpsc::Sender<R>,
}

impl<R: Send + 'static> Group<R> {
    /// `committers` groups may commit at once (one collects while another waits for its
    /// flush); a group holds requests up to `max_weight`. `ctx` is what `commit` writes with.
    pub fn start<Ctx, F, Fut>(
        ctx: Ctx,
        committers: usize,
        max_weight: usize,
        weight: fn(&R) -> usize,
        commit: F,
    ) -> Group<R>
    where
        Ctx: Clone + Send + Sync + 'static,
        F: Fn(Ctx, Vec<R>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (tx, rx) = mpsc::channel::<R>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..committers {
            let (ctx, rx, commit) = (ctx.clone(), rx.clone(), commit.clone());
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
                    commit(ctx.clone(), group).await;
                }
            });
        }
        Group { tx }
    }

    pub async fn submit<T>(
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

/// Attempt outcomes to record; the reply carries the deliveries they released (ordered
/// hand-over), as the backend's claimed rows `C`.
pub struct RecordRequest<C> {
    pub outcomes: Vec<Outcome>,
    pub lease: Lease,
    pub reply: oneshot::Sender<StoreResult<Vec<C>>>,
}

impl<C> RecordRequest<C> {
    pub fn weight(&self) -> usize {
        self.outcomes.len().max(1)
    }
}

/// A group of record requests as one write: every outcome, the lease that serves them all
/// (they are all this node's: the latest), and where to send each request's answer.
pub fn merge_records<C>(group: Vec<RecordRequest<C>>) -> (Vec<Outcome>, Lease, RecordReplies<C>) {
    let mut outcomes = Vec::new();
    let mut lease = Lease {
        owner: Arc::from(""),
        until: i64::MIN,
    };
    let mut replies = RecordReplies {
        owners: Vec::new(),
        replies: Vec::with_capacity(group.len()),
    };
    for (i, r) in group.into_iter().enumerate() {
        if r.lease.until > lease.until {
            lease = r.lease;
        }
        replies
            .owners
            .extend(std::iter::repeat_n(i, r.outcomes.len()));
        outcomes.extend(r.outcomes);
        replies.replies.push(r.reply);
    }
    (outcomes, lease, replies)
}

/// The requests of a merged group: the request each outcome came from, and their replies.
pub struct RecordReplies<C> {
    owners: Vec<usize>,
    replies: Vec<oneshot::Sender<StoreResult<Vec<C>>>>,
}

impl<C> RecordReplies<C> {
    /// Answers each request: the deliveries its own outcomes released (`promoted` holds the
    /// index of the outcome that released each), or the group's error.
    pub fn send(self, result: StoreResult<Vec<(usize, C)>>) {
        match result {
            Ok(promoted) => {
                let mut per_request: Vec<Vec<C>> =
                    self.replies.iter().map(|_| Vec::new()).collect();
                for (i, head) in promoted {
                    if let Some(owner) = self.owners.get(i) {
                        per_request[*owner].push(head);
                    }
                }
                for (reply, heads) in self.replies.into_iter().zip(per_request) {
                    let _ = reply.send(Ok(heads));
                }
            }
            Err(e) => {
                for reply in self.replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::EventKind;
    use crate::store::{DeliveryHead, NextStep};

    fn outcome(id: &str) -> Outcome {
        Outcome {
            head: DeliveryHead {
                id: id.into(),
                integration_id: "int".into(),
                call_id: "call".into(),
                trigger: EventKind::CallCompleted,
                ordered: true,
                manual: false,
                attempts: 0,
                retries_used: 0,
                created_at: 0,
            },
            attempt: None,
            next: NextStep::Succeeded,
            now: 0,
        }
    }

    #[tokio::test]
    async fn each_request_gets_back_what_its_own_outcomes_released() {
        let (a_tx, a_rx) = oneshot::channel();
        let (b_tx, b_rx) = oneshot::channel();
        let lease = |until| Lease {
            owner: Arc::from("n"),
            until,
        };
        let (outcomes, lease, replies) = merge_records::<&str>(vec![
            RecordRequest {
                outcomes: vec![outcome("a1"), outcome("a2")],
                lease: lease(5),
                reply: a_tx,
            },
            RecordRequest {
                outcomes: vec![outcome("b1")],
                lease: lease(9),
                reply: b_tx,
            },
        ]);
        assert_eq!(outcomes.len(), 3);
        assert_eq!(lease.until, 9, "the latest lease serves the group");
        replies.send(Ok(vec![(2, "after b1"), (1, "after a2")]));
        assert_eq!(a_rx.await.ok().and_then(Result::ok), Some(vec!["after a2"]));
        assert_eq!(b_rx.await.ok().and_then(Result::ok), Some(vec!["after b1"]));
    }
}
