//! The challenge–response check (seed 001): on save, callhook POSTs
//! `{"challenge": "<32 hex>", …custom_data}` with the integration's headers; the endpoint must
//! answer 200, `text/plain`, with exactly the token, within the timeout.

use std::time::Duration;

use crate::model::integration::{SecretUse, ValidSpec};
use crate::model::settings::SettingError;
use crate::record::ErrorClass;

use super::client::HttpClient;

pub async fn verify(
    client: &HttpClient,
    spec: &ValidSpec,
    secret: Option<&str>,
) -> Result<(), SettingError> {
    if !spec.spec.destination.is_http() {
        return super::broker::check(client, spec, secret).await;
    }
    let token = hex::encode(crate::security::random_bytes::<16>());
    let mut body = serde_json::Map::new();
    if let Some(cd) = &spec.spec.custom_data {
        body.extend(cd.clone());
    }
    body.insert("challenge".into(), serde_json::Value::String(token.clone()));
    // From the addresses the deliveries will come from: a receiver that allow-lists them
    // answers this too.
    // Not saved yet, so no integration id: the challenge's clients share one slot.
    let identity = spec
        .spec
        .tls
        .as_ref()
        .map(|t| super::client::ClientIdentity {
            integration_id: "",
            certificate: &t.client_certificate,
            key: t.client_key.as_deref().unwrap_or_default(),
        });
    let Some(via) = client.client_for(spec.spec.delivery.egress, identity) else {
        return Err(SettingError {
            code: "egress_unavailable",
            message: "`delivery.egress` fixed needs an egress proxy, and this node has none (CALLHOOK_EGRESS_PROXY)".into(),
        });
    };
    let mut req = via
        .post(spec.url.clone())
        .timeout(Duration::from_millis(spec.spec.delivery.timeout_ms))
        .header(reqwest::header::CONTENT_TYPE, crate::render::JSON)
        .header("callhook-event-type", "challenge");
    for (k, v) in &spec.spec.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let body_bytes = serde_json::to_vec(&body).unwrap_or_default();
    match (secret, spec.spec.secret_use) {
        (Some(s), SecretUse::Bearer) => req = req.bearer_auth(s),
        (Some(s), SecretUse::WebexSignature) => {
            req = req.header(
                "x-spark-signature",
                crate::render::sign::spark_signature(s, &body_bytes),
            )
        }
        (None, _) => {}
    }
    let req = req.body(body_bytes);
    let fail = |code: &'static str, message: String| SettingError { code, message };
    if let Err(e) = crate::security::ssrf::check_url_host(&spec.url, client.policy) {
        return Err(fail("invalid_url", e.0));
    }
    if let Err(e) = client
        .check_proxied(&spec.url, spec.spec.delivery.egress)
        .await
    {
        return Err(fail("invalid_url", e.to_string()));
    }
    let resp = match super::client::exchange(req).await {
        Ok(r) => r,
        Err((ErrorClass::Timeout, _)) => {
            return Err(fail(
                "challenge_timeout",
                format!(
                    "the endpoint did not answer the challenge within {} ms",
                    spec.spec.delivery.timeout_ms
                ),
            ))
        }
        Err((class, message)) => {
            return Err(match class {
                ErrorClass::RefusedDestination | ErrorClass::Dns => fail("invalid_url", message),
                _ => fail(
                    "challenge_status",
                    format!("the endpoint could not be reached for the challenge: {message}"),
                ),
            })
        }
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = super::client::read_excerpt(resp).await;
    if status != 200 || !content_type.starts_with("text/plain") {
        return Err(fail(
            "challenge_status",
            format!(
                "the endpoint answered the challenge with {status} and content type `{content_type}`; expected 200 text/plain with the challenge token as body"
            ),
        ));
    }
    if text.trim() != token {
        return Err(fail(
            "challenge_mismatch",
            "the endpoint answered 200 text/plain but the body was not the challenge token it was sent".into(),
        ));
    }
    Ok(())
}
