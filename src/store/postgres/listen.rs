//! Change notices between nodes: LISTEN on a dedicated connection, reconnecting when it drops
//! (then asking for a full reload, since notices sent meanwhile are lost).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{PgError, PgResult};
use crate::store::{Change, StoreError};

const CHANNEL: &str = "callhook_changes";

/// `<instance> <kind> <id>`; the id is everything after the second space, so an id may
/// contain spaces.
pub fn encode(instance: &str, change: &Change) -> String {
    match change {
        Change::Integration(id) => format!("{instance} integration {id}"),
        Change::Tenant(id) => format!("{instance} tenant {id}"),
        Change::Resync => format!("{instance} resync -"),
    }
}

/// The change, unless it came from `own` (this node already applied it).
pub fn decode(own: &str, payload: &str) -> Option<Change> {
    let mut parts = payload.splitn(3, ' ');
    let (instance, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
    if instance == own {
        return None;
    }
    match kind {
        "integration" => Some(Change::Integration(id.to_string())),
        "tenant" => Some(Change::Tenant(id.to_string())),
        "resync" => Some(Change::Resync),
        _ => None,
    }
}

/// Connects and listens before returning (so no change made after the store opened is
/// missed), then keeps listening in the background for as long as the receiver lives.
pub async fn start(
    config: tokio_postgres::Config,
    instance: Arc<str>,
) -> PgResult<mpsc::UnboundedReceiver<Change>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let first = connect(&config).await?;
    tokio::spawn(async move {
        let mut session = Some(first);
        loop {
            if let Some(s) = session.take() {
                pump(s, &instance, &tx).await;
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            match connect(&config).await {
                Ok(s) => {
                    tracing::info!("change notices: listening again; reloading caches");
                    session = Some(s);
                    if tx.send(Change::Resync).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %StoreError::from(e), "change notices: cannot reconnect")
                }
            }
        }
    });
    Ok(rx)
}

struct Session {
    _client: tokio_postgres::Client,
    notices: mpsc::UnboundedReceiver<String>,
}

async fn connect(config: &tokio_postgres::Config) -> PgResult<Session> {
    let (client, mut conn) = config.connect(NoTls).await?;
    let (ntx, notices) = mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN below to complete, and for notices.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if ntx.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "change notices: connection lost");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(PgError::from)?;
    Ok(Session {
        _client: client,
        notices,
    })
}

/// Forwards notices until the connection drops or nobody listens any more (the node stopped:
/// the connection is closed with the session).
async fn pump(mut s: Session, own: &str, tx: &mpsc::UnboundedSender<Change>) {
    loop {
        let payload = tokio::select! {
            p = s.notices.recv() => p,
            _ = tx.closed() => return,
        };
        let Some(payload) = payload else { return };
        if let Some(change) = decode(own, &payload) {
            if tx.send(change).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_own_ones_are_skipped() {
        let c = Change::Integration("int 1 with spaces".into());
        let p = encode("me", &c);
        assert_eq!(decode("other", &p), Some(c));
        assert_eq!(decode("me", &p), None);
        assert_eq!(
            decode("x", &encode("me", &Change::Tenant("t".into()))),
            Some(Change::Tenant("t".into()))
        );
        assert_eq!(decode("x", "garbage"), None);
    }
}
