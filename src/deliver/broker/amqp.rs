//! AMQP 0-9-1 (RabbitMQ): published to the exchange with the routing key, `mandatory` and with
//! publisher confirms. Delivered means the broker confirmed the message *and* a queue took it: a
//! message no queue is bound for comes back (`basic.return`) and is a failed attempt, retried,
//! not a success that went nowhere. A channel has one publish in flight at a time: the
//! client cannot tell which publish a returned message belongs to when several are waiting.

use std::time::Duration;

use base64::Engine as _;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use rustls::pki_types::CertificateDer;

use super::{fail, Failure};
use crate::deliver::attempt::OutgoingRequest;
use crate::deliver::client::HttpClient;
use crate::model::integration::{Destination, ValidSpec};
use crate::model::settings::amqp_vhost;
use crate::record::ErrorClass;

/// The largest frame (bodies span several). The client keeps two rings of 32 frames per
/// connection, so this sets its memory: 16 KiB frames are 1 MiB a connection.
const FRAME_MAX: u32 = 16 * 1024;

/// A connection with the one channel its deliveries are published on, in confirm mode. The
/// connection runs its own I/O thread (lapin's design) until it is dropped.
pub(in crate::deliver) struct Link {
    conn: Connection,
    channel: lapin::Channel,
    /// Held from a publish until its confirmation (see the module's note).
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Link {
    pub(super) fn alive(&self) -> bool {
        self.conn.status().connected() && self.channel.status().connected()
    }
}

/// The broker's address, virtual host and credentials. Built field by field, so that a password
/// holding `@` or `/` is never read as part of an address.
fn uri(spec: &ValidSpec, secret: Option<&str>, timeout: Duration) -> Result<AMQPUri, Failure> {
    let Destination::Amqp { user, .. } = &spec.spec.destination else {
        return Err(fail(ErrorClass::Request, "not an AMQP destination"));
    };
    let url = &spec.url;
    let tls = url.scheme() == "amqps";
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(fail(ErrorClass::Request, "the broker URL has no host")),
    };
    Ok(AMQPUri {
        scheme: if tls {
            AMQPScheme::AMQPS
        } else {
            AMQPScheme::AMQP
        },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: user.clone(),
                password: secret.unwrap_or_default().to_string(),
            },
            host,
            port: url.port().unwrap_or(if tls { 5671 } else { 5672 }),
        },
        vhost: amqp_vhost(url).map_err(|m| fail(ErrorClass::Request, m))?,
        query: AMQPQueryString {
            frame_max: Some(FRAME_MAX),
            channel_max: Some(2),
            connection_timeout: Some(timeout.as_millis().try_into().unwrap_or(u64::MAX)),
            ..Default::default()
        },
    })
}

/// The node's extra trusted CAs, as the PEM the AMQP client's TLS takes (beside Mozilla's roots).
fn pem(roots: &[CertificateDer<'static>]) -> Option<String> {
    if roots.is_empty() {
        return None;
    }
    let mut out = String::new();
    for cert in roots {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    Some(out)
}

fn classify(e: &lapin::Error, doing: &str) -> Failure {
    use lapin::ErrorKind as K;
    let class = match e.kind() {
        K::ProtocolError(_) | K::AuthProviderError(_) => ErrorClass::Broker,
        K::IOError(io) => {
            let text = io.to_string().to_ascii_lowercase();
            if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
                ErrorClass::Tls
            } else if io.kind() == std::io::ErrorKind::TimedOut {
                ErrorClass::Timeout
            } else {
                ErrorClass::Connect
            }
        }
        K::MissingHeartbeatError => ErrorClass::Timeout,
        _ => ErrorClass::Connect,
    };
    fail(class, format!("{doing}: {e}"))
}

async fn within<T>(
    timeout: Duration,
    doing: &str,
    f: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, f).await {
        Err(_) => Err(fail(
            ErrorClass::Timeout,
            format!("{doing} took more than {timeout:?}"),
        )),
        Ok(Err(e)) => Err(classify(&e, doing)),
        Ok(Ok(v)) => Ok(v),
    }
}

