//! Wiring: opens the store, loads integrations, starts delivery and the HTTP server, and owns
//! shutdown (one cancellation token: stop accepting, finish in-flight deliveries up to a
//! deadline, log what is left).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{generate_token, Tokens};
use crate::cache::{Integration, IntegrationCache};
use crate::config::{Config, EgressDefault};
use crate::deliver::client::HttpClient;
use crate::deliver::Dispatcher;
use crate::model::integration::Egress;
use crate::model::tenancy::{Role, TokenRecord};
use crate::security::links::Links;
use crate::security::seal::Sealer;
use crate::security::ssrf::{system_lookup, DestinationPolicy};
use crate::state::{AppInner, AppState};

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    /// The operator token generated at first start, when none was configured.
    pub generated_admin_token: Option<String>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight deliveries (up to the grace period) and returns.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

pub async fn start(config: Config) -> anyhow::Result<Running> {
    // Settings that can be wrong are checked before anything is created.
    let egress_default = match (config.egress_default, &config.egress_proxy) {
        (Some(EgressDefault::Fixed), None) => anyhow::bail!(
            "CALLHOOK_EGRESS_DEFAULT=fixed sends through the egress proxy: set CALLHOOK_EGRESS_PROXY too, or use direct"
        ),
        (Some(EgressDefault::Fixed), Some(_)) | (None, Some(_)) => Egress::Fixed,
        (Some(EgressDefault::Direct), _) | (None, None) => Egress::Direct,
    };
    config.frame_ancestors().map_err(anyhow::Error::msg)?;
    let roots = match &config.ca_file {
        Some(path) => trusted_roots(path)?,
        None => Vec::new(),
    };
    crate::security::private_dir(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let store = crate::store::open(&config.database_url()).await?;
    let sealer = Sealer::load_or_create(config.seal_key.as_deref(), &config.data_dir)?;
    let policy = DestinationPolicy {
        allow_insecure_http: config.allow_insecure_http,
        allow_private: config.allow_private_destinations,
    };
    let lookup = system_lookup();
    let client = HttpClient::new(
        policy,
        lookup.clone(),
        config.egress_proxy.as_deref(),
        egress_default,
        &roots,
    )
    .map_err(anyhow::Error::msg)?
    .with_broker_servers(&config.nats_servers, &config.amqp_servers);

    // Every node of a store seals with one key: the first to start records its fingerprint,
    // and a node with another key refuses to start rather than accept events it cannot route.
    let recorded = store
        .claim_setting(SEAL_FINGERPRINT, sealer.fingerprint())
        .await?;
    if !crate::security::constant_time_eq(&recorded, &sealer.fingerprint()) {
        anyhow::bail!(
            "CALLHOOK_SEAL_KEY is not the key this database's secrets are sealed with (another node, or an earlier run, used a different one); start every node with the same key"
        );
    }

    let cache = Arc::new(IntegrationCache::default());
    let unopened = crate::state::Unopened::default();
    for rec in store.load_integrations().await? {
        match Integration::from_record(&rec, &sealer) {
            Ok(i) => {
                cache.put(i);
            }
            Err(e) => {
                tracing::error!(error = %e, integration = %rec.id, "an integration could not be opened: this node is not ready and refuses events until it can");
                unopened.add(&rec.id);
            }
        }
    }

    let generated_admin_token = bootstrap_token(&config, &store).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let links = Links::new(&public_url, sealer.derive_key("recording-urls"));
    let dispatcher = Dispatcher::new(
        store.clone(),
        cache.clone(),
        client.clone(),
        Some(links.clone()),
        config.clock.clone(),
    );
    match (&config.notify_url, &config.notify_secret) {
        (Some(url), Some(secret)) => {
            let n = crate::deliver::notify::Notifier::new(url, secret, client.clone(), config.clock.clone()).map_err(anyhow::Error::msg)?;
            dispatcher.set_notifier(n);
        }
        (Some(_), None) => anyhow::bail!("CALLHOOK_NOTIFY_URL needs CALLHOOK_NOTIFY_SECRET (a whsec_ secret) to sign notifications"),
        _ => {}
    }

    let shutdown = CancellationToken::new();
    let state = AppState(Arc::new(AppInner {
        tokens: Tokens::new(config.admin_token.as_deref()),
        config: config.clone(),
        store: store.clone(),
        cache,
        dispatcher: dispatcher.clone(),
        sealer,
        client,
        lookup,
        policy,
        links,
        known_tenants: RwLock::new(HashMap::new()),
        unopened,
        bodies: crate::serve::body::BodyBudget::new(
            config.body_memory_bytes.max(config.max_body_bytes),
            Duration::from_millis(config.body_timeout_ms),
        ),
        streams: crate::deliver::stream::StreamHub::start(store.clone(), shutdown.child_token())
            .await?,
    }));

    crate::cluster::start(&state, shutdown.clone()).await?;
    dispatcher.start(config.node_timeout_ms as i64).await?;
    // Runs with retention 0 too ("keep everything"): the charts' counts are kept two days.
    tokio::spawn(crate::retention::run(
        store.clone(),
        config.data_dir.clone(),
        config.retention_hours,
        config.clock.clone(),
        shutdown.clone(),
    ));
    let stop = shutdown.clone();
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let limits = crate::serve::Limits {
        header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
        body_timeout: Duration::from_millis(config.body_timeout_ms.max(1)),
        write_timeout: Duration::from_millis(config.write_timeout_ms.max(1)),
        max_connections: config.max_connections,
        grace,
    };
    let app = routes(state);
    let done = tokio::spawn(async move {
        let server = tokio::spawn(crate::serve::run(listener, app, limits, stop.clone()));
        stop.cancelled().await;
        // One grace for everything: connections drain while deliveries finish.
        let (_, ()) = tokio::join!(server, dispatcher.shutdown(grace));
        tracing::info!("stopped");
    });
    tracing::info!(%addr, "callhook listening");
    Ok(Running {
        addr,
        generated_admin_token,
        shutdown,
        done,
    })
}

/// Every route: the API and the console side by side, one fallback, and the error envelope on
/// every error answer.
fn routes(state: AppState) -> axum::Router {
    axum::Router::new()
        .merge(crate::api::router(&state.config))
        .merge(crate::console::router(state.clone()))
        .fallback(|| async {
            crate::error::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no_route",
                "no such endpoint; the API lives under /v1 (see /v1/openapi.json)",
            )
        })
        .layer(axum::middleware::map_response(
            crate::error::envelope_every_error,
        ))
        // A bug that panics in a handler answers 500 with the envelope, logged as an internal
        // error, instead of dropping the client's connection without a word.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::error::panicked,
        ))
        .with_state(state)
}

