//! One attempt: render, sign, send, classify, record, and schedule what comes next.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use tokio::sync::OwnedSemaphorePermit;

use super::dispatcher::{Dispatcher, MEMORY_HORIZON_MS};
use crate::cache::Integration;
use crate::model::integration::{HttpMethod, RetryPolicyKind};
use crate::record::health::AttemptFacts;
use crate::record::{classify, retry, AttemptResult, Verdict};
use crate::render::{render, sign, RenderContext, Rendered};
use crate::store::{
    AttemptRecord, DeliveryHead, DispatchJob, IntegrationStatus, NextStep, Outcome,
};
use crate::time::now_ms;

/// `slot` is the integration's in-flight slot this attempt holds: it is given back as soon as
/// the endpoint has answered, so the endpoint's concurrency is not spent waiting for the
/// outcome's commit (which the writer groups with others).
pub async fn run(d: &Arc<Dispatcher>, job: DispatchJob, slot: OwnedSemaphorePermit) {
    let Some(integration) = d.cache.get(&job.head.integration_id) else {
        return; // deleted while queued; its deliveries were cancelled
    };
    if integration.status == IntegrationStatus::Disabled {
        drop(slot);
        crate::metrics::METRICS.delivery("held", None);
        settle(d, &job, None, NextStep::Held, now_ms()).await;
        return;
    }
    let sent_at = now_ms();
    let rendered = render_for(d, &integration, &job, sent_at);
    let request = build_request(d, &integration, &job.head, &rendered, sent_at);
    let clock = Instant::now();
    let result = d.client.send(request, &integration.valid.url).await;
    let duration_ms = clock.elapsed().as_millis().min(u32::MAX as u128) as u32;
    // The slot is handed on once a place among the outcomes waiting for the writer is taken:
    // if the writer falls behind, endpoints wait for it, and outcomes in memory stay bounded.
    let _recording = d.recording.clone().acquire_owned().await;
    drop(slot);
    let now = now_ms();

    let verdict = classify(&result);
    let spec = &integration.valid.spec;
    let (next, exhausted) = match &verdict {
        Verdict::Success => (NextStep::Succeeded, false),
        Verdict::Gone => (NextStep::Failed, true),
        // A redelivery asked for by a person is one attempt, never rescheduled.
        Verdict::Retry { .. } if job.head.manual => (NextStep::Failed, false),
        Verdict::Retry { retry_after } => {
            let jitter = rand::random::<f64>();
            match retry::wait(
                spec.delivery.retry.policy,
                integration.valid.retries(),
                job.head.retries_used,
                *retry_after,
                jitter,
            ) {
                Some(wait) => {
                    let wait_ms = wait.as_millis() as i64;
                    let keep_lease = wait_ms <= MEMORY_HORIZON_MS && d.may_hold_timer();
                    (
                        NextStep::Retry {
                            at: now + wait_ms,
                            keep_lease,
                        },
                        false,
                    )
                }
                None => (NextStep::Failed, true),
            }
        }
    };

    let attempt = attempt_record(&result, sent_at, duration_ms);
    let m = &crate::metrics::METRICS;
    m.attempt_latency.observe_ms(duration_ms as f64);
    let label = match &next {
        NextStep::Succeeded => {
            m.end_to_end.observe_ms((now - job.head.created_at) as f64);
            "succeeded"
        }
        NextStep::Retry { .. } => "retry",
        NextStep::Failed => "failed",
        NextStep::Held => "held",
    };
    m.delivery(label, attempt.error_class);
    let last_error = describe(&result);
    d.observe_health(
        &integration.id,
        &AttemptFacts {
            success: verdict == Verdict::Success,
            gone: verdict == Verdict::Gone,
            exhausted,
            exponential: spec.delivery.retry.policy == RetryPolicyKind::Exponential,
            delivery_created_at: job.head.created_at,
            disable_after_failures: spec.delivery.disable_after_failures,
            last_error: &last_error,
            now,
        },
    )
    .await;

    if !settle(d, &job, Some(attempt), next.clone(), now).await {
        return;
    }
    if let NextStep::Retry { at, keep_lease } = next {
        if keep_lease {
            schedule_retry(d, job, at);
        } else {
            d.note_due(&integration.id, at);
        }
    }
}

/// Records the outcome; dispatches any delivery it releases. False when it could not be
/// recorded (the lease then runs out and the delivery is attempted again).
async fn settle(
    d: &Arc<Dispatcher>,
    job: &DispatchJob,
    attempt: Option<AttemptRecord>,
    next: NextStep,
    now: i64,
) -> bool {
    let outcome = Outcome {
        head: job.head.clone(),
        attempt,
        next,
        now,
    };
    match d.store.record(vec![outcome], d.lease()).await {
        Ok(promoted) => {
            d.dispatch(promoted);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, delivery = %job.head.id, "could not record an attempt");
            false
        }
    }
}

