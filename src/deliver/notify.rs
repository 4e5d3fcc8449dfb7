//! Operational notifications: when an integration starts failing, is disabled, or recovers,
//! callhook tells the operator's URL (`CALLHOOK_NOTIFY_URL`) with a signed event, so nobody
//! learns of a disabled integration from an angry customer.
//!
//! Events are signed like deliveries (Standard Webhooks, with `CALLHOOK_NOTIFY_SECRET`) and
//! retried a few times in memory; they are not stored — the integration's state and reason are,
//! and the API and log show them.

use std::time::Duration;

use serde_json::{json, Value};

use super::client::HttpClient;
use crate::cache::Integration;
use crate::clock::Clock;
use crate::model::integration::Egress;
use crate::record::{classify, Verdict};
use crate::render::sign;

const WAITS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

pub struct Notifier {
    url: url::Url,
    key: Vec<u8>,
    client: HttpClient,
    /// The node's clock: the retry waits and the signature's timestamp follow it, like every
    /// delivery's.
    clock: Clock,
}

impl Notifier {
    pub fn new(
        url: &str,
        secret: &str,
        client: HttpClient,
        clock: Clock,
    ) -> Result<Notifier, String> {
        let url = url::Url::parse(url).map_err(|e| format!("CALLHOOK_NOTIFY_URL: {e}"))?;
        let key = sign::decode_secret(secret)
            .filter(|k| secret.starts_with("whsec_") && k.len() >= 16)
            .ok_or("CALLHOOK_NOTIFY_SECRET must be a whsec_ secret (whsec_ and base64 of at least 16 bytes)")?;
        Ok(Notifier {
            url,
            key,
            client,
            clock,
        })
    }

    /// Builds the event for a change of an integration's state.
    pub fn event(
        kind: &str,
        i: &Integration,
        reason: Option<&str>,
        last_error: Option<&str>,
        now: i64,
    ) -> Value {
        json!({
            "id": crate::model::ids::new_id("ntf"),
            "type": kind,
            "occurred_at": crate::time::format_ms(now),
            "data": {
                "integration_id": i.id, "tenant_id": i.tenant_id, "partner_id": i.partner_id,
                "name": i.valid.spec.name, "url": i.valid.spec.url, "status": i.status.as_str(),
                "reason": reason, "last_error": last_error,
                "failing_since": i.failing_since.map(crate::time::format_ms),
                "consecutive_failures": i.consecutive_failures,
            }
        })
    }

    /// Sends in the background, retrying a few times.
    pub fn send(&self, event: Value) {
        let (url, key, client) = (self.url.clone(), self.key.clone(), self.client.clone());
        let clock = self.clock.clone();
        tokio::spawn(async move {
            let body = serde_json::to_vec(&event).unwrap_or_default();
            let id = event["id"].as_str().unwrap_or_default().to_string();
            let kind = event["type"].as_str().unwrap_or_default().to_string();
            for (n, wait) in std::iter::once(Duration::ZERO).chain(WAITS).enumerate() {
                clock.sleep(wait).await;
                let now = clock.now_ms();
                let ts = now / 1000;
                let req = client
                    .inner
                    .post(url.clone())
                    .timeout(Duration::from_secs(10))
                    .header(reqwest::header::CONTENT_TYPE, crate::render::JSON)
                    .header("webhook-id", id.as_str())
                    .header("webhook-timestamp", ts.to_string())
                    .header(
                        "webhook-signature",
                        sign::signature_header([key.as_slice()], &id, ts, &body),
                    )
                    .header("callhook-event-type", kind.as_str())
                    .header("callhook-attempt", (n + 1).to_string())
                    .body(body.clone());
                if classify(&client.send(req, &url, Some(Egress::Direct)).await) == Verdict::Success
                {
                    return;
                }
            }
            tracing::warn!(event = %kind, id = %id, "the operator notification could not be delivered");
        });
    }
}
