//! The shared outbound HTTP client.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::redirect::Policy;

use rustls::pki_types::CertificateDer;

use super::tls::{self as tls, Handshake};
pub use super::tls::{check_identity, ClientIdentity};
use crate::model::integration::Egress;
use crate::record::{parse_retry_after, AttemptResult, ErrorClass};
use crate::security::ssrf::{
    check_url_host, resolve_allowed, DestinationPolicy, GuardedResolver, Lookup, ResolveError,
};

/// How much of a response body is kept in the delivery log.
pub const EXCERPT_BYTES: usize = 1024;

#[derive(Clone)]
pub struct HttpClient {
    /// From the node's own addresses.
    pub inner: reqwest::Client,
    /// Through the egress proxy, for integrations with `delivery.egress: fixed`.
    fixed: Option<reqwest::Client>,
    /// For integrations that name no egress.
    default_egress: Egress,
    pub policy: DestinationPolicy,
    /// Through an egress proxy the proxy resolves the target, so the guard resolves and checks
    /// it here before each send (checked, though not pinned: the proxy resolves again).
    lookup: Lookup,
    /// What a client presenting a certificate is built from.
    extra_roots: Arc<Vec<CertificateDer<'static>>>,
    egress_proxy: Option<String>,
    /// One client per integration that presents a certificate (a client's identity is fixed
    /// when it is built), keyed by integration id, rebuilt when its certificate, key or egress
    /// change. At most one per such integration.
    with_identity: Arc<parking_lot::Mutex<HashMap<String, (u64, reqwest::Client)>>>,
    /// The brokers `nats` and `amqp` destinations may use (`host` or `host:port`), as the
    /// operator listed them.
    nats_servers: Arc<Vec<String>>,
    amqp_servers: Arc<Vec<String>>,
}

impl HttpClient {
    /// Certificates trusted besides the built-in roots.
    pub(crate) fn extra_roots(&self) -> &[CertificateDer<'static>] {
        &self.extra_roots
    }

    pub fn new(
        policy: DestinationPolicy,
        lookup: Lookup,
        egress_proxy: Option<&str>,
        default_egress: Egress,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, String> {
        let inner = Self::builder(policy, &lookup, extra_roots, None)?
            .no_proxy()
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let fixed = match egress_proxy {
            Some(p) => Some(
                Self::builder(policy, &lookup, extra_roots, None)?
                    .proxy(
                        reqwest::Proxy::all(p)
                            .map_err(|e| format!("CALLHOOK_EGRESS_PROXY: {e}"))?,
                    )
                    .build()
                    .map_err(|e| format!("http client: {e}"))?,
            ),
            None => None,
        };
        Ok(HttpClient {
            inner,
            fixed,
            default_egress,
            policy,
            lookup,
            extra_roots: Arc::new(extra_roots.to_vec()),
            egress_proxy: egress_proxy.map(str::to_string),
            with_identity: Arc::default(),
            nats_servers: Arc::default(),
            amqp_servers: Arc::default(),
        })
    }

    /// The brokers `nats` and `amqp` destinations may use: `host` (any port) or `host:port`.
    pub fn with_broker_servers(mut self, nats: &[String], amqp: &[String]) -> Self {
        let list = |servers: &[String]| {
            Arc::new(
                servers
                    .iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect(),
            )
        };
        self.nats_servers = list(nats);
        self.amqp_servers = list(amqp);
        self
    }

    /// Why `url` may not be used as `destination`'s broker: `None` when the operator lists it
    /// among the node's servers of its kind.
    pub fn refuses_broker_server(
        &self,
        destination: &crate::model::integration::Destination,
        url: &url::Url,
    ) -> Option<String> {
        use crate::model::integration::Destination;
        let (servers, port, what, variable) = match destination {
            Destination::Http | Destination::Stream => return None,
            Destination::Nats { .. } => (&self.nats_servers, 4222, "NATS", "CALLHOOK_NATS_SERVERS"),
            Destination::Amqp { .. } => (
                &self.amqp_servers,
                if url.scheme() == "amqps" { 5671 } else { 5672 },
                "AMQP",
                "CALLHOOK_AMQP_SERVERS",
            ),
        };
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let with_port = format!("{host}:{}", url.port().unwrap_or(port));
        if servers.iter().any(|s| *s == host || *s == with_port) {
            return None;
        }
        Some(format!(
            "`{host}` is not one of this node's {what} servers; the operator lists the servers integrations may publish to in {variable}"
        ))
    }

    /// The client for an integration: its egress (unset: the node's default) and, when it
    /// presents one, its certificate. `None` for `fixed` on a node without a proxy, or a
    /// certificate that no longer loads (both refused at save).
    pub fn client_for(
        &self,
        egress: Option<Egress>,
        identity: Option<ClientIdentity>,
    ) -> Option<reqwest::Client> {
        let Some(id) = identity else {
            return self.via(egress).cloned();
        };
        let egress = egress.unwrap_or(self.default_egress);
        let proxy = match egress {
            Egress::Direct => None,
            Egress::Fixed => Some(self.egress_proxy.as_deref()?),
        };
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (id.certificate, id.key, proxy).hash(&mut h);
            h.finish()
        };
        let mut clients = self.with_identity.lock();
        if let Some((f, c)) = clients.get(id.integration_id) {
            if *f == fingerprint {
                return Some(c.clone());
            }
        }
        let mut b = Self::builder(self.policy, &self.lookup, &self.extra_roots, Some(&id)).ok()?;
        b = match proxy {
            Some(p) => b.proxy(reqwest::Proxy::all(p).ok()?),
            None => b.no_proxy(),
        };
        let client = b.build().ok()?;
        clients.insert(id.integration_id.to_string(), (fingerprint, client.clone()));
        Some(client)
    }

