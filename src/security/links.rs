//! Signed, expiring recording URLs: `…/v1/recordings/{file_id}/content?expires=<epoch s>&signature=<hex>`
//! where the signature is HMAC-SHA256 over `file_id.expires` with a key derived from the sealing
//! key. Anyone holding the URL can download the file until it expires; nobody can forge one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a recording URL works after the attempt that carries it is sent.
pub const LINK_TTL_MS: i64 = 30 * 60 * 1000;

#[derive(Clone)]
pub struct Links {
    base: String,
    key: [u8; 32],
}

#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    BadSignature,
    Expired,
}

impl Links {
    pub fn new(base: &str, key: [u8; 32]) -> Links {
        Links {
            base: base.trim_end_matches('/').to_string(),
            key,
        }
    }

    fn sign(&self, file_id: &str, expires_s: i64) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(file_id.as_bytes());
        mac.update(b".");
        mac.update(expires_s.to_string().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A URL for `file_id` valid until `now_ms + LINK_TTL_MS`.
    pub fn url(&self, file_id: &str, now_ms: i64) -> String {
        let expires = (now_ms + LINK_TTL_MS) / 1000;
        let id = url::form_urlencoded::byte_serialize(file_id.as_bytes()).collect::<String>();
        format!(
            "{}/v1/recordings/{id}/content?expires={expires}&signature={}",
            self.base,
            self.sign(file_id, expires)
        )
    }

    /// Checks a download: the signature first (403), then the expiry (410).
    pub fn verify(
        &self,
        file_id: &str,
        expires_s: i64,
        signature: &str,
        now_ms: i64,
    ) -> Result<(), LinkError> {
        let expected = self.sign(file_id, expires_s);
        if !super::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(LinkError::BadSignature);
        }
        if expires_s * 1000 <= now_ms {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (i64, String) {
        let q = url.split_once('?').map(|x| x.1).unwrap_or_default();
        let mut expires = 0;
        let mut sig = String::new();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            match k.as_ref() {
                "expires" => expires = v.parse().unwrap_or(0),
                "signature" => sig = v.into_owned(),
                _ => {}
            }
        }
        (expires, sig)
    }

    #[test]
    fn urls_verify_until_they_expire_and_cannot_be_altered() {
        let links = Links::new("https://hooks.example.com/", [3; 32]);
        let url = links.url("rec-1", 1_000_000);
        assert!(url.starts_with(
            "https://hooks.example.com/v1/recordings/rec-1/content?expires=2800&signature="
        ));
        let (exp, sig) = parts(&url);
        assert_eq!(links.verify("rec-1", exp, &sig, 1_000_000), Ok(()));
        assert_eq!(
            links.verify("rec-1", exp, &sig, 2_800_000),
            Err(LinkError::Expired)
        );
        assert_eq!(
            links.verify("rec-2", exp, &sig, 1_000_000),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            links.verify("rec-1", exp + 1, &sig, 1_000_000),
            Err(LinkError::BadSignature)
        );
    }
}
