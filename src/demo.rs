//! `callhook demo`: the whole product in one command — an embedded store in a temp dir, a local
//! receiver, a tenant with one integration per payload profile plus a partner's batch feed,
//! simulated call traffic, and one line per delivery as it arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use clap::Args;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::listen::{inspect, Signature};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where the API listens (falls back to a free port when taken).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Simulated calls per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Stop after this many calls, once their deliveries are done (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub calls: u64,
}

/// Integrations of the demo: (path on the receiver, settings).
fn integrations(base: &str) -> Vec<(&'static str, Value)> {
    let url = |p: &str| format!("{base}/{p}");
    vec![
        (
            "canonical",
            json!({"name": "Everything (canonical)", "url": url("canonical"),
            "event_types": ["call.state", "call.completed", "recording.completed", "analysis.completed", "ivr.input"]}),
        ),
        (
            "call-state",
            json!({"name": "Live call states", "url": url("call-state"), "profile": "call-state",
            "event_types": ["call.state"], "privacy": {"remote_number": {"action": "mask", "digits": 4}}}),
        ),
        (
            "cdr",
            json!({"name": "CRM post-call", "url": url("cdr"), "profile": "cdr", "event_types": ["call.completed"],
            "custom_data": {"hook": "post-call"}}),
        ),
        (
            "call-history",
            json!({"name": "Missed calls and analysis", "url": url("call-history"), "profile": "call-history",
            "event_types": ["analysis.completed", "ivr.input", "call.unanswered"]}),
        ),
        (
            "recording-v2",
            json!({"name": "Recordings", "url": url("recording-v2"), "profile": "recording.v2",
            "event_types": ["recording.completed"], "secret": "123ExampleCustomer321"}),
        ),
    ]
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "callhook-demo-{}",
        hex::encode(crate::security::random_bytes::<4>())
    ));
    let admin = format!(
        "chk_demo_{}",
        hex::encode(crate::security::random_bytes::<12>())
    );
    let mut config = crate::config::Config::for_data_dir(dir.clone());
    config.listen = args.listen;
    config.admin_token = Some(admin.clone());
    config.allow_insecure_http = true;
    config.allow_private_destinations = true;
    config.shutdown_grace_ms = 2000;
    let running = match crate::app::start(config.clone()).await {
        Ok(r) => r,
        Err(_) => {
            config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
            crate::app::start(config).await?
        }
    };
    let api = format!("http://{}", running.addr);

    // The receiver: one path per integration, each with its signing secret once known.
    let secrets: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let (secrets2, seen2) = (secrets.clone(), seen.clone());
    let receiver = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (secrets, seen) = (secrets2.clone(), seen2.clone());
            async move {
                let path = uri.path().trim_start_matches('/').to_string();
                let secret = secrets.lock().get(&path).cloned();
                let secrets = crate::listen::Secrets {
                    signing: secret.as_deref(),
                    webex: None,
                };
                let s = inspect(&method, &uri, &headers, &body, secrets);
                if let Some(token) = s.challenge {
                    return ([(axum::http::header::CONTENT_TYPE, "text/plain")], token)
                        .into_response();
                }
                *seen.lock().entry(path.clone()).or_default() += 1;
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let sig = match s.signature {
                    Signature::Valid => "signed ✓",
                    Signature::Invalid => "SIGNATURE INVALID",
                    Signature::Unchecked => "unsigned?",
                };
                println!(
                    "  → {path:<13} {:<20} attempt {} {} {sig}",
                    h("callhook-event-type"),
                    h("callhook-attempt"),
                    h("webhook-id")
                );
                StatusCode::NO_CONTENT.into_response()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });

    let http = reqwest::Client::new();
    let call = |path: String, body: Value, token: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(path)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            anyhow::ensure!(status.is_success(), "demo set-up failed ({status}): {v}");
            Ok::<Value, anyhow::Error>(v)
        }
    };
    call(
        format!("{api}/v1/partners"),
        json!({"id": "demo-partner", "name": "Demo Reseller"}),
        admin.clone(),
    )
    .await?;
    call(
        format!("{api}/v1/tenants"),
        json!({"id": "demo", "name": "Demo Ltd", "partner_id": "demo-partner"}),
        admin.clone(),
    )
    .await?;
    let tenant_admin = call(
        format!("{api}/v1/tokens"),
        json!({"role": "tenant_admin", "tenant_id": "demo", "name": "demo admin"}),
        admin.clone(),
    )
    .await?;
    let ingest = call(
        format!("{api}/v1/tokens"),
        json!({"role": "ingest", "tenant_id": "demo", "name": "demo pbx"}),
        admin.clone(),
    )
    .await?;
    let tenant_token = tenant_admin["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for (path, spec) in integrations(&receiver_url) {
        let v = call(
            format!("{api}/v1/tenants/demo/integrations"),
            spec,
            tenant_token.clone(),
        )
        .await?;
        secrets.lock().insert(
            path.to_string(),
            v["signing_secret"].as_str().unwrap_or_default().to_string(),
        );
    }
    let feed = call(
        format!("{api}/v1/partners/demo-partner/integrations"),
        json!({"name": "Partner CDR feed", "url": format!("{receiver_url}/webex-cdr"), "delivery": {"interval_s": 10, "delay_s": 0}}),
        admin.clone(),
    )
    .await?;
    secrets.lock().insert(
        "webex-cdr".into(),
        feed["signing_secret"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );

    println!("callhook demo");
    println!("  API            {api}   (operator token: {admin})");
    println!("  console        {api}/console   (sign in with the tenant admin token below, or the operator token)");
    println!("  tenant admin   token {tenant_token}");
    println!("  OpenAPI        {api}/v1/openapi.json");
    println!("  try            curl -s {api}/v1/tenants/demo/integrations -H 'Authorization: Bearer {tenant_token}'");
    println!("  metrics        {api}/metrics");
    println!("  receiver       {receiver_url}/<profile>  (canonical, call-state, cdr, call-history, recording-v2, webex-cdr every 10 s)");
    println!("  data           {} (removed on exit)\n", dir.display());

    let sim = crate::simulate::SimulateArgs {
        url: api.clone(),
        token: ingest["token"].as_str().unwrap_or_default().to_string(),
        tenant: "demo".into(),
        rate: args.rate,
        calls: args.calls,
        seed: None,
    };
    tokio::select! {
        r = crate::simulate::run(sim, false) => {
            r?;
            // Let the last deliveries and one batch window arrive.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::time::Instant::now() < deadline && !seen.lock().contains_key("webex-cdr") {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        _ = tokio::signal::ctrl_c() => {}
    }
    let counts = seen.lock().clone();
    let mut paths: Vec<_> = counts.into_iter().collect();
    paths.sort();
    println!(
        "\ndelivered: {}",
        paths
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
