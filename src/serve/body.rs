//! Request bodies: each route has the limit it needs, a declared `Content-Length` over it is
//! refused at once (413) before a byte is read, handlers decide who may call them before they
//! read the body ([`LazyBody`] is read on demand), reading has a deadline, and the bodies held in
//! memory at once share one budget, so many large bodies cannot add up to the machine's memory.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::Router;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Settings and actions (integrations, tenants, tokens, partners): a generous integration is a
/// few KiB; the largest valid one (32 conditions of 1 000 values) about 200 KiB.
pub const SETTINGS_BODY_BYTES: usize = 256 * 1024;
/// Console forms and the sign-in form.
pub const FORM_BODY_BYTES: usize = 32 * 1024;
/// The console's integration form and template preview: a 16 KiB template and a 64 KiB
/// certificate chain and key, each up to three times longer once form-encoded.
pub const INTEGRATION_FORM_BODY_BYTES: usize = 512 * 1024;

/// The largest body a route reads, set by [`limited`] for the routes it wraps.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Wraps a router's routes in a body limit: a declared length over it is refused at once, and
/// every extractor (JSON, forms) stops reading past it.
pub fn limited<S: Clone + Send + Sync + 'static>(router: Router<S>, limit: usize) -> Router<S> {
    router
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(
            move |mut req: Request, next: Next| async move {
                if declared_length(&req).is_some_and(|n| n > limit as u64) {
                    return too_large(limit).into_response();
                }
                req.extensions_mut().insert(BodyLimit(limit));
                next.run(req).await
            },
        ))
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("this endpoint takes bodies of at most {limit} bytes; split the request into smaller ones"),
    )
}

/// Bytes of request bodies held in memory at once, across all requests.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total: usize,
    /// How long a body may take to arrive.
    pub deadline: Duration,
}

impl BodyBudget {
    pub fn new(total: usize, deadline: Duration) -> BodyBudget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
            deadline,
        }
    }

    /// Bytes held against the budget now.
    pub fn held(&self) -> usize {
        self.total - self.permits.available_permits()
    }

    /// A share of `bytes`, or 503 at once when the budget is spent: shedding the request costs
    /// nothing, while queueing it would hold its connection and socket buffers meanwhile.
    fn share(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(bytes.clamp(1, self.total)).unwrap_or(u32::MAX);
        self.permits.clone().try_acquire_many_owned(n).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is reading as many request bodies as it can hold; send the request again in a second",
            )
        })
    }
}

/// A request body, read only when the handler asks for it (after deciding the caller may send
/// it).
pub struct LazyBody(Pending);

enum Pending {
    Unread {
        body: Body,
        declared: Option<u64>,
        limit: usize,
    },
    Ready(Value),
}

/// A body read, holding its share of the budget until dropped.
pub struct Bytes {
    pub bytes: Vec<u8>,
    pub share: Option<OwnedSemaphorePermit>,
}

/// A body read and parsed, holding its share of the budget until dropped.
pub struct ReadBody {
    pub value: Value,
    _share: Option<OwnedSemaphorePermit>,
}

impl ReadBody {
    /// The value and the share of the budget it holds (keep the share while the value lives).
    pub fn split(self) -> (Value, Option<OwnedSemaphorePermit>) {
        (self.value, self._share)
    }
}

impl<S: Send + Sync> FromRequest<S> for LazyBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = declared_length(&req);
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(SETTINGS_BODY_BYTES, |l| l.0);
        Ok(LazyBody(Pending::Unread {
            body: req.into_body(),
            declared,
            limit,
        }))
    }
}

impl LazyBody {
    /// A body that is already a value (the console hands its forms to the API handlers).
    pub fn ready(v: Value) -> LazyBody {
        LazyBody(Pending::Ready(v))
    }

    /// Reads the body: 413 past the route's limit, 400 for a body that does not arrive in
    /// time, 503 when the budget stays spent.
    pub async fn bytes(self, budget: &BodyBudget) -> Result<Bytes, ApiError> {
        let (body, declared, limit) = match self.0 {
            Pending::Ready(value) => {
                let bytes = serde_json::to_vec(&value).map_err(ApiError::internal)?;
                return Ok(Bytes { bytes, share: None });
            }
            Pending::Unread {
                body,
                declared,
                limit,
            } => (body, declared, limit),
        };
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        // A body of unknown length may be as long as the limit.
        let share = budget.share(declared.map_or(limit, |n| n as usize))?;
        let bytes = tokio::time::timeout(budget.deadline, collect(body, limit))
            .await
            .map_err(|_| body_timeout())??;
        Ok(Bytes {
            bytes,
            share: Some(share),
        })
    }

