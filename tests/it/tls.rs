//! Deliveries over TLS to receivers behind a private CA the test makes itself: plain http is
//! off on these servers, as in production.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::json;

use crate::support::*;

/// A private CA, and receiver certificates it signs.
pub(crate) struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub(crate) fn new() -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "callhook test CA");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    /// The CA certificate as a `CALLHOOK_CA_FILE` in `dir`.
    pub(crate) fn file(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).expect("write CA file");
        path
    }

    /// A receiver's TLS setup with a certificate for `name`, expired when asked; HTTP/1.1.
    fn server(&self, name: &str, expired: bool) -> Arc<rustls::ServerConfig> {
        self.server_speaking(name, expired, &[b"http/1.1"])
    }

    /// A client certificate for `name` signed by this CA: (chain PEM, key PEM).
    pub(crate) fn client(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec![name.to_string()]).expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// A receiver that asks every client for a certificate signed by this CA.
    fn server_requiring_client_certificates(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.der().clone(), self.cert.der().clone()], key)
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    fn server_speaking(
        &self,
        name: &str,
        expired: bool,
        alpn: &[&[u8]],
    ) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        let chain = vec![cert.der().clone(), self.cert.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A server as production runs it: https only (loopback receivers stay allowed).
pub(crate) async fn https_only(ca_file: Option<std::path::PathBuf>) -> TestServer {
    TestServer::start_with(move |c| {
        c.allow_insecure_http = false;
        c.ca_file = ca_file;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_challenge_and_deliveries_go_over_tls_to_a_receiver_behind_a_private_ca() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("dir");
    let server = https_only(Some(ca.file(dir.path()))).await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start_tls(ca.server("localhost", false)).await;
    let plain = Receiver::start().await;
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "plain", "url": plain.url, "event_types": ["ivr.input"]}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_url")),
        "plain http is off: {v}"
    );
    // Saved only once the challenge, over TLS, came back.
    api.integration(
        "acme",
        json!({"name": "tls", "url": rx.url, "event_types": ["ivr.input"]}),
    )
    .await;
    assert_eq!(
        server
            .ingest(json!({"events": ivr_events("acme", 0..3)}))
            .await
            .0,
        202
    );
    let got = rx.take(3, 10).await;
    assert!(got
        .iter()
        .all(|r| r.header("webhook-signature").starts_with("v1,")));
}

/// The test-send report of an integration at `url` on a server trusting `ca_file`.
async fn test_send(ca_file: Option<std::path::PathBuf>, url: &str) -> serde_json::Value {
    let server = https_only(ca_file).await;
    let api = server.tenant("acme").await;
    let i = api
        .integration(
            "acme",
            json!({"name": "t", "url": url, "event_types": ["ivr.input"], "verification": "none"}),
        )
        .await;
    let iid = i["id"].as_str().unwrap_or_default();
    let (st, report) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/test"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{report}");
    server.stop().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_a_misnamed_and_an_expired_certificate_are_each_a_tls_error_that_says_which() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("dir");
    let good = Receiver::start_tls(ca.server("localhost", false)).await;
    let misnamed = Receiver::start_tls(ca.server("crm.example.com", false)).await;
    let expired = Receiver::start_tls(ca.server("localhost", true)).await;
    for (ca_file, url, says) in [
        (None, &good.url, "not signed by a trusted CA"),
        (
            Some(ca.file(dir.path())),
            &misnamed.url,
            "not valid for the URL's host name",
        ),
        (Some(ca.file(dir.path())), &expired.url, "has expired"),
    ] {
        let report = test_send(ca_file, url).await;
        assert_eq!(report["success"], false, "{report}");
        assert_eq!(report["error_class"], "tls", "{report}");
        let error = report["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{url}: {error}");
    }
    // The same, at save: the challenge names the certificate's fault.
    let server = https_only(None).await;
    let api = server.tenant("acme").await;
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "t", "url": good.url, "event_types": ["ivr.input"]}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not signed by a trusted CA"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_accepts_tcp_and_never_answers_tls_is_a_tls_error_not_a_slow_response() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("dir");
    // Accepts connections and holds them open, reading nothing and writing nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    // The same timeout against a receiver that finishes the handshake and then hangs.
    let slow = Receiver::start_tls(ca.server("localhost", false)).await;
    slow.set_default(Reply::Hang);
    let server = https_only(Some(ca.file(dir.path()))).await;
    let api = server.tenant("acme").await;
    for (url, class, says) in [
        (
            format!("https://localhost:{port}/hook"),
            "tls",
            "did not answer the TLS handshake",
        ),
        (slow.url.clone(), "timeout", "timed out"),
    ] {
        let i = api
            .integration(
                "acme",
                json!({"name": "t", "url": url, "event_types": ["ivr.input"],
                       "verification": "none", "delivery": {"timeout_ms": 1000}}),
            )
            .await;
        let iid = i["id"].as_str().unwrap_or_default();
        let started = std::time::Instant::now();
        let (st, report) = api
            .post(
                &format!("/v1/tenants/acme/integrations/{iid}/test"),
                json!({}),
            )
            .await;
        assert_eq!(st, 200, "{report}");
        assert_eq!(report["error_class"], class, "{url}: {report}");
        let error = report["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{url}: {error}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "held past its timeout"
        );
    }
    // And at save: the challenge says the same.
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "c", "url": format!("https://localhost:{port}/hook"),
                   "event_types": ["ivr.input"], "delivery": {"timeout_ms": 1000}}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("did not answer the TLS handshake"),
        "{message}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_that_is_missing_or_holds_no_certificate_stops_the_start() {
    let dir = tempfile::tempdir().expect("dir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    for path in [dir.path().join("missing.pem"), garbage] {
        let data = tempfile::tempdir().expect("data dir");
        let mut config = dev_config(data.path());
        config.ca_file = Some(path.clone());
        let refused = callhook::app::start(config).await;
        assert!(
            refused
                .err()
                .is_some_and(|e| format!("{e:#}").contains("CALLHOOK_CA_FILE")),
            "{}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_offers_http2_gets_the_deliveries_over_http2() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("dir");
    let server = https_only(Some(ca.file(dir.path()))).await;
    let api = server.tenant("acme").await;
    let h2 =
        Receiver::start_tls(ca.server_speaking("localhost", false, &[b"h2", b"http/1.1"])).await;
    let h1 = Receiver::start_tls(ca.server("localhost", false)).await;
    for rx in [&h2, &h1] {
        api.integration(
            "acme",
            json!({"name": "r", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    }
    assert_eq!(
        server
            .ingest(json!({"events": ivr_events("acme", 0..4)}))
            .await
            .0,
        202
    );
    let over_h2 = h2.take(4, 10).await;
    assert!(
        over_h2
            .iter()
            .all(|r| r.version == axum::http::Version::HTTP_2),
        "negotiated by ALPN"
    );
    let over_h1 = h1.take(4, 10).await;
    assert!(over_h1
        .iter()
        .all(|r| r.version == axum::http::Version::HTTP_11));
    // The payload and its signature are the same either way.
    assert!(over_h2
        .iter()
        .all(|r| r.header("webhook-signature").starts_with("v1,") && !r.body.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_asking_for_a_client_certificate_gets_the_integrations_own() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("dir");
    let server = https_only(Some(ca.file(dir.path()))).await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start_tls(ca.server_requiring_client_certificates()).await;
    let (cert, key) = ca.client("crm-client");
    let (other_cert, _) = ca.client("someone-else");

    // A key that is not the certificate's is refused at save, and nothing is saved.
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "m", "url": rx.url, "event_types": ["ivr.input"],
                   "tls": {"client_certificate": other_cert, "client_key": key}}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_tls")),
        "{v}"
    );
    // Without a certificate the receiver refuses the handshake: the challenge says so.
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "m", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let (_, list) = api.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"], json!([]));

    // With its own, the challenge, the deliveries and a test send go through.
    let i = api
        .integration(
            "acme",
            json!({"name": "m", "url": rx.url, "event_types": ["ivr.input"],
                   "tls": {"client_certificate": cert, "client_key": key}}),
        )
        .await;
    assert_eq!(i["tls"]["client_key"], "…", "the key is write-only");
    assert_eq!(i["tls"]["client_certificate"], json!(cert));
    assert_eq!(
        server
            .ingest(json!({"events": ivr_events("acme", 0..2)}))
            .await
            .0,
        202
    );
    rx.take(2, 10).await;
    let iid = i["id"].as_str().unwrap_or_default();
    let test_send_arrives = || async {
        let (_, report) = api
            .post(
                &format!("/v1/tenants/acme/integrations/{iid}/test"),
                json!({}),
            )
            .await;
        assert_eq!(report["success"], true, "{report}");
        rx.next(10).await;
    };
    test_send_arrives().await;
    // An edit that sends the settings back with the key's hint keeps the key.
    let (st, v) = api
        .patch(
            &format!("/v1/tenants/acme/integrations/{iid}"),
            json!({"name": "renamed", "tls": {"client_certificate": cert, "client_key": "…"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    test_send_arrives().await;
    // The key is sealed at rest: not in the database file in the clear.
    let pem_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(server.data_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("callhook.db")
        {
            stored.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    assert!(
        !stored.windows(32).any(|w| w == &pem_body.as_bytes()[..32]),
        "the client key is in the store in the clear"
    );
}
