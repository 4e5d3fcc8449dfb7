//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(key, "id.ts.body")>`,
//! where the key is the base64 part of a `whsec_` secret. During a rotation every live key signs,
//! space-separated, so receivers holding either secret verify.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A new signing secret: `whsec_` and 24 random bytes in base64.
pub fn generate_secret() -> String {
    format!(
        "whsec_{}",
        STANDARD.encode(crate::security::random_bytes::<24>())
    )
}

pub use crate::security::decode_secret;

fn sign_one(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value for `body`, one signature per key.
pub fn signature_header<'a>(
    keys: impl IntoIterator<Item = &'a [u8]>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    keys.into_iter()
        .map(|k| sign_one(k, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Receiver side: whether any signature in `header` was made with `secret`. Compared in
/// constant time.
pub fn verify(secret: &str, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(key) = decode_secret(secret) else {
        return false;
    };
    let expected = sign_one(&key, msg_id, timestamp, body);
    header
        .split(' ')
        .any(|sig| crate::security::constant_time_eq(sig.as_bytes(), expected.as_bytes()))
}

/// Webex's `X-Spark-Signature`: the hex HMAC-SHA1 of the raw body, keyed with the receiver's
/// secret as it was given (Webex never sends the secret itself).
pub fn spark_signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_signatures_match_the_hmac_sha1_reference_vector() {
        // RFC 2202, test case 2.
        assert_eq!(
            spark_signature("Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let header = signature_header(
            decode_secret(secret).as_deref(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &header
        ));
        assert!(!verify(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &header
        ));
    }

    #[test]
    fn rotation_signs_with_every_key() {
        let (a, b) = (generate_secret(), generate_secret());
        let keys = [
            decode_secret(&a).unwrap_or_default(),
            decode_secret(&b).unwrap_or_default(),
        ];
        let h = signature_header(keys.iter().map(Vec::as_slice), "m", 1, b"x");
        assert_eq!(h.split(' ').count(), 2);
        assert!(verify(&a, "m", 1, b"x", &h) && verify(&b, "m", 1, b"x", &h));
    }
}