    /// Forgets the client of an integration that is gone or changed.
    pub fn forget(&self, integration_id: &str) {
        self.with_identity.lock().remove(integration_id);
    }

    /// Whether this node can send from fixed addresses (an egress proxy is configured).
    pub fn has_fixed_egress(&self) -> bool {
        self.fixed.is_some()
    }

    /// The client for an integration's egress (unset: the node's default); `None` for `fixed`
    /// on a node without a proxy.
    pub fn via(&self, egress: Option<Egress>) -> Option<&reqwest::Client> {
        match egress.unwrap_or(self.default_egress) {
            Egress::Direct => Some(&self.inner),
            Egress::Fixed => self.fixed.as_ref(),
        }
    }

    fn builder(
        policy: DestinationPolicy,
        lookup: &Lookup,
        extra_roots: &[CertificateDer<'static>],
        identity: Option<&ClientIdentity>,
    ) -> Result<reqwest::ClientBuilder, String> {
        let tls = tls::client_config(extra_roots, identity)?;
        Ok(reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .dns_resolver(Arc::new(GuardedResolver {
                lookup: lookup.clone(),
                policy,
            }))
            .redirect(Policy::none())
            .user_agent(crate::USER_AGENT)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .connect_timeout(Duration::from_secs(10)))
    }

    /// Through the proxy the proxy resolves the target, past the pinned resolver: every address
    /// the host has now must be allowed. Direct sends are checked by the resolver itself.
    pub async fn check_proxied(
        &self,
        url: &url::Url,
        egress: Option<Egress>,
    ) -> Result<(), ResolveError> {
        match (egress.unwrap_or(self.default_egress), url.host()) {
            (Egress::Fixed, Some(url::Host::Domain(host))) => {
                resolve_allowed(&self.lookup, host, self.policy)
                    .await
                    .map(drop)
            }
            _ => Ok(()),
        }
    }

    /// The attempt's result when an integration asks for an egress this node does not have
    /// (a node started without the proxy its integrations were saved with): retried like any
    /// failure, so nothing is lost while the configuration is put right.
    pub fn no_fixed_egress() -> AttemptResult {
        AttemptResult::Error {
            class: ErrorClass::Connect,
            message: "the integration sends from fixed addresses (`delivery.egress: fixed`) but this node has no egress proxy; set CALLHOOK_EGRESS_PROXY".into(),
        }
    }

    /// Sends a request built with [`Self::via`]`(egress)` and classifies the outcome; never
    /// returns an error.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &url::Url,
        egress: Option<Egress>,
    ) -> AttemptResult {
        // IP-literal URLs do not pass through the resolver: check them here, on every send.
        if let Err(e) = check_url_host(url, self.policy) {
            return AttemptResult::Error {
                class: ErrorClass::RefusedDestination,
                message: e.0,
            };
        }
        if let Err(e) = self.check_proxied(url, egress).await {
            let class = match e {
                ResolveError::Refused(_) => ErrorClass::RefusedDestination,
                ResolveError::Dns(_) => ErrorClass::Dns,
            };
            return AttemptResult::Error {
                class,
                message: e.to_string(),
            };
        }
        match exchange(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    // An HTTP date is the receiver's wall time: compared with the wall clock,
                    // it becomes a wait, which the attempt adds to the node's clock.
                    .and_then(|v| parse_retry_after(v, crate::time::now_ms()));
                let excerpt = read_excerpt(resp).await;
                AttemptResult::Response {
                    status,
                    retry_after,
                    excerpt,
                }
            }
            Err((class, message)) => AttemptResult::Error { class, message },
        }
    }
}

