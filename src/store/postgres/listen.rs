//! Change notices between nodes: LISTEN on a dedicated connection, reconnecting when it drops
//! (then asking for a full reload, since notices sent meanwhile are lost).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{PgError, PgResult};
use crate::store::{Change, Notice, StoreError};

const CHANNEL: &str = "callhook_changes";

/// `<instance> <version> <kind> <id>`; the id is everything after the third space, so an id
/// may contain spaces.
pub fn encode(instance: &str, version: i64, change: &Change) -> String {
    match change {
        Change::Integration(id) => format!("{instance} {version} integration {id}"),
        Change::Tenant(id) => format!("{instance} {version} tenant {id}"),
        Change::Token(id) => format!("{instance} {version} token {id}"),
        Change::Resync => format!("{instance} {version} resync -"),
    }
}

/// The notice; a change from `own` (this node, which applied it itself) carries no change.
pub fn decode(own: &str, payload: &str) -> Option<Notice> {
    let mut parts = payload.splitn(4, ' ');
    let (instance, version, kind, id) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version: i64 = version.parse().ok()?;
    let change = match kind {
        "integration" => Change::Integration(id.to_string()),
        "tenant" => Change::Tenant(id.to_string()),
        "token" => Change::Token(id.to_string()),
        "resync" => Change::Resync,
        _ => return None,
    };
    Some(Notice {
        version,
        change: (instance != own).then_some(change),
    })
}

/// Connects and listens before returning (so no change made after the store opened is
/// missed), then keeps listening in the background for as long as the receiver lives.
pub async fn start(
    config: tokio_postgres::Config,
    instance: Arc<str>,
) -> PgResult<mpsc::UnboundedReceiver<Notice>> {
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
                    // Everything up to this version is reloaded; later changes arrive as notices.
                    let version = match current_version(&s.client).await {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(error = %StoreError::from(e), "change notices: cannot read the configuration version");
                            continue;
                        }
                    };
                    session = Some(s);
                    let resync = Notice {
                        version,
                        change: Some(Change::Resync),
                    };
                    if tx.send(resync).is_err() {
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

/// The configuration version committed now.
pub async fn current_version(c: &tokio_postgres::Client) -> PgResult<i64> {
    Ok(
        c.query_one("SELECT version FROM config_version WHERE id = 1", &[])
            .await?
            .get(0),
    )
}

struct Session {
    /// Kept open: the connection (and its LISTEN) lives as long as the client.
    client: tokio_postgres::Client,
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
    Ok(Session { client, notices })
}

/// Forwards notices until the connection drops or nobody listens any more (the node stopped:
/// the connection is closed with the session).
async fn pump(mut s: Session, own: &str, tx: &mpsc::UnboundedSender<Notice>) {
    loop {
        let payload = tokio::select! {
            p = s.notices.recv() => p,
            _ = tx.closed() => return,
        };
        let Some(payload) = payload else { return };
        if let Some(notice) = decode(own, &payload) {
            if tx.send(notice).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_own_ones_carry_only_their_version() {
        let c = Change::Integration("int 1 with spaces".into());
        let p = encode("me", 7, &c);
        assert_eq!(
            decode("other", &p),
            Some(Notice {
                version: 7,
                change: Some(c)
            })
        );
        assert_eq!(
            decode("me", &p),
            Some(Notice {
                version: 7,
                change: None
            })
        );
        assert_eq!(
            decode("x", &encode("me", 8, &Change::Tenant("t".into()))).and_then(|n| n.change),
            Some(Change::Tenant("t".into()))
        );
        assert_eq!(decode("x", "garbage"), None);
        assert_eq!(decode("x", "me notanumber tenant t"), None);
    }
}
