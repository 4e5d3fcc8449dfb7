//! Signed, expiring recording URLs:
//! `…/v1/recordings/{file_id}/content?tenant_id=<tenant>&expires=<epoch s>&signature=<hex>`,
//! where the signature is HMAC-SHA256 over the tenant, the file id and the expiry (NUL between
//! them, so no two triples sign alike) with a key derived from the sealing key. A file id is
//! only unique within its tenant, and a link opens only that tenant's file. Anyone holding the
//! URL can download the file until it expires; nobody can forge one or point it elsewhere.

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

    fn sign(&self, tenant_id: &str, file_id: &str, expires_s: i64) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(tenant_id.as_bytes());
        mac.update(b"\0");
        mac.update(file_id.as_bytes());
        mac.update(b"\0");
        mac.update(expires_s.to_string().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The public base URL the node is reached at (`CALLHOOK_PUBLIC_URL`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A URL for the tenant's `file_id`, valid until `now_ms + LINK_TTL_MS`.
    pub fn url(&self, tenant_id: &str, file_id: &str, now_ms: i64) -> String {
        let expires = (now_ms + LINK_TTL_MS) / 1000;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "{}/v1/recordings/{}/content?tenant_id={}&expires={expires}&signature={}",
            self.base,
            enc(file_id),
            enc(tenant_id),
            self.sign(tenant_id, file_id, expires)
        )
    }

    /// Checks a download: the signature first (403), then the expiry (410). `expires` is the
    /// query parameter as sent: decimal digits only, no sign and no leading zero, so one expiry
    /// has exactly one spelling (and no value overflows).
    pub fn verify(
        &self,
        tenant_id: &str,
        file_id: &str,
        expires: &str,
        signature: &str,
        now_ms: i64,
    ) -> Result<(), LinkError> {
        let canonical = !expires.is_empty()
            && expires.len() <= 12
            && expires.bytes().all(|b| b.is_ascii_digit())
            && !expires.starts_with('0');
        let Some(expires_s) = canonical.then(|| expires.parse::<i64>().ok()).flatten() else {
            return Err(LinkError::BadSignature);
        };
        let expected = self.sign(tenant_id, file_id, expires_s);
        if !super::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(LinkError::BadSignature);
        }
        if expires_s <= now_ms / 1000 {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String) {
        let q = url.split_once('?').map(|x| x.1).unwrap_or_default();
        let mut expires = String::new();
        let mut sig = String::new();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            match k.as_ref() {
                "expires" => expires = v.into_owned(),
                "signature" => sig = v.into_owned(),
                _ => {}
            }
        }
        (expires, sig)
    }

    #[test]
    fn urls_verify_until_they_expire_and_cannot_be_altered() {
        let links = Links::new("https://hooks.example.com/", [3; 32]);
        let url = links.url("acme", "rec-1", 1_000_000);
        assert!(url.starts_with(
            "https://hooks.example.com/v1/recordings/rec-1/content?tenant_id=acme&expires=2800&signature="
        ));
        let (exp, sig) = parts(&url);
        assert_eq!(links.verify("acme", "rec-1", &exp, &sig, 1_000_000), Ok(()));
        assert_eq!(
            links.verify("acme", "rec-1", &exp, &sig, 2_800_000),
            Err(LinkError::Expired)
        );
        assert_eq!(
            links.verify("acme", "rec-2", &exp, &sig, 1_000_000),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            links.verify("acme", "rec-1", "2801", &sig, 1_000_000),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn a_link_is_bound_to_its_tenant() {
        let links = Links::new("https://hooks.example.com", [3; 32]);
        let (exp, sig) = parts(&links.url("acme", "rec-1", 1_000_000));
        assert_eq!(
            links.verify("globex", "rec-1", &exp, &sig, 1_000_000),
            Err(LinkError::BadSignature)
        );
        // The separator keeps ("a.b", "c") and ("a", "b.c") apart.
        let (exp, sig) = parts(&links.url("a", "b.c", 1_000_000));
        assert_eq!(
            links.verify("a.b", "c", &exp, &sig, 1_000_000),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn expires_has_one_spelling_and_cannot_overflow() {
        let links = Links::new("https://hooks.example.com", [3; 32]);
        let (exp, sig) = parts(&links.url("acme", "rec-1", 1_000_000));
        for other in [
            format!("0{exp}"),
            format!("+{exp}"),
            format!(" {exp}"),
            "9223372036854775807".to_string(),
            "99999999999999999999999".to_string(),
            String::new(),
        ] {
            assert_eq!(
                links.verify("acme", "rec-1", &other, &sig, 1_000_000),
                Err(LinkError::BadSignature),
                "{other:?}"
            );
        }
    }
}