/// Reads at most [`EXCERPT_BYTES`] of the body (more is dropped with the connection).
pub async fn read_excerpt(mut resp: reqwest::Response) -> String {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < EXCERPT_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                buf.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - buf.len())])
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends `req`, and when it fails, says how (class and message): a timeout with the TLS
/// handshake unanswered is the receiver's TLS, not its slowness.
pub(crate) async fn exchange(
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, (ErrorClass, String)> {
    match tls::watch(req.send()).await {
        (Ok(resp), _) => Ok(resp),
        (Err(e), Handshake::Unanswered) if e.is_timeout() => {
            Err((ErrorClass::Tls, tls::STALLED.to_string()))
        }
        (Err(e), _) => Err((error_class(&e), error_message(&e))),
    }
}

fn error_class(e: &reqwest::Error) -> ErrorClass {
    if e.is_timeout() {
        return ErrorClass::Timeout;
    }
    if tls::problem(e).is_some() {
        return ErrorClass::Tls;
    }
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(r) = s.downcast_ref::<ResolveError>() {
            return match r {
                ResolveError::Refused(_) => ErrorClass::RefusedDestination,
                ResolveError::Dns(_) => ErrorClass::Dns,
            };
        }
        src = s.source();
    }
    if e.is_connect() {
        ErrorClass::Connect
    } else {
        ErrorClass::Request
    }
}

/// The error with its causes, e.g. "error sending request: connection refused".
fn error_message(e: &reqwest::Error) -> String {
    if let Some(tls) = tls::problem(e) {
        return tls;
    }
    let mut parts = vec![e.without_url_ref().to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if parts.last() != Some(&t) {
            parts.push(t);
        }
        src = s.source();
    }
    let mut msg = parts.join(": ");
    msg.truncate(500);
    msg
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        // URLs can carry tokens in their query; the log keeps the kind of error, not the URL.
        let s = self.to_string();
        match s.find(" for url (") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// A resolver that answers every name with loopback: what a rebinding attacker's DNS does
    /// after the save-time check passed.
    fn rebinding() -> Lookup {
        Arc::new(|_host| Box::pin(async { Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]) }))
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_at_send_time_is_refused_before_connecting() {
        // Something is listening, so only the guard can stop the request.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok();
        let port = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(9, |a| a.port());
        let policy = DestinationPolicy {
            allow_insecure_http: true,
            allow_private: false,
        };
        let client = match HttpClient::new(policy, rebinding(), None, Egress::Direct, &[]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let url = url::Url::parse(&format!("http://crm.example.com:{port}/hook")).ok();
        let Some(url) = url else { panic!("url") };
        let result = client
            .send(client.inner.post(url.clone()), &url, None)
            .await;
        match result {
            AttemptResult::Error { class, message } => {
                assert_eq!(class, ErrorClass::RefusedDestination, "{message}");
                assert!(message.contains("127.0.0.1"), "{message}");
            }
            other => panic!("the request went through: {other:?}"),
        }
        // An IP literal never reaches a resolver and is checked on the send path itself.
        let literal = url::Url::parse(&format!("http://127.0.0.1:{port}/hook")).ok();
        let Some(literal) = literal else {
            panic!("url")
        };
        let result = client
            .send(client.inner.post(literal.clone()), &literal, None)
            .await;
        assert!(matches!(
            result,
            AttemptResult::Error {
                class: ErrorClass::RefusedDestination,
                ..
            }
        ));
    }
}
