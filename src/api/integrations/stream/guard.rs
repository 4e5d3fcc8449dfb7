//! What a live stream keeps an eye on besides its events, in a task of its own (a check
//! half-done is never dropped for a message that came in between): the integration, still a
//! stream, and who the stream was opened for, looked at again at once when access is withdrawn
//! on this node (a token deleted, a session ended, a tenant deleted) and at every ping
//! otherwise (a withdrawal on another node).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use crate::api::AppState;
use crate::auth::Principal;
use crate::cache::Integration;

/// WebSocket close codes (RFC 6455 leaves 4000–4999 to applications).
pub mod close {
    /// Did not take what was sent within `CALLHOOK_STREAM_SEND_TIMEOUT_MS`: reconnect with
    /// the cursor that ends the reason.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The integration was deleted, or is no longer a stream.
    pub const GONE: u16 = 4004;
    /// The token or console session the stream was opened with no longer stands (revoked,
    /// ended, expired, or its tenant deleted).
    pub const REVOKED: u16 = 4003;
    /// The client sent a message: a stream takes none.
    pub const POLICY: u16 = 1008;
    /// The node is stopping: reconnect (to another node) with the last cursor.
    pub const GOING_AWAY: u16 = 1001;
    /// The event log could not be read.
    pub const ERROR: u16 = 1011;
}

/// How often a WebSocket is pinged (a client that has not answered two pings is gone), and how
/// often the integration and the credential are looked at again without being told to.
pub const PING: Duration = Duration::from_secs(20);

pub const GONE: &str = "the integration was deleted or is no longer a stream";
const REVOKED: &str =
    "the token or session this stream was opened with no longer stands, or no longer sees it";

/// The integration, while it exists and is a stream.
pub fn current(s: &AppState, iid: &str) -> Option<Arc<Integration>> {
    s.cache
        .get(iid)
        .filter(|i| i.valid.spec.destination.is_stream())
}

/// Who opened a stream.
#[derive(Clone)]
pub enum Credential {
    /// An API token (Bearer, or Basic with the token as password).
    Token(String),
    /// A console session: its id, whether a portal link opened it, the token it was signed in
    /// with (none for a portal session), and when its cookie expires.
    Session {
        sid: String,
        portal: bool,
        token: Option<String>,
        expires_at: i64,
    },
}

impl Credential {
    /// Who it stands for now: `Some(None)` once it no longer stands; `None` when the store
    /// cannot tell now (asked again later: a store that does not answer ends no stream).
    async fn principal(&self, s: &AppState) -> Option<Option<Principal>> {
        let now = s.now_ms();
        match self {
            Credential::Token(token) => token_principal(s, token).await,
            Credential::Session { expires_at, .. } if *expires_at <= now => Some(None),
            Credential::Session {
                sid, portal: true, ..
            } => match s.store.portal_session(sid).await {
                Ok(grant) => Some(grant.filter(|g| g.active(now)).map(Principal::of_portal)),
                Err(_) => None,
            },
            Credential::Session { sid, token, .. } => match s.store.session_ended(sid).await {
                Ok(true) => Some(None),
                Ok(false) => token_principal(s, token.as_deref().unwrap_or_default()).await,
                Err(_) => None,
            },
        }
    }

    /// Whether it still reaches integration `iid` of `tenant` (a partner's admin no longer
    /// does once the tenant moves to another partner); `None`: cannot tell now.
    pub async fn stands(&self, s: &AppState, tenant: &str, iid: &str) -> Option<bool> {
        let Some(p) = self.principal(s).await? else {
            return Some(false);
        };
        match s.tenant_partner(tenant).await {
            Ok(Some(partner)) => {
                Some(p.sees_tenant_of(tenant, partner.as_deref()) && p.sees_integration(iid))
            }
            Ok(None) => Some(false),
            Err(_) => None,
        }
    }
}

async fn token_principal(s: &AppState, token: &str) -> Option<Option<Principal>> {
    match s.principal(token).await {
        Ok(p) => Some(Some(p)),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Some(None),
        Err(_) => None,
    }
}

/// What the guard tells the stream.
pub enum Wake {
    /// All stands; a WebSocket pings its client now.
    Ping,
    /// The stream ends: its close code and reason.
    End(u16, &'static str),
}

/// What a stream is watched for: its tenant and integration, who opened it, and the node's
/// withdrawals of access since it was opened.
pub struct Watched {
    pub tenant: String,
    pub iid: String,
    pub credential: Credential,
    pub withdrawals: tokio::sync::watch::Receiver<u64>,
}

/// How long one look at the credential may take; a store that does not answer in time ends
/// nothing (and the pings go on).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts watching a stream; the watch ends with the handle. The first look is at once: access
/// withdrawn between the request's authentication and now is not missed.
pub fn watch(s: AppState, w: Watched) -> (mpsc::Receiver<Wake>, AbortOnDropHandle<()>) {
    let (tx, rx) = mpsc::channel(1);
    let Watched {
        tenant,
        iid,
        credential,
        mut withdrawals,
    } = w;
    withdrawals.mark_changed();
    let task = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING);
        ping.tick().await;
        loop {
            let withdrawn = async {
                // The sender lives as long as the node: should it not, the pings go on.
                if withdrawals.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let due = tokio::select! {
                _ = ping.tick() => true,
                _ = withdrawn => false,
            };
            let end = if current(&s, &iid).is_none() {
                Some(Wake::End(close::GONE, GONE))
            } else if let Ok(Some(false)) =
                tokio::time::timeout(CHECK_TIMEOUT, credential.stands(&s, &tenant, &iid)).await
            {
                Some(Wake::End(close::REVOKED, REVOKED))
            } else {
                None
            };
            match end {
                Some(end) => {
                    let _ = tx.send(end).await;
                    return;
                }
                // A ping still waiting to be taken is enough.
                None if due => {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Wake::Ping) {
                        return;
                    }
                }
                None => {}
            }
        }
    });
    (rx, AbortOnDropHandle::new(task))
}