/// The setting under which the sealing key's fingerprint is recorded.
const SEAL_FINGERPRINT: &str = "seal_key_fingerprint";

/// With no configured admin token, generates an operator token once, at first start.
async fn bootstrap_token(
    config: &Config,
    store: &crate::store::DynStore,
) -> anyhow::Result<Option<String>> {
    if config.admin_token.is_some() || store.has_token_named("bootstrap").await? {
        return Ok(None);
    }
    let (token, hash) = generate_token();
    store
        .create_token(TokenRecord {
            id: crate::model::ids::new_id("tok"),
            hash,
            role: Role::Operator,
            tenant_id: None,
            partner_id: None,
            name: "bootstrap".into(),
            created_at: config.clock.now_ms(),
        })
        .await?;
    Ok(Some(token))
}

/// `callhook serve`: runs until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    if let Some(token) = &running.generated_admin_token {
        println!("Generated an operator token (shown once; set CALLHOOK_ADMIN_TOKEN to use your own):\n  {token}");
    }
    println!("callhook listening on http://{}", running.addr);
    let stop = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    running.wait().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The certificates of `CALLHOOK_CA_FILE`: a file that cannot be read or holds no certificate
/// stops the start, rather than leaving receivers behind that CA failing one by one.
fn trusted_roots(
    path: &std::path::Path,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("CALLHOOK_CA_FILE: reading {}", path.display()))?;
    let certs = crate::deliver::tls::certificates(&pem).map_err(|e| {
        anyhow::anyhow!(
            "CALLHOOK_CA_FILE: {} is not PEM certificates: {e}",
            path.display()
        )
    })?;
    if certs.is_empty() {
        anyhow::bail!(
            "CALLHOOK_CA_FILE: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}
