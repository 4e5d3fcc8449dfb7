//! Broker destinations: a delivery published to NATS JetStream (and counted as delivered when
//! the stream acknowledges it) instead of sent to a URL. Everything before the send — routing,
//! rendering, signatures, per-call order, retries, the log — is the same as for HTTP; the
//! request's headers travel as message headers, the body as the message.
//!
//! One connection per integration, kept while its URL, user and secret stay the same; a
//! dropped connection reconnects on its own, and an attempt that cannot be confirmed within
//! the integration's timeout fails and is retried like any other.

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
use crate::security::ssrf::{resolve_allowed, ResolveError};

/// The node's broker connections, by integration id, with the fingerprint of the settings
/// they were made with.
#[derive(Default, Clone)]
pub struct Brokers {
    nats: Arc<Mutex<HashMap<String, (u64, async_nats::Client)>>>,
}

type Failure = (ErrorClass, String);

fn fail(class: ErrorClass, message: impl Into<String>) -> Failure {
    (class, message.into())
}

impl Brokers {
    /// Publishes one attempt's message for integration `id` and waits for the broker's
    /// confirmation.
    pub async fn publish(
        &self,
        client: &HttpClient,
        id: &str,
        spec: &ValidSpec,
        secret: Option<&str>,
        out: &OutgoingRequest,
    ) -> AttemptResult {
        let timeout = Duration::from_millis(spec.spec.delivery.timeout_ms);
        let result = match &spec.spec.destination {
            Destination::Nats {
                subject, stream, ..
            } => match self.nats(client, id, spec, secret, timeout).await {
                Ok(conn) => nats_publish(conn, subject, stream, out, timeout).await,
                Err(e) => Err(e),
            },
            Destination::Http => Err(fail(ErrorClass::Request, "not a broker destination")),
        };
        match result {
            Ok(detail) => AttemptResult::Published { detail },
            Err((class, message)) => {
                if class != ErrorClass::Broker {
                    // The next attempt starts from a fresh connection.
                    self.nats.lock().remove(id);
                }
                AttemptResult::Error { class, message }
            }
        }
    }

    /// The integration's connection: the one kept, or a new one.
    async fn nats(
        &self,
        client: &HttpClient,
        id: &str,
        spec: &ValidSpec,
        secret: Option<&str>,
        timeout: Duration,
    ) -> Result<async_nats::Client, Failure> {
        let print = fingerprint(spec, secret);
        if let Some((p, conn)) = self.nats.lock().get(id) {
            if *p == print {
                return Ok(conn.clone());
            }
        }
        let conn = nats_connect(client, spec, secret, timeout).await?;
        self.nats
            .lock()
            .insert(id.to_string(), (print, conn.clone()));
        Ok(conn)
    }

    /// Forgets the connection of an integration that was deleted.
    pub fn forget(&self, id: &str) {
        self.nats.lock().remove(id);
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

/// Checks the broker's address against the SSRF guard (names are resolved and every address
/// checked; the client resolves again when it connects, so the check is not pinned).
async fn guard(client: &HttpClient, spec: &ValidSpec) -> Result<(), Failure> {
    if let Some(url::Host::Domain(host)) = spec.url.host() {
        resolve_allowed(client.lookup(), host, client.policy)
            .await
            .map_err(|e| match e {
                ResolveError::Refused(m) => fail(ErrorClass::RefusedDestination, m),
                ResolveError::Dns(m) => fail(ErrorClass::Dns, m),
            })?;
    }
    Ok(())
}

async fn nats_connect(
    client: &HttpClient,
    spec: &ValidSpec,
    secret: Option<&str>,
    timeout: Duration,
) -> Result<async_nats::Client, Failure> {
    guard(client, spec).await?;
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .name("callhook");
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
    options.connect(address).await.map_err(|e| {
        use async_nats::ConnectErrorKind as K;
        let class = match e.kind() {
            K::TimedOut => ErrorClass::Timeout,
            K::Tls => ErrorClass::Tls,
            K::Dns => ErrorClass::Dns,
            K::Authentication | K::AuthorizationViolation => ErrorClass::Broker,
            _ => ErrorClass::Connect,
        };
        fail(class, format!("connecting to the NATS server: {e}"))
    })
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
        if name == "webhook-id" {
            // JetStream drops a second copy of a message id within the stream's duplicate
            // window: a retry whose first try was stored but not confirmed is stored once.
            headers.insert("Nats-Msg-Id", value.as_str());
        }
    }
    if let Some(ct) = out.content_type {
        headers.insert("content-type", ct);
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
            let conn = nats_connect(client, spec, secret, timeout)
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