    /// Reads and parses a JSON body ([`LazyBody::bytes`], then 400 for an empty body or one
    /// that is not JSON).
    pub async fn read(self, budget: &BodyBudget) -> Result<ReadBody, ApiError> {
        if let Pending::Ready(value) = self.0 {
            return Ok(ReadBody {
                value,
                _share: None,
            });
        }
        let Bytes { bytes, share } = self.bytes(budget).await?;
        // Parsed, a body takes many times its size (a `0,` of two bytes becomes a 32-byte
        // value in a growing array): the parse takes its estimated share of the budget too,
        // so what the budget bounds is memory, not bytes on the wire.
        let mut share = share;
        if let Some(held) = share.as_mut() {
            let extra = parsed_estimate(&bytes);
            if held.num_permits().saturating_add(extra) > budget.total {
                // It could never be served, not even alone.
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_complex",
                    format!(
                        "the body holds about {} JSON values, more than this server parses at once (CALLHOOK_BODY_MEMORY_BYTES); split it into smaller requests",
                        extra / PARSED_BYTES_PER_VALUE
                    ),
                ));
            }
            held.merge(budget.share(extra)?);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "empty_body",
                "the body is empty; send a JSON object",
            ));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        })?;
        drop(bytes);
        Ok(ReadBody {
            value,
            _share: share,
        })
    }

    /// [`LazyBody::read`], where an empty body reads as `{}` (actions whose body is optional).
    pub async fn read_optional(self, budget: &BodyBudget) -> Result<ReadBody, ApiError> {
        match self.read(budget).await {
            Err(e) if e.code == "empty_body" => Ok(ReadBody {
                value: Value::Object(Default::default()),
                _share: None,
            }),
            other => other,
        }
    }
}

/// What one JSON value costs parsed and handled (measured: an 8 MiB array of 4 million zeros
/// peaks at about 130 bytes a value, with the array's growth and the event built from it).
const PARSED_BYTES_PER_VALUE: usize = 128;

/// Bytes a JSON document takes once parsed, over its own size, counted by the characters that
/// open or separate values (an over-estimate inside strings).
fn parsed_estimate(bytes: &[u8]) -> usize {
    let values = bytes
        .iter()
        .filter(|b| matches!(b, b'[' | b'{' | b',' | b':'))
        .count();
    values.saturating_mul(PARSED_BYTES_PER_VALUE)
}

fn body_timeout() -> ApiError {
    ApiError::bad_request(
        "body_timeout",
        "the body did not arrive in time (CALLHOOK_BODY_TIMEOUT_MS); send it whole and promptly",
    )
}

async fn collect(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            let inner = e.into_inner();
            if inner.is::<tower_http::timeout::TimeoutError>() {
                body_timeout()
            } else {
                ApiError::bad_request("unreadable_body", format!("the body stopped: {inner}"))
            }
        })?;
        if out.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Deserialises a typed input from a body, with `status` for shape errors. The message names
/// the field that did not fit (`delivery.timeout_ms: invalid type: …`), which serde alone does
/// not.
pub fn typed<T: serde::de::DeserializeOwned>(
    v: Value,
    status: StatusCode,
    code: &'static str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let message = match path.as_str() {
            "." | "" => e.into_inner().to_string(),
            _ => format!("{path}: {}", e.into_inner()),
        };
        ApiError::new(status, code, message)
    })
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.shift_remove(&k);
                    } else {
                        merge_patch(t.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other,
    }
}

/// The merge patch that turns `from` into `to` (the inverse of [`merge_patch`]): keys `to`
/// lacks become `null`. Lets a whole-form edit go through the same PATCH path as the API.
/// (A `null` inside `to` cannot be expressed in a merge patch; settings never hold one.)
pub fn diff_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut patch = serde_json::Map::new();
            for k in f.keys().filter(|k| !t.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            for (k, v) in t {
                match f.get(k) {
                    Some(old) if old == v => {}
                    Some(old) => {
                        patch.insert(k.clone(), diff_patch(old, v));
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        (_, to) => to.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": 1, "h": {"x": "1", "y": "2"}, "l": [1, 2]});
        merge_patch(
            &mut t,
            json!({"a": null, "h": {"x": null, "z": "3"}, "l": [3]}),
        );
        assert_eq!(t, json!({"h": {"y": "2", "z": "3"}, "l": [3]}));
    }

    #[test]
    fn diff_patch_inverts_merge_patch() {
        let from = json!({"a": 1, "h": {"x": "1", "y": "2"}, "l": [1, 2], "gone": {"k": 1}});
        let to = json!({"a": 2, "h": {"y": "2", "z": "3"}, "l": [1, 2], "new": {"k": [1]}});
        let patch = diff_patch(&from, &to);
        assert_eq!(
            patch,
            json!({"gone": null, "a": 2, "h": {"x": null, "z": "3"}, "new": {"k": [1]}})
        );
        let mut applied = from.clone();
        merge_patch(&mut applied, patch);
        assert_eq!(applied, to);
    }
}
