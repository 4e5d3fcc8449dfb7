//! Write-only settings: custom headers (checked, then shown only as hints) and the receiver's
//! secret.

use std::collections::BTreeMap;

/// Headers callhook sets, hop-by-hop headers (they describe one connection, not the request)
/// and headers that change what the body or the request means to the receiver or a proxy.
const RESERVED_HEADERS: [&str; 16] = [
    "x-spark-signature",
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "connection",
    "transfer-encoding",
    "upgrade",
    "keep-alive",
    "te",
    "trailer",
    "expect",
    "content-encoding",
    "proxy-authorization",
    "proxy-connection",
    "cookie",
];

const MAX_HEADERS: usize = 20;

const MAX_HEADER_VALUE: usize = 4096;

pub fn check_headers(headers: &BTreeMap<String, String>, has_secret: bool) -> Result<(), String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!("`headers`: at most {MAX_HEADERS} headers"));
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "`headers`: `{}` is not a valid header name",
                name.escape_debug()
            ));
        }
        if RESERVED_HEADERS.contains(&lower.as_str())
            || lower.starts_with("webhook-")
            || lower.starts_with("callhook-")
        {
            return Err(format!(
                "`headers`: `{name}` is set by callhook, describes the connection, or changes what the request means; it cannot be set"
            ));
        }
        if lower == "authorization" && has_secret {
            return Err(String::from(
                "`headers`: `Authorization` carries the `secret` as a bearer token; remove the header or the secret",
            ));
        }
        // Printable ASCII only: other bytes mean different things to different receivers.
        if value.len() > MAX_HEADER_VALUE
            || !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(format!(
                "`headers`: the value of `{name}` must be at most {MAX_HEADER_VALUE} printable ASCII characters"
            ));
        }
    }
    Ok(())
}

/// The last four characters of a secret, for recognising it without revealing it.
pub fn secret_hint(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// What the API shows of a custom header's value: like the secret, it is write-only (an API
/// key is as good as a password). The last four characters of a long value help recognise it;
/// a short one shows nothing.
pub fn header_hint(value: &str) -> String {
    if value.chars().count() >= 16 {
        secret_hint(value)
    } else {
        "…".to_string()
    }
}

/// A receiver secret must be usable as a bearer token.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if secret.len() < 8 || secret.len() > 512 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(String::from(
            "`secret` must be 8–512 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}