/// Connects, opens the channel and puts it in confirm mode, each step within `timeout`.
pub(super) async fn connect(
    client: &HttpClient,
    spec: &ValidSpec,
    secret: Option<&str>,
    timeout: Duration,
) -> Result<Link, Failure> {
    let uri = uri(spec, secret, timeout)?;
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: pem(client.extra_roots()),
    };
    let runtime = lapin::runtime::default_runtime()
        .map_err(|e| fail(ErrorClass::Connect, format!("no runtime for AMQP: {e}")))?;
    let props = ConnectionProperties::default().with_connection_name("callhook".into());
    // The client connects (TCP and TLS) on its own I/O thread, where dropping this future does
    // not reach: the timeout goes inside, so a server that never answers frees the thread.
    let tcp = async move |uri: AMQPUri, rt| {
        let handshake =
            lapin::tcp::AMQPUriTcpExt::connect_with_config_async(&uri, tls.as_ref(), &rt);
        match tokio::time::timeout(timeout, handshake).await {
            Ok(stream) => stream.map_err(lapin::Error::from),
            Err(_) => Err(lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no TCP and TLS connection within the timeout",
            ))),
        }
    };
    let conn = within(
        timeout,
        "connecting to the AMQP broker",
        Connection::connector(uri, runtime, tcp, props),
    )
    .await?;
    let channel = within(timeout, "opening a channel", conn.create_channel()).await?;
    within(
        timeout,
        "turning on publisher confirms",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    Ok(Link {
        conn,
        channel,
        one_at_a_time: tokio::sync::Mutex::new(()),
    })
}

fn exchange_name(exchange: &str) -> &str {
    if exchange.is_empty() {
        "(default)"
    } else {
        exchange
    }
}

pub(super) async fn publish(
    link: &Link,
    exchange: &str,
    routing_key: &str,
    out: &OutgoingRequest,
    timeout: Duration,
) -> Result<String, Failure> {
    let mut headers = FieldTable::default();
    for (name, value) in &out.headers {
        // Refused at save; a name that is not a short string is never sent half-made.
        let name = lapin::types::ShortString::try_new(name.as_str()).map_err(|_| {
            fail(
                ErrorClass::Request,
                format!("header `{name}` is too long for AMQP"),
            )
        })?;
        headers.insert(name, AMQPValue::LongString(value.as_str().into()));
    }
    // Persistent, so a durable queue keeps it across a broker restart; the delivery id as the
    // message id, so a consumer can drop the second copy of a retried message.
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_app_id("callhook".into())
        .with_headers(headers);
    if let Some(ct) = out.content_type {
        props = props.with_content_type(ct.into());
    }
    if let Some((_, id)) = out.headers.iter().find(|(n, _)| n == "webhook-id") {
        props = props.with_message_id(id.as_str().into());
    }
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let doing = format!(
        "publishing to exchange `{}` with routing key `{routing_key}`",
        exchange_name(exchange)
    );
    let send = async {
        let _only = link.one_at_a_time.lock().await;
        link.channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                &out.body,
                props,
            )
            .await?
            .await
    };
    match within(timeout, &doing, send).await? {
        Confirmation::Ack(None) => Ok(format!(
            "exchange {} routing key {routing_key} confirmed",
            exchange_name(exchange)
        )),
        Confirmation::Ack(Some(returned)) => Err(fail(
            ErrorClass::Broker,
            format!(
                "no queue takes routing key `{routing_key}` from exchange `{}`: the broker returned the message ({} {})",
                exchange_name(exchange),
                returned.reply_code,
                returned.reply_text
            ),
        )),
        Confirmation::Nack(_) => Err(fail(
            ErrorClass::Broker,
            format!("{doing}: the broker refused the message (nack)"),
        )),
        Confirmation::NotRequested => Err(fail(
            ErrorClass::Broker,
            format!("{doing}: the channel is not in confirm mode"),
        )),
    }
}

/// The exchange exists (a passive declare); with the default exchange, the queue the routing key
/// names exists. Whether a queue is bound for the routing key only a publish can tell.
pub(super) async fn check(
    client: &HttpClient,
    spec: &ValidSpec,
    secret: Option<&str>,
    timeout: Duration,
) -> Result<(), Failure> {
    let Destination::Amqp {
        exchange,
        routing_key,
        ..
    } = &spec.spec.destination
    else {
        return Ok(());
    };
    let link = connect(client, spec, secret, timeout).await?;
    let vhost = amqp_vhost(&spec.url).map_err(|m| fail(ErrorClass::Request, m))?;
    let found = if exchange.is_empty() {
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        within(
            timeout,
            &format!("queue `{routing_key}` in virtual host `{vhost}`"),
            link.channel
                .queue_declare(routing_key.as_str().into(), options, FieldTable::default()),
        )
        .await
        .map(|_| ())
    } else {
        let options = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        within(
            timeout,
            &format!("exchange `{exchange}` in virtual host `{vhost}`"),
            link.channel.exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                options,
                FieldTable::default(),
            ),
        )
        .await
    };
    let _ = tokio::time::timeout(timeout, link.conn.close(200, "OK".into())).await;
    found
}
