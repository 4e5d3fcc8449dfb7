//! One attempt: render, sign and send a delivery, and decide from the answer what comes next.
//! Knows nothing of queues or workers: the dispatcher runs attempts and acts on the decisions.

use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::Method;

use super::client::{ClientIdentity, HttpClient};
use crate::cache::Integration;
use crate::model::integration::{HttpMethod, SecretUse};
use crate::record::{classify, retry, AttemptResult, Verdict};
use crate::render::cache::RenderCache;
use crate::render::{render, sign, RenderContext, RenderError, Rendered};
use crate::security::links::Links;
use crate::store::{AttemptRecord, DeliveryHead, DispatchJob, NextStep};

/// Retries due within this horizon wait in memory; later ones give their lease up.
pub const MEMORY_HORIZON_MS: i64 = 60_000;

/// What an attempt needs of the node besides the integration and the delivery.
pub struct Sender<'a> {
    pub client: &'a HttpClient,
    /// Connections to the brokers of `nats` destinations.
    pub brokers: &'a super::broker::Brokers,
    /// Signs recording URLs in payloads.
    pub links: Option<&'a Links>,
    /// Payload parts shared by the integrations an event fans out to (`None`: serialise afresh).
    pub render_cache: Option<&'a RenderCache>,
}

/// What came back, and when the request went out.
pub struct Sent {
    pub result: AttemptResult,
    pub sent_at: i64,
    pub duration_ms: u32,
}

/// Sends attempt number `job.head.attempts + 1` of a delivery, rendered and signed as at
/// `sent_at`.
pub async fn send(s: &Sender<'_>, i: &Integration, job: &DispatchJob, sent_at: i64) -> Sent {
    let rendered = match render_for(s, i, job, sent_at) {
        Ok(r) => r,
        Err(e) => {
            return Sent {
                result: unrenderable(&e),
                sent_at,
                duration_ms: 0,
            }
        }
    };
    let started = Instant::now();
    let result = transmit(s, i, &job.head, &rendered, sent_at).await;
    let duration_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
    Sent {
        result,
        sent_at,
        duration_ms,
    }
}

/// Sends a rendered attempt where the integration's deliveries go: a request to its URL, or a
/// message to its broker.
async fn transmit(
    s: &Sender<'_>,
    i: &Integration,
    head: &DeliveryHead,
    rendered: &Rendered,
    at: i64,
) -> AttemptResult {
    if !i.valid.spec.destination.is_http() {
        let out = outgoing(i, head, rendered, at);
        return s
            .brokers
            .publish(s.client, &i.id, &i.valid, i.secret.as_deref(), &out)
            .await;
    }
    match build_request(s.client, i, head, rendered, at) {
        Some(request) => {
            s.client
                .send(request, &i.valid.url, i.valid.spec.delivery.egress)
                .await
        }
        None => HttpClient::no_fixed_egress(),
    }
}

/// What an answer means for its delivery.
pub struct Decision {
    pub verdict: Verdict,
    pub next: NextStep,
    /// No retry is left, or the endpoint is gone: counts towards disabling the integration.
    pub exhausted: bool,
}

/// Decides what follows an answer received at `now`. `may_hold`: a retry due within
/// [`MEMORY_HORIZON_MS`] may wait in memory with its lease (else it waits in the store).
/// `jitter` in `[0, 1)` spreads exponential waits.
pub fn decide(
    i: &Integration,
    head: &DeliveryHead,
    result: &AttemptResult,
    now: i64,
    may_hold: bool,
    jitter: f64,
) -> Decision {
    let verdict = classify(result);
    let (next, exhausted) = match &verdict {
        Verdict::Success => (NextStep::Succeeded, false),
        Verdict::Gone => (NextStep::Failed, true),
        Verdict::Unrenderable => (NextStep::Failed, false),
        // A redelivery asked for by a person is one attempt, never rescheduled.
        Verdict::Retry { .. } if head.manual => (NextStep::Failed, false),
        Verdict::Retry { retry_after } => match retry::wait(
            i.valid.retry_policy(),
            i.valid.retries(),
            head.retries_used,
            *retry_after,
            jitter,
        ) {
            Some(wait) => {
                let wait_ms = wait.as_millis() as i64;
                let keep_lease = wait_ms <= MEMORY_HORIZON_MS && may_hold;
                (
                    NextStep::Retry {
                        at: now + wait_ms,
                        keep_lease,
                    },
                    false,
                )
            }
            None => (NextStep::Failed, true),
        },
    };
    Decision {
        verdict,
        next,
        exhausted,
    }
}

/// The attempt as the deliveries log keeps it.
pub fn record(sent: &Sent) -> AttemptRecord {
    attempt_record(&sent.result, sent.sent_at, sent.duration_ms)
}

