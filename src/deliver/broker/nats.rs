//! NATS JetStream: published to the subject, delivered when the named stream acknowledges it.

use std::time::Duration;

use super::{fail, Failure};
use crate::deliver::attempt::OutgoingRequest;
use crate::deliver::client::HttpClient;
use crate::model::integration::{Destination, ValidSpec};
use crate::record::ErrorClass;

/// The event handler of a connection made only to check, which has none.
type NoEvents = fn(async_nats::Event) -> std::future::Ready<()>;

/// Connects within `timeout` in all: a server that never answers costs one attempt's timeout,
/// whatever its name resolves to.
pub(super) async fn connect<F, Fut>(
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
        let mut config = crate::deliver::tls::client_config(client.extra_roots(), None)
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

pub(super) async fn publish(
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

/// The stream exists and its subject filter takes the subject.
pub(super) async fn check(
    client: &HttpClient,
    spec: &ValidSpec,
    secret: Option<&str>,
    timeout: Duration,
) -> Result<(), Failure> {
    let Destination::Nats {
        subject, stream, ..
    } = &spec.spec.destination
    else {
        return Ok(());
    };
    let conn = connect(client, spec, secret, timeout, None::<NoEvents>).await?;
    let js = async_nats::jetstream::new(conn);
    let info = tokio::time::timeout(timeout, js.get_stream(stream.as_str()))
        .await
        .map_err(|_| fail(ErrorClass::Timeout, "the stream lookup timed out"))?
        .map_err(|e| {
            fail(
                ErrorClass::Broker,
                format!("stream `{stream}` cannot be used: {e}"),
            )
        })?;
    let subjects = &info.cached_info().config.subjects;
    if !subjects.iter().any(|s| subject_matches(s, subject)) {
        return Err(fail(
            ErrorClass::Broker,
            format!(
                "stream `{stream}` does not take subject `{subject}` (it takes {})",
                subjects.join(", ")
            ),
        ));
    }
    Ok(())
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
