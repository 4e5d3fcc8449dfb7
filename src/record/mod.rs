//! Recording what happened and deciding what happens next. Pure logic: the delivery stage
//! feeds it an attempt's result and stores what it decides.
//!
//! - [`classify`]: was the attempt a success, a failure worth retrying, or final (410 Gone)?
//! - [`retry`]: how long to wait before the next try (kept apart from *whether* to retry).
//! - [`health`]: when an integration counts as failing, recovered or to be disabled.

pub mod health;
pub mod retry;

use std::time::Duration;

/// The error classes recorded with failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Timeout,
    Connect,
    Tls,
    Dns,
    RefusedDestination,
    /// A response outside 2xx (3xx included: redirects are not followed).
    HttpStatus,
    Request,
    /// A broker refused the message or the credentials, or no stream takes the subject.
    Broker,
    /// The payload could not be rendered (a template that fails on this event): nothing was
    /// sent, and the delivery fails at once, since every retry would fail the same way.
    Render,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connect => "connect",
            ErrorClass::Tls => "tls",
            ErrorClass::Dns => "dns",
            ErrorClass::RefusedDestination => "refused_destination",
            ErrorClass::HttpStatus => "http_status",
            ErrorClass::Request => "request",
            ErrorClass::Broker => "broker",
            ErrorClass::Render => "render",
        }
    }
}

/// What an attempt got back.
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Response {
        status: u16,
        retry_after: Option<Duration>,
        excerpt: String,
    },
    Error {
        class: ErrorClass,
        message: String,
    },
    /// A broker confirmed the message (`detail`: where it is, such as the stream's sequence).
    Published {
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Success,
    /// 410 Gone: the receiver says the endpoint is gone for good; disable at once.
    Gone,
    /// Any other failure: retried per policy; counts toward disabling.
    Retry {
        retry_after: Option<Duration>,
    },
    /// Nothing was sent: the payload cannot be rendered. Fails the delivery without a retry.
    Unrenderable,
}

pub fn classify(result: &AttemptResult) -> Verdict {
    match result {
        AttemptResult::Response { status, .. } if (200..300).contains(status) => Verdict::Success,
        AttemptResult::Response { status: 410, .. } => Verdict::Gone,
        AttemptResult::Response {
            status,
            retry_after,
            ..
        } => Verdict::Retry {
            // Retry-After is honoured where it means something: 429 and 5xx.
            retry_after: if *status == 429 || *status >= 500 {
                *retry_after
            } else {
                None
            },
        },
        AttemptResult::Published { .. } => Verdict::Success,
        AttemptResult::Error {
            class: ErrorClass::Render,
            ..
        } => Verdict::Unrenderable,
        AttemptResult::Error { .. } => Verdict::Retry { retry_after: None },
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date, relative to `now_ms`.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v)
        .ok()?
        .timestamp_millis();
    Some(Duration::from_millis(
        when.saturating_sub(now_ms).max(0) as u64
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, retry_after: Option<u64>) -> AttemptResult {
        AttemptResult::Response {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            excerpt: String::new(),
        }
    }

    #[test]
    fn two_hundreds_succeed_gone_is_final_and_the_rest_retry() {
        assert_eq!(classify(&resp(204, None)), Verdict::Success);
        assert_eq!(classify(&resp(410, None)), Verdict::Gone);
        assert_eq!(
            classify(&resp(302, None)),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(
            classify(&resp(400, Some(9))),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(
            classify(&resp(503, Some(9))),
            Verdict::Retry {
                retry_after: Some(Duration::from_secs(9))
            }
        );
        assert_eq!(
            classify(&resp(429, Some(3))),
            Verdict::Retry {
                retry_after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        let now = crate::time::parse_rfc3339_ms("2026-11-22T10:00:00Z").unwrap_or_default();
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