fn schedule_retry(d: &Arc<Dispatcher>, mut job: DispatchJob, at: i64) {
    job.head.attempts += 1;
    job.head.retries_used += 1;
    d.timers.fetch_add(1, Ordering::Relaxed);
    let d = d.clone();
    tokio::spawn(async move {
        let wait = Duration::from_millis((at - now_ms()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                d.timers.fetch_sub(1, Ordering::Relaxed);
                d.dispatch(vec![job]);
            }
            // Abandoned on shutdown: the lease is released at the next start.
            _ = d.shutdown.cancelled() => {
                d.timers.fetch_sub(1, Ordering::Relaxed);
            }
        }
    });
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
    let signature = match &r.query {
        Some(q) => {
            let full = match url.query().filter(|e| !e.is_empty()) {
                Some(existing) => format!("{existing}&{q}"),
                None => q.clone(),
            };
            url.set_query(Some(&full));
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
    for (k, v) in &spec.headers {
        headers.push((k.clone(), v.clone()));
    }
    if let Some(secret) = &i.secret {
        headers.push(("authorization".to_string(), format!("Bearer {secret}")));
    }
    OutgoingRequest {
        method: spec.method,
        url,
        headers,
        content_type: r.content_type,
        body: r.body.clone(),
    }
}

fn build_request(
    d: &Dispatcher,
    i: &Integration,
    head: &DeliveryHead,
    r: &Rendered,
    now: i64,
) -> reqwest::RequestBuilder {
    let out = outgoing(i, head, r, now);
    let method = match out.method {
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Get => Method::GET,
    };
    let mut req = d
        .client
        .inner
        .request(method, out.url)
        .timeout(Duration::from_millis(i.valid.spec.delivery.timeout_ms));
    for (k, v) in out.headers {
        req = req.header(k, v);
    }
    match out.content_type {
        Some(ct) => req.header(CONTENT_TYPE, ct).body(out.body),
        None => req,
    }
}

/// The payload of `job` for integration `i`, as sent at `at`.
fn render_for(d: &Dispatcher, i: &Integration, job: &DispatchJob, at: i64) -> Rendered {
    let ctx = RenderContext {
        integration_id: &i.id,
        delivery_id: &job.head.id,
        trigger: job.head.trigger,
        custom_data: i.valid.spec.custom_data.as_ref(),
        links: d.links.as_ref(),
        now_ms: at,
        cache: Some(&d.render_cache),
    };
    render(&job.event, &i.valid, &ctx)
}

/// The request a delivery's attempt `attempt` (1-based) sent at `at`, rebuilt from the stored
/// event with the integration's current settings and keys.
pub fn rebuild(
    d: &Dispatcher,
    i: &Integration,
    job: &DispatchJob,
    attempt: u32,
    at: i64,
) -> OutgoingRequest {
    let rendered = render_for(d, i, job, at);
    let mut head = job.head.clone();
    head.attempts = attempt.saturating_sub(1);
    outgoing(i, &head, &rendered, at)
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
    }
}

fn describe(result: &AttemptResult) -> String {
    match result {
        AttemptResult::Response { status, .. } => format!("HTTP {status}"),
        AttemptResult::Error { class, message } => format!("{}: {message}", class.as_str()),
    }
}

/// `…/test`: sends one sample event of the integration's first type and reports the result.
/// Nothing is stored; the request is signed and shaped exactly like a real delivery.
pub async fn send_sample(d: &Arc<Dispatcher>, i: &Integration) -> TestReport {
    use crate::model::event::{Event, EventKind, StoredEvent};
    use serde_json::json;
    let kind = i
        .valid
        .spec
        .event_types
        .first()
        .copied()
        .unwrap_or(EventKind::CallCompleted);
    let data = match kind {
        EventKind::CallState => json!({"seq": 1, "state": "early", "direction": "inbound",
            "local": {"user_id": "u-sample", "number": "+441610000001", "device_type": "soft"},
            "remote": {"number": "+441610000002"}}),
        EventKind::RecordingCompleted => json!({"recording_id": "rec-sample", "files": []}),
        EventKind::AnalysisCompleted => json!({"score": 80, "keywords": []}),
        EventKind::IvrInput => json!({"dtmf": "1", "ivr_number": "+441610000000"}),
        EventKind::CdrBatch => {
            let end = crate::time::format_ms(now_ms());
            json!({"feed": "analytics", "window": {"start": end, "end": end}, "part": 1, "parts": 1, "items": []})
        }
        EventKind::CallCompleted | EventKind::CallUnanswered => {
            json!({"answered": kind == EventKind::CallCompleted,
            "direction": "inbound", "scope": "external", "talk_ms": 0,
            "caller": {"number": "+441610000002"}, "callee": {"number": "+441610000001"}})
        }
    };
    let now = now_ms();
    let event = Event {
        id: crate::model::ids::new_id("sample"),
        kind: if kind == EventKind::CallUnanswered {
            EventKind::CallCompleted
        } else {
            kind
        },
        tenant_id: i.tenant_id.clone().unwrap_or_default(),
        occurred_at_ms: now,
        call_id: "sample-call".into(),
        data: data.as_object().cloned().unwrap_or_default(),
    };
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
        links: d.links.as_ref(),
        now_ms: now,
        cache: None,
    };
    let rendered = render(&stored, &i.valid, &ctx);
    let request = build_request(d, i, &head, &rendered, now);
    let clock = Instant::now();
    let result = d.client.send(request, &i.valid.url).await;
    let rec = attempt_record(&result, now, clock.elapsed().as_millis() as u32);
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