/// What one attempt sends, before it is handed to the HTTP client. The console shows the same
/// value (with the bearer secret masked), so what it displays is what is sent.
pub struct OutgoingRequest {
    pub method: HttpMethod,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<&'static str>,
    pub body: bytes::Bytes,
}

/// Shapes and signs the request for attempt number `head.attempts + 1`, sent at `now`.
pub fn outgoing(i: &Integration, head: &DeliveryHead, r: &Rendered, now: i64) -> OutgoingRequest {
    let spec = &i.valid.spec;
    let ts = now / 1000;
    let mut url = i.valid.url.clone();
    // GET carries the payload in the query string, and the signature covers it exactly as sent.
    // The exact bytes signed: the query string as sent for GET, else the body.
    let mut signed_query = None;
    let signature = match &r.query {
        Some(q) => {
            let full = match url.query().filter(|e| !e.is_empty()) {
                Some(existing) => format!("{existing}&{q}"),
                None => q.clone(),
            };
            url.set_query(Some(&full));
            signed_query = url.query().map(str::to_string);
            sign::signature_header(
                i.signing_keys(now),
                &head.id,
                ts,
                url.query().unwrap_or_default().as_bytes(),
            )
        }
        None => sign::signature_header(i.signing_keys(now), &head.id, ts, r.signed()),
    };
    let mut headers = Vec::with_capacity(6 + spec.headers.len());
    headers.push(("webhook-id".to_string(), head.id.clone()));
    headers.push(("webhook-timestamp".to_string(), ts.to_string()));
    headers.push(("webhook-signature".to_string(), signature));
    headers.push((
        "callhook-event-type".to_string(),
        head.trigger.as_str().to_string(),
    ));
    headers.push((
        "callhook-attempt".to_string(),
        (head.attempts + 1).to_string(),
    ));
    for (k, v) in &r.headers {
        headers.push((k.to_string(), v.clone()));
    }
    for (k, v) in &spec.headers {
        headers.push((k.clone(), v.clone()));
    }
    // A broker's secret is its password or token, used to connect; never a header.
    if let Some(secret) = i.secret.as_ref().filter(|_| spec.destination.is_http()) {
        match spec.secret_use {
            SecretUse::Bearer => {
                headers.push(("authorization".to_string(), format!("Bearer {secret}")))
            }
            SecretUse::WebexSignature => {
                let signed = signed_query.as_deref().map_or(r.signed(), str::as_bytes);
                headers.push((
                    "x-spark-signature".to_string(),
                    sign::spark_signature(secret, signed),
                ));
            }
        }
    }
    OutgoingRequest {
        method: spec.method,
        url,
        headers,
        content_type: r.content_type,
        body: r.body.clone(),
    }
}

/// The request on the client of the integration's egress; `None` when this node lacks it.
fn build_request(
    client: &HttpClient,
    i: &Integration,
    head: &DeliveryHead,
    r: &Rendered,
    now: i64,
) -> Option<reqwest::RequestBuilder> {
    let identity = i.valid.spec.tls.as_ref().map(|t| ClientIdentity {
        integration_id: &i.id,
        certificate: &t.client_certificate,
        key: t.client_key.as_deref().unwrap_or_default(),
    });
    let via = client.client_for(i.valid.spec.delivery.egress, identity)?;
    let out = outgoing(i, head, r, now);
    let method = match out.method {
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Get => Method::GET,
    };
    let mut req = via
        .request(method, out.url)
        .timeout(Duration::from_millis(i.valid.spec.delivery.timeout_ms));
    for (k, v) in out.headers {
        req = req.header(k, v);
    }
    Some(match out.content_type {
        Some(ct) => req.header(CONTENT_TYPE, ct).body(out.body),
        None => req,
    })
}

/// The payload of `job` for integration `i`, as sent at `at`.
fn render_for(
    s: &Sender<'_>,
    i: &Integration,
    job: &DispatchJob,
    at: i64,
) -> Result<Rendered, RenderError> {
    let ctx = RenderContext {
        integration_id: &i.id,
        delivery_id: &job.head.id,
        trigger: job.head.trigger,
        custom_data: i.valid.spec.custom_data.as_ref(),
        links: s.links,
        now_ms: at,
        cache: s.render_cache,
    };
    render(&job.event, &i.valid, &ctx)
}

/// The request a delivery's attempt `attempt` (1-based) sent at `at`, rebuilt from the stored
/// event with the integration's current settings and keys; or why it cannot be rendered.
pub fn rebuild(
    s: &Sender<'_>,
    i: &Integration,
    job: &DispatchJob,
    attempt: u32,
    at: i64,
) -> Result<OutgoingRequest, RenderError> {
    let rendered = render_for(s, i, job, at)?;
    let mut head = job.head.clone();
    head.attempts = attempt.saturating_sub(1);
    Ok(outgoing(i, &head, &rendered, at))
}

