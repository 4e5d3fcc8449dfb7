//! `callhook listen`: a local receiver for integrators. It answers callhook's challenge, checks
//! each delivery's Standard Webhooks signature (when given the `whsec_` secret) and prints the
//! delivery readably.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// The integration's signing secret (`whsec_…`), to verify signatures.
    #[arg(long, env = "CALLHOOK_SIGNING_SECRET")]
    pub signing_secret: Option<String>,
    /// The receiver secret of an integration with `secret_use: webex-signature` (partner
    /// feeds), to verify `X-Spark-Signature`.
    #[arg(long, env = "CALLHOOK_WEBEX_SECRET")]
    pub webex_secret: Option<String>,
}

/// What the listener checks signatures with.
#[derive(Default, Clone, Copy)]
pub struct Secrets<'a> {
    /// The `whsec_` signing secret (Standard Webhooks).
    pub signing: Option<&'a str>,
    /// The receiver secret Webex-style signatures are made with.
    pub webex: Option<&'a str>,
}

/// What the listener makes of one request: the reply, and the lines to print.
pub struct Seen {
    pub challenge: Option<String>,
    pub signature: Signature,
    pub text: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Signature {
    Valid,
    Invalid,
    Unchecked,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Reads a request as callhook sends it. Pure, so it is tested without a socket.
pub fn inspect(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    secrets: Secrets,
) -> Seen {
    if header(headers, "callhook-event-type") == "challenge" {
        let token = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("challenge")?.as_str().map(String::from));
        return Seen {
            text: "answered a challenge".into(),
            challenge: token,
            signature: Signature::Unchecked,
        };
    }
    let query = uri.query().unwrap_or("");
    let signed: &[u8] = if *method == Method::GET {
        query.as_bytes()
    } else {
        body
    };
    let standard = secrets.signing.map(|s| {
        let ts = header(headers, "webhook-timestamp").parse().unwrap_or(0);
        crate::render::sign::verify(
            s,
            header(headers, "webhook-id"),
            ts,
            signed,
            header(headers, "webhook-signature"),
        )
    });
    let webex = secrets.webex.map(|s| {
        crate::security::constant_time_eq(
            crate::render::sign::spark_signature(s, signed).as_bytes(),
            header(headers, "x-spark-signature").as_bytes(),
        )
    });
    // Every signature checked must hold.
    let signature = match (standard, webex) {
        (None, None) => Signature::Unchecked,
        (a, b) if a.unwrap_or(true) && b.unwrap_or(true) => Signature::Valid,
        _ => Signature::Invalid,
    };
    let sig = match signature {
        Signature::Valid => "signature valid",
        Signature::Invalid => "SIGNATURE INVALID",
        Signature::Unchecked => {
            "signature not checked (pass --signing-secret, or --webex-secret for X-Spark-Signature)"
        }
    };
    let payload = if *method == Method::GET {
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| format!("  {k} = {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    } else if header(headers, "content-type").starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(body)
            .map(|(k, v)| format!("  {k} = {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
    };
    let text = format!(
        "── {method} {} {} attempt {} id {} — {sig}\n{payload}",
        uri.path(),
        header(headers, "callhook-event-type"),
        header(headers, "callhook-attempt"),
        header(headers, "webhook-id"),
    );
    Seen {
        challenge: None,
        signature,
        text,
    }
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let (signing, webex) = (args.signing_secret.clone(), args.webex_secret.clone());
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (signing, webex) = (signing.clone(), webex.clone());
            async move {
                let secrets = Secrets {
                    signing: signing.as_deref(),
                    webex: webex.as_deref(),
                };
                let seen = inspect(&method, &uri, &headers, &body, secrets);
                println!("{}", seen.text);
                let resp: Response = match (seen.challenge, seen.signature) {
                    (Some(token), _) => {
                        ([(axum::http::header::CONTENT_TYPE, "text/plain")], token).into_response()
                    }
                    (None, Signature::Invalid) => StatusCode::UNAUTHORIZED.into_response(),
                    (None, _) => StatusCode::NO_CONTENT.into_response(),
                };
                resp
            }
        },
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("callhook listen: receiving on http://{addr}/ (any path); Ctrl-C to stop");
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = v.parse() {
                h.insert(*k, v);
            }
        }
        h
    }

    #[test]
    fn challenges_are_echoed_and_signatures_checked() {
        let uri: Uri = "/hook".parse().unwrap_or_default();
        let c = inspect(
            &Method::POST,
            &uri,
            &headers(&[("callhook-event-type", "challenge".into())]),
            br#"{"challenge":"abc"}"#,
            Secrets::default(),
        );
        assert_eq!(c.challenge.as_deref(), Some("abc"));

        let secret = crate::render::sign::generate_secret();
        let key = crate::render::sign::decode_secret(&secret).unwrap_or_default();
        let body = br#"{"id":"e1"}"#;
        let sig =
            crate::render::sign::signature_header([key.as_slice()], "dlv_1", 1700000000, body);
        let h = headers(&[
            ("callhook-event-type", "call.completed".into()),
            ("webhook-id", "dlv_1".into()),
            ("webhook-timestamp", "1700000000".into()),
            ("webhook-signature", sig),
        ]);
        let signing = Secrets {
            signing: Some(&secret),
            webex: None,
        };
        let seen = inspect(&Method::POST, &uri, &h, body, signing);
        assert_eq!(seen.signature, Signature::Valid);
        assert!(seen.text.contains("\"id\": \"e1\""));
        assert_eq!(
            inspect(&Method::POST, &uri, &h, b"{}", signing).signature,
            Signature::Invalid
        );
        // X-Spark-Signature, checked with the receiver secret.
        let mut h = h;
        let spark = crate::render::sign::spark_signature("partner-secret", body);
        h.insert(
            "x-spark-signature",
            spark
                .parse()
                .unwrap_or(axum::http::HeaderValue::from_static("")),
        );
        let webex = Secrets {
            signing: None,
            webex: Some("partner-secret"),
        };
        assert_eq!(
            inspect(&Method::POST, &uri, &h, body, webex).signature,
            Signature::Valid
        );
        assert_eq!(
            inspect(&Method::POST, &uri, &h, b"{}", webex).signature,
            Signature::Invalid
        );
    }
}
