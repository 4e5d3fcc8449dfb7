//! Broker destinations: a delivery published to NATS JetStream or to an AMQP (RabbitMQ)
//! exchange, and counted as delivered when the broker confirms it, instead of sent to a URL.
//! Everything before the send — routing, rendering, signatures, per-call order, retries, the
//! log — is the same as for HTTP; the request's headers travel as message headers, the body as
//! the message.
//!
//! One connection per integration, kept while its settings stay the same and dropped when it
//! disconnects (never reconnected in the background, never to a server it advertises). An
//! attempt gets at most the integration's timeout to have a connection and as long again for
//! the confirmation; one that fails is retried like any other.

mod amqp;
mod nats;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::attempt::OutgoingRequest;
use super::client::HttpClient;
use crate::model::integration::{Destination, ValidSpec};
use crate::model::settings::SettingError;
use crate::record::{AttemptResult, ErrorClass};

/// A connection to an integration's broker.
#[derive(Clone)]
enum Conn {
    Nats(async_nats::Client),
    Amqp(Arc<amqp::Link>),
}

impl Conn {
    /// Whether it can still be used. A NATS connection is dropped by its disconnect event; an
    /// AMQP one is asked (a channel the broker closed, say on a missing exchange, is dead).
    fn alive(&self) -> bool {
        match self {
            Conn::Nats(_) => true,
            Conn::Amqp(link) => link.alive(),
        }
    }
}

/// A kept connection: the settings' fingerprint it was made with, and a generation that tells
/// it from a newer one (so that the failure of an old one never drops its successor).
struct Kept {
    print: u64,
    generation: u64,
    conn: Conn,
}

/// The node's broker connections, by integration id; and one lock per integration, so that its
/// deliveries in flight wait for one connection instead of each making its own.
#[derive(Default, Clone)]
pub struct Brokers {
    kept: Arc<Mutex<HashMap<String, Kept>>>,
    connecting: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    generations: Arc<AtomicU64>,
}

type Failure = (ErrorClass, String);

fn fail(class: ErrorClass, message: impl Into<String>) -> Failure {
    (class, message.into())
}

impl Brokers {
    /// Publishes one attempt's message for integration `id` and waits for the broker's
    /// confirmation: at most the integration's timeout to get a connection (waiting for
    /// another delivery's attempt included), and as long again for the confirmation.
    pub async fn publish(
        &self,
        client: &HttpClient,
        id: &str,
        spec: &ValidSpec,
        secret: Option<&str>,
        out: &OutgoingRequest,
    ) -> AttemptResult {
        let timeout = Duration::from_millis(spec.spec.delivery.timeout_ms);
        let what = spec.spec.destination.as_str();
        let (generation, conn) =
            match tokio::time::timeout(timeout, self.connection(client, id, spec, secret, timeout))
                .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err((class, message))) => return AttemptResult::Error { class, message },
                Err(_) => {
                    return AttemptResult::Error {
                        class: ErrorClass::Timeout,
                        message: format!("no connection to the {what} broker within {timeout:?}"),
                    }
                }
            };
        let sent = match (&conn, &spec.spec.destination) {
            (
                Conn::Nats(c),
                Destination::Nats {
                    subject, stream, ..
                },
            ) => nats::publish(c.clone(), subject, stream, out, timeout).await,
            (
                Conn::Amqp(link),
                Destination::Amqp {
                    exchange,
                    routing_key,
                    ..
                },
            ) => amqp::publish(link, exchange, routing_key, out, timeout).await,
            _ => Err(fail(ErrorClass::Request, "not a broker destination")),
        };
        match sent {
            Ok(detail) => AttemptResult::Published { detail },
            Err((class, message)) => {
                if class != ErrorClass::Broker {
                    // The next attempt starts from a fresh connection.
                    self.drop_if(id, generation);
                }
                AttemptResult::Error { class, message }
            }
        }
    }

    /// The integration's connection and its generation: the one kept, or a new one (made by
    /// one delivery while the others wait for it).
    async fn connection(
        &self,
        client: &HttpClient,
        id: &str,
        spec: &ValidSpec,
        secret: Option<&str>,
        timeout: Duration,
    ) -> Result<(u64, Conn), Failure> {
        let print = fingerprint(spec, secret);
        let kept = |map: &HashMap<String, Kept>| {
            map.get(id)
                .filter(|k| k.print == print && k.conn.alive())
                .map(|k| (k.generation, k.conn.clone()))
        };
        if let Some(conn) = kept(&self.kept.lock()) {
            return Ok(conn);
        }
        let lock = self
            .connecting
            .lock()
            .entry(id.to_string())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if let Some(conn) = kept(&self.kept.lock()) {
            return Ok(conn);
        }
        allowed(client, spec)?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let conn = match &spec.spec.destination {
            Destination::Nats { .. } => {
                // A lost connection is not reconnected in the background: it is dropped, and
                // the next attempt makes a new one, through the checks.
                let brokers = self.clone();
                let owner = id.to_string();
                let on_event = move |event: async_nats::Event| {
                    let brokers = brokers.clone();
                    let owner = owner.clone();
                    async move {
                        if matches!(event, async_nats::Event::Disconnected) {
                            brokers.drop_if(&owner, generation);
                        }
                    }
                };
                Conn::Nats(nats::connect(client, spec, secret, timeout, Some(on_event)).await?)
            }
            Destination::Amqp { .. } => Conn::Amqp(Arc::new(
                amqp::connect(client, spec, secret, timeout).await?,
            )),
            Destination::Http | Destination::Stream => {
                return Err(fail(ErrorClass::Request, "not a broker destination"))
            }
        };
        self.kept.lock().insert(
            id.to_string(),
            Kept {
                print,
                generation,
                conn: conn.clone(),
            },
        );
        Ok((generation, conn))
    }

    /// Drops the integration's connection if it is still generation `generation`.
    fn drop_if(&self, id: &str, generation: u64) {
        let mut kept = self.kept.lock();
        if kept.get(id).is_some_and(|k| k.generation == generation) {
            kept.remove(id);
        }
    }

    /// Drops the connection of an integration that changed.
    pub fn forget(&self, id: &str) {
        self.kept.lock().remove(id);
    }

    /// Drops everything kept for an integration that was deleted.
    pub fn remove(&self, id: &str) {
        self.forget(id);
        self.connecting.lock().remove(id);
    }
}