fn unrenderable(e: &RenderError) -> AttemptResult {
    AttemptResult::Error {
        class: crate::record::ErrorClass::Render,
        message: e.to_string(),
    }
}

fn attempt_record(result: &AttemptResult, started_at: i64, duration_ms: u32) -> AttemptRecord {
    match result {
        AttemptResult::Response {
            status, excerpt, ..
        } => AttemptRecord {
            started_at,
            duration_ms,
            status_code: Some(*status),
            error_class: (!(200..300).contains(status))
                .then_some(crate::record::ErrorClass::HttpStatus.as_str()),
            error: None,
            response_excerpt: (!excerpt.is_empty()).then(|| excerpt.clone()),
        },
        AttemptResult::Error { class, message } => AttemptRecord {
            started_at,
            duration_ms,
            status_code: None,
            error_class: Some(class.as_str()),
            error: Some(message.clone()),
            response_excerpt: None,
        },
        AttemptResult::Published { detail } => AttemptRecord {
            started_at,
            duration_ms,
            status_code: None,
            error_class: None,
            error: None,
            response_excerpt: Some(detail.clone()),
        },
    }
}

pub fn describe(result: &AttemptResult) -> String {
    match result {
        AttemptResult::Response { status, .. } => format!("HTTP {status}"),
        AttemptResult::Error { class, message } => format!("{}: {message}", class.as_str()),
        AttemptResult::Published { detail } => format!("published: {detail}"),
    }
}

/// `…/test`: sends one sample event of the integration's first type and reports the result.
/// Nothing is stored; the request is signed and shaped exactly like a real delivery.
pub async fn send_sample(s: &Sender<'_>, i: &Integration, now: i64) -> TestReport {
    use crate::model::event::{EventKind, StoredEvent};
    use serde_json::json;
    let kind = i
        .valid
        .spec
        .event_types
        .first()
        .copied()
        .unwrap_or(EventKind::CallCompleted);
    // The example a template is checked against when saved (the seeds' own, where they have
    // one), sent now under a new id.
    let tenant = i.tenant_id.as_deref().unwrap_or_default();
    let mut event = crate::render::samples::event(kind, tenant).event;
    event.id = crate::model::ids::new_id("sample");
    event.occurred_at_ms = now;
    // A `cdr-batch` integration only ever sends windows: the sample call goes as the one item
    // of a window that ends now, rendered as a real window's items are.
    let spec = &i.valid.spec;
    if spec.profile == crate::render::Profile::CdrBatch {
        let item = crate::render::window_item(spec).render(&event);
        let feed = spec
            .feed
            .unwrap_or(crate::model::integration::Feed::Analytics);
        let window = json!({"start": crate::time::format_ms(now - 300_000), "end": crate::time::format_ms(now)});
        event.kind = EventKind::CdrBatch;
        event.data = json!({"feed": feed.as_str(), "window": window, "part": 1, "parts": 1, "items": [item]})
            .as_object()
            .cloned()
            .unwrap_or_default();
    }
    let stored = StoredEvent {
        seq: 0,
        body: event.canonical_json(),
        event,
    };
    let head = DeliveryHead {
        id: crate::model::ids::new_id("test"),
        integration_id: i.id.clone(),
        call_id: stored.event.call_id.clone(),
        trigger: kind,
        ordered: false,
        manual: true,
        attempts: 0,
        retries_used: 0,
        created_at: now,
    };
    let ctx = RenderContext {
        integration_id: &i.id,
        delivery_id: &head.id,
        trigger: kind,
        custom_data: i.valid.spec.custom_data.as_ref(),
        links: s.links,
        now_ms: now,
        cache: None,
    };
    let started = Instant::now();
    let result = match render(&stored, &i.valid, &ctx) {
        Err(e) => unrenderable(&e),
        Ok(rendered) => transmit(s, i, &head, &rendered, now).await,
    };
    let rec = attempt_record(&result, now, started.elapsed().as_millis() as u32);
    TestReport {
        success: classify(&result) == Verdict::Success,
        status_code: rec.status_code,
        duration_ms: rec.duration_ms,
        error_class: rec.error_class.map(String::from),
        error: rec.error,
        response_excerpt: rec.response_excerpt,
        event_type: kind.as_str().to_string(),
    }
}

/// What a test send reports.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TestReport {
    /// The receiver answered 2xx.
    pub success: bool,
    pub status_code: Option<u16>,
    pub duration_ms: u32,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub event_type: String,
}
