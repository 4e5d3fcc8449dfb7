//! TLS to receivers: the trust roots, the client certificate an integration presents, and how a
//! failed handshake is told apart — from the TLS library's own error and from where the
//! handshake stood, never from an error's text.
//!
//! The client configuration is built here rather than by reqwest so that two of rustls' hooks
//! can report progress: the session store is asked for a key-share hint when the ClientHello
//! goes out (the TCP connection is up), and the certificate verifier is called when the server's
//! certificate arrives. An attempt runs inside [`watch`], which gives each send its own record
//! of those two moments; a send that times out between them is a handshake the receiver never
//! answered (`tls`), not a slow response (`timeout`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, NamedGroup, SignatureScheme};

/// How far the handshake of the send being watched got.
#[derive(Default)]
struct Progress {
    /// The ClientHello went out: the TCP connection (through the proxy, if any) is up.
    hello_sent: AtomicBool,
    /// The receiver's certificate arrived.
    certificate_seen: AtomicBool,
}

tokio::task_local! {
    static PROGRESS: Arc<Progress>;
}

fn mark(f: impl FnOnce(&Progress)) {
    // Outside a watched send (a connection hyper finishes in the background) nobody asks.
    let _ = PROGRESS.try_with(|p| f(p));
}

/// Where a watched send's handshake stood when it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// No TLS handshake was started by this send (plain http, a pooled connection, or the
    /// connection never came up).
    NotStarted,
    /// The ClientHello went out and no certificate came back.
    Unanswered,
    /// The receiver sent its certificate.
    Answered,
}

/// Runs `send` recording where its TLS handshake (if it opens a connection) got to.
pub async fn watch<F: Future>(send: F) -> (F::Output, Handshake) {
    let progress = Arc::new(Progress::default());
    let out = PROGRESS.scope(progress.clone(), send).await;
    let stage = if progress.certificate_seen.load(Ordering::Relaxed) {
        Handshake::Answered
    } else if progress.hello_sent.load(Ordering::Relaxed) {
        Handshake::Unanswered
    } else {
        Handshake::NotStarted
    };
    (out, stage)
}

/// The message of an attempt that timed out with the handshake unanswered.
pub const STALLED: &str = "TLS: the receiver accepted the connection but did not answer the TLS handshake before the timeout";

/// Parses PEM certificates (a CA file, a client chain).
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// A client certificate chain and its key, both PEM, as an integration presents them.
pub struct ClientIdentity<'a> {
    /// Whose it is: clients are kept per integration.
    pub integration_id: &'a str,
    pub certificate: &'a str,
    pub key: &'a str,
}

/// The parsed chain and key of `chain` and `key` (both PEM) when the key is the first
/// certificate's; a message saying what is wrong otherwise.
fn identity(
    chain: &str,
    key: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = certificates(chain.as_bytes())
        .map_err(|e| format!("`tls.client_certificate` is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(
            "`tls.client_certificate` holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                .into(),
        );
    }
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| {
        format!("`tls.client_key` is not a PEM private key (PKCS #8, RSA or EC): {e}")
    })?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(certs.clone(), key.clone_key(), &provider).map_err(
        |e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "`tls.client_key` is not the key of the first certificate in `tls.client_certificate`"
                    .to_string()
            }
            other => format!("`tls.client_key` cannot be used: {other}"),
        },
    )?;
    Ok((certs, key))
}

/// Whether `key` is the private key of the first certificate of `chain` (both PEM); a message
/// saying what is wrong otherwise.
pub fn check_identity(chain: &str, key: &str) -> Result<(), String> {
    identity(chain, key).map(drop)
}

/// The TLS configuration of a client: Mozilla's roots and `extra_roots`, HTTP/2 and HTTP/1.1
/// offered by ALPN, the integration's certificate when it has one, and the two hooks above.
pub fn client_config(
    extra_roots: &[CertificateDer<'static>],
    id: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for root in extra_roots {
        roots
            .add(root.clone())
            .map_err(|e| format!("a trusted root cannot be used: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("trusted roots: {e}"))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Watched(verifier)));
    let mut config = match id {
        Some(id) => {
            let (certs, key) = identity(id.certificate, id.key)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("`tls.client_key` cannot be used: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.resumption =
        Resumption::store(Arc::new(WatchedStore(ClientSessionMemoryCache::new(256))));
    Ok(config)
}

/// The WebPKI verifier, noting that the receiver's certificate arrived.
#[derive(Debug)]
struct Watched(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for Watched {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        mark(|p| p.certificate_seen.store(true, Ordering::Relaxed));
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Key-share hints kept per server (they save a round trip), no session resumption: a resumed
/// handshake skips the certificate, which would hide whether the receiver answered. Only new
/// connections handshake at all (they are kept alive and pooled), so this costs little. The
/// hint is asked for while the ClientHello is written, once per new connection.
#[derive(Debug)]
struct WatchedStore(ClientSessionMemoryCache);

impl ClientSessionStore for WatchedStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.0.set_kx_hint(server_name, group)
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        mark(|p| p.hello_sent.store(true, Ordering::Relaxed));
        self.0.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls12ClientSessionValue,
    ) {
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls13ClientSessionValue,
    ) {
    }

    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        None
    }
}

/// The TLS library's own error somewhere in `e`'s chain.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(s) = cur {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // An I/O error's `source` skips the error it wraps (TLS errors come wrapped, twice).
        cur = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    None
}

/// What went wrong with TLS, in words an operator can act on; `None` when TLS is not the cause.
pub(crate) fn problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::CertificateError as C;
    let r = rustls_error(e)?;
    Some(match r {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "TLS: the receiver's certificate is not signed by a trusted CA (a private CA's certificate goes in CALLHOOK_CA_FILE)".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "TLS: the receiver's certificate is not valid for the URL's host name".into()
            }
            C::Expired | C::ExpiredContext { .. } => {
                "TLS: the receiver's certificate has expired".into()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "TLS: the receiver's certificate is not valid yet".into()
            }
            C::Revoked => "TLS: the receiver's certificate is revoked".into(),
            other => format!("TLS: the receiver's certificate was refused ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("TLS: the receiver ended the handshake ({alert:?})")
        }
        other => format!("TLS: {other}"),
    })
}
