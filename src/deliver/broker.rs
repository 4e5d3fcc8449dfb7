//! Broker destinations: a delivery published to NATS JetStream (and counted as delivered when
//! the stream acknowledges it) instead of sent to a URL. Everything before the send — routing,
//! rendering, signatures, per-call order, retries, the log — is the same as for HTTP; the
//! request's headers travel as message headers, the body as the message.
//!
//! One connection per integration, kept while its settings stay the same and dropped when it
//! disconnects (never reconnected in the background, never to a server it advertises). An
//! attempt gets at most the integration's timeout to have a connection and as long again for
//! the acknowledgement; one that fails is retried like any other.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::attempt::OutgoingRequest;
use super::client::HttpClient;
use crate::model::integration::{Destination, ValidSpec};
use crate::model::settings::SettingError;
use crate::record::{AttemptResult, ErrorClass};

/// A kept connection: the settings' fingerprint it was made with, and a generation that tells
/// it from a newer one (so that the failure of an old one never drops its successor).
struct Kept {
    print: u64,
    generation: u64,
    client: async_nats::Client,
}

/// The node's broker connections, by integration id; and one lock per integration, so that its
/// deliveries in flight wait for one connection instead of each making its own.
#[derive(Default, Clone)]
pub struct Brokers {
    nats: Arc<Mutex<HashMap<String, Kept>>>,
    connecting: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    generations: Arc<std::sync::atomic::AtomicU64>,
}

type Failure = (ErrorClass, String);

fn fail(class: ErrorClass, message: impl Into<String>) -> Failure {
    (class, message.into())
}

impl Brokers {
    /// Publishes one attempt's message for integration `id` and waits for the broker's
    /// confirmation: at most the integration's timeout to get a connection (waiting for
    /// another delivery's attempt included), and as long again for the acknowledgement.
    pub async fn publish(
        &self,
        client: &HttpClient,
        id: &str,
        spec: &ValidSpec,
        secret: Option<&str>,
        out: &OutgoingRequest,
    ) -> AttemptResult {
        let timeout = Duration::from_millis(spec.spec.delivery.timeout_ms);
        let Destination::Nats {
            subject, stream, ..
        } = &spec.spec.destination
        else {
            return AttemptResult::Error {
                class: ErrorClass::Request,
                message: "not a broker destination".into(),
            };
        };
        let conn = match tokio::time::timeout(timeout, self.nats(client, id, spec, secret, timeout))
            .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err((class, message))) => return AttemptResult::Error { class, message },
            Err(_) => {
                return AttemptResult::Error {
                    class: ErrorClass::Timeout,
                    message: format!("no connection to the NATS server within {timeout:?}"),
                }
            }
        };
        match nats_publish(conn.1, subject, stream, out, timeout).await {
            Ok(detail) => AttemptResult::Published { detail },
            Err((class, message)) => {
                if class != ErrorClass::Broker {
                    // The next attempt starts from a fresh connection.
                    self.drop_if(id, conn.0);
                }
                AttemptResult::Error { class, message }
            }
        }
    }

    /// The integration's connection and its generation: the one kept, or a new one (made by
    /// one delivery while the others wait for it).
    async fn nats(
        &self,
        client: &HttpClient,
        id: &str,
        spec: &ValidSpec,
        secret: Option<&str>,
        timeout: Duration,
    ) -> Result<(u64, async_nats::Client), Failure> {
        let print = fingerprint(spec, secret);
        let kept = |map: &HashMap<String, Kept>| {
            map.get(id)
                .filter(|k| k.print == print)
                .map(|k| (k.generation, k.client.clone()))
        };
        if let Some(conn) = kept(&self.nats.lock()) {
            return Ok(conn);
        }
        let lock = self
            .connecting
            .lock()
            .entry(id.to_string())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if let Some(conn) = kept(&self.nats.lock()) {
            return Ok(conn);
        }
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A lost connection is not reconnected in the background: it is dropped, and the next
        // attempt makes a new one, through the checks.
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
        let conn = nats_connect(client, spec, secret, timeout, Some(on_event)).await?;
        self.nats.lock().insert(
            id.to_string(),
            Kept {
                print,
                generation,
                client: conn.clone(),
            },
        );
        Ok((generation, conn))
    }

    /// Drops the integration's connection if it is still generation `generation`.
    fn drop_if(&self, id: &str, generation: u64) {
        let mut kept = self.nats.lock();
        if kept.get(id).is_some_and(|k| k.generation == generation) {
            kept.remove(id);
        }
    }

    /// Drops the connection of an integration that changed.
    pub fn forget(&self, id: &str) {
        self.nats.lock().remove(id);
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
    spec.spec.destination.as_str().hash(&mut h);
    if let Destination::Nats { user, .. } = &spec.spec.destination {
        user.hash(&mut h);
    }
    secret.hash(&mut h);
    h.finish()
}