fn fingerprint(spec: &ValidSpec, secret: Option<&str>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    spec.url.as_str().hash(&mut h);
    // The whole destination: its user, and for AMQP the exchange (checked on connect).
    serde_json::to_string(&spec.spec.destination)
        .unwrap_or_default()
        .hash(&mut h);
    secret.hash(&mut h);
    h.finish()
}

/// Checks the broker against the node's list of servers for its kind (`CALLHOOK_NATS_SERVERS`,
/// `CALLHOOK_AMQP_SERVERS`). The operator names the brokers the node may keep connections to; a
/// tenant cannot point it at anything else, so the address checks of HTTP receivers do not
/// apply to them.
fn allowed(client: &HttpClient, spec: &ValidSpec) -> Result<(), Failure> {
    match client.refuses_broker_server(&spec.spec.destination, &spec.url) {
        None => Ok(()),
        Some(message) => Err(fail(ErrorClass::RefusedDestination, message)),
    }
}

/// The check made when a broker integration is saved with verification on: the broker
/// answers and accepts the credentials, and what the destination names exists there (the
/// NATS stream that takes the subject; the AMQP exchange).
pub async fn check(
    client: &HttpClient,
    spec: &ValidSpec,
    secret: Option<&str>,
) -> Result<(), SettingError> {
    let unreachable = |(_, message): Failure| SettingError {
        code: "destination_unreachable",
        message: format!("{message} (set `verification` to none to save without checking)"),
    };
    let timeout = Duration::from_millis(spec.spec.delivery.timeout_ms);
    allowed(client, spec).map_err(unreachable)?;
    // Each step has the timeout; the whole check has it too.
    let checked = async {
        match &spec.spec.destination {
            Destination::Nats { .. } => nats::check(client, spec, secret, timeout).await,
            Destination::Amqp { .. } => amqp::check(client, spec, secret, timeout).await,
            Destination::Http | Destination::Stream => Ok(()),
        }
    };
    match tokio::time::timeout(timeout, checked).await {
        Ok(result) => result.map_err(unreachable),
        Err(_) => Err(unreachable(fail(
            ErrorClass::Timeout,
            format!("the broker did not answer every step of the check within {timeout:?}"),
        ))),
    }
}