/// Checks the broker against the node's list of NATS servers (`CALLHOOK_NATS_SERVERS`). The
/// operator names the brokers the node may keep connections to; a tenant cannot point it at
/// anything else, so the address checks of HTTP receivers do not apply to them.
fn allowed(client: &HttpClient, spec: &ValidSpec) -> Result<(), Failure> {
    if client.allows_nats_server(&spec.url) {
        return Ok(());
    }
    Err(fail(
        ErrorClass::RefusedDestination,
        format!(
            "`{}` is not one of this node's NATS servers (the operator lists them in CALLHOOK_NATS_SERVERS)",
            spec.url.host_str().unwrap_or_default()
        ),
    ))
}

/// The event handler of a connection made only to check, which has none.
type NoEvents = fn(async_nats::Event) -> std::future::Ready<()>;

/// Connects within `timeout` in all: a server that never answers costs one attempt's timeout,
/// whatever its name resolves to.
async fn nats_connect<F, Fut>(
    client: &HttpClient,
    spec: &ValidSpec,
    secret: Option<&str>,
    timeout: Duration,
    on_event: Option<F>,
) -> Result<async_nats::Client, Failure>
where
    F: Fn(async_nats::Event) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    allowed(client, spec)?;
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        // Only the server named: never one the server itself advertises.
        .ignore_discovered_servers()
        // One immediate try after a disconnect, then the client stops.
        .max_reconnects(1)
        .name("callhook");
    if let Some(f) = on_event {
        options = options.event_callback(f);
    }
    let user = match &spec.spec.destination {
        Destination::Nats { user, .. } => user.clone(),
        _ => None,
    };
    match (user, secret) {
        (Some(user), secret) => {
            options = options.user_and_password(user, secret.unwrap_or_default().to_string())
        }
        (None, Some(token)) => options = options.token(token.to_string()),
        (None, None) => {}
    }
    if spec.url.scheme() == "tls" {
        let mut config = super::tls::client_config(client.extra_roots(), None)
            .map_err(|m| fail(ErrorClass::Tls, m))?;
        config.alpn_protocols.clear();
        options = options.require_tls(true).tls_client_config(config);
    }
    let address = format!(
        "{}://{}:{}",
        spec.url.scheme(),
        spec.url.host_str().unwrap_or_default(),
        spec.url.port().unwrap_or(4222)
    );
    match tokio::time::timeout(timeout, options.connect(address)).await {
        Err(_) => Err(fail(
            ErrorClass::Timeout,
            format!("connecting to the NATS server took more than {timeout:?}"),
        )),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => {
            use async_nats::ConnectErrorKind as K;
            let class = match e.kind() {
                K::TimedOut => ErrorClass::Timeout,
                K::Tls => ErrorClass::Tls,
                K::Dns => ErrorClass::Dns,
                K::Authentication | K::AuthorizationViolation => ErrorClass::Broker,
                _ => ErrorClass::Connect,
            };
            Err(fail(class, format!("connecting to the NATS server: {e}")))
        }
    }
}

async fn nats_publish(
    conn: async_nats::Client,
    subject: &str,
    stream: &str,
    out: &OutgoingRequest,
    timeout: Duration,
) -> Result<String, Failure> {
    let mut js = async_nats::jetstream::new(conn);
    js.set_timeout(timeout);
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in &out.headers {
        headers.insert(name.as_str(), value.as_str());
    }
    if let Some(ct) = out.content_type {
        headers.insert("content-type", ct);
    }
    // JetStream drops a second copy of a message id within the stream's duplicate window: a
    // retry whose first try was stored but not confirmed is stored once. Set last, so nothing
    // replaces it (`Nats-*` headers are refused in the integration's settings too).
    if let Some((_, id)) = out.headers.iter().find(|(n, _)| n == "webhook-id") {
        headers.insert("Nats-Msg-Id", id.as_str());
    }
    let send = async {
        js.publish_with_headers(subject.to_string(), headers, out.body.clone())
            .await?
            .await
    };
    let ack = match tokio::time::timeout(timeout, send).await {
        Err(_) => {
            return Err(fail(
                ErrorClass::Timeout,
                format!("no acknowledgement from stream `{stream}` within {timeout:?}"),
            ))
        }
        Ok(Err(e)) => {
            use async_nats::jetstream::context::PublishErrorKind as K;
            let class = match e.kind() {
                K::TimedOut => ErrorClass::Timeout,
                K::BrokenPipe => ErrorClass::Connect,
                _ => ErrorClass::Broker,
            };
            let message = match e.kind() {
                K::StreamNotFound => format!("no JetStream stream takes subject `{subject}`"),
                _ => format!("publishing to `{subject}`: {e}"),
            };
            return Err(fail(class, message));
        }
        Ok(Ok(ack)) => ack,
    };
    if ack.stream != stream {
        return Err(fail(
            ErrorClass::Broker,
            format!(
                "subject `{subject}` is taken by stream `{}`, not `{stream}`; the message is stored there",
                ack.stream
            ),
        ));
    }
    Ok(format!(
        "stream {} sequence {}{}",
        ack.stream,
        ack.sequence,
        if ack.duplicate { " (a duplicate)" } else { "" }
    ))
}

/// The check made when a broker integration is saved with verification on: the broker
/// answers, accepts the credentials, and the stream exists and takes the subject.
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
    match &spec.spec.destination {
        Destination::Nats {
            subject, stream, ..
        } => {
            let conn = nats_connect(client, spec, secret, timeout, None::<NoEvents>)
                .await
                .map_err(unreachable)?;
            let js = async_nats::jetstream::new(conn);
            let info = tokio::time::timeout(timeout, js.get_stream(stream.as_str()))
                .await
                .map_err(|_| unreachable(fail(ErrorClass::Timeout, "the stream lookup timed out")))?
                .map_err(|e| {
                    unreachable(fail(
                        ErrorClass::Broker,
                        format!("stream `{stream}` cannot be used: {e}"),
                    ))
                })?;
            let subjects = &info.cached_info().config.subjects;
            if !subjects.iter().any(|s| subject_matches(s, subject)) {
                return Err(unreachable(fail(
                    ErrorClass::Broker,
                    format!(
                        "stream `{stream}` does not take subject `{subject}` (it takes {})",
                        subjects.join(", ")
                    ),
                )));
            }
            Ok(())
        }
        Destination::Http => Ok(()),
    }
}

/// Whether a stream's subject filter (with `*` and `>` wildcards) takes `subject`.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut want = subject.split('.');
    for token in filter.split('.') {
        match (token, want.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (t, Some(s)) if t == s => {}
            _ => return false,
        }
    }
    want.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn stream_subject_filters_match_as_nats_does() {
        for (filter, subject, takes) in [
            ("calls.acme", "calls.acme", true),
            ("calls.*", "calls.acme", true),
            ("calls.*", "calls.acme.cdr", false),
            ("calls.>", "calls.acme.cdr", true),
            ("calls.>", "calls", false),
            ("calls.acme", "calls.globex", false),
            (">", "anything.at.all", true),
        ] {
            assert_eq!(
                subject_matches(filter, subject),
                takes,
                "{filter} {subject}"
            );
        }
    }
}
