//! Sealing of integration secrets at rest (ChaCha20-Poly1305, random nonce per value).
//!
//! A secret callhook must send (the receiver's bearer secret, the signing secret) cannot be
//! hashed, so it is stored encrypted under a key that lives outside the database: a key file in
//! the data dir (created 0600 at first start) or `CALLHOOK_SEAL_KEY`. A copy of the database
//! alone does not reveal any secret.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    key: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealing key: {0}")]
    Key(String),
    #[error("a sealed value could not be opened (wrong key or corrupt data)")]
    Open,
}

impl Sealer {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            key,
        }
    }

    /// The key from `CALLHOOK_SEAL_KEY` when given, else from (or into) `<data_dir>/seal.key`.
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> Result<Self, SealError> {
        if let Some(b64) = configured {
            return Ok(Self::from_key(decode_key(b64.trim())?));
        }
        let path = data_dir.join("seal.key");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| SealError::Key(format!("{}: {e}", path.display())))?;
            return Ok(Self::from_key(decode_key(text.trim())?));
        }
        let key = super::random_bytes::<32>();
        write_private(&path, STANDARD.encode(key).as_bytes())
            .map_err(|e| SealError::Key(format!("{}: {e}", path.display())))?;
        Ok(Self::from_key(key))
    }

    /// A separate key for another purpose (`label`), derived so one secret serves all:
    /// HMAC-SHA256(sealing key, label).
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        match <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(label.as_bytes());
                mac.finalize().into_bytes().into()
            }
            Err(_) => [0; 32],
        }
    }

    /// A value that names this key without revealing it (a key derived for nothing else), so
    /// nodes can tell whether they share a key.
    pub fn fingerprint(&self) -> Vec<u8> {
        self.derive_key("key-fingerprint").to_vec()
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = super::random_bytes::<12>();
        let nonce = Nonce::from_slice(&nonce_bytes);
        // Encryption with a valid key and nonce cannot fail for in-memory inputs.
        let ct = self.cipher.encrypt(nonce, plaintext).unwrap_or_default();
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 12 + 16 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = sealed.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SealError::Open)
    }
}

fn decode_key(b64: &str) -> Result<[u8; 32], SealError> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|e| SealError::Key(format!("not base64: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| SealError::Key("must decode to exactly 32 bytes".into()))
}

fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let a = Sealer::from_key([7; 32]);
        let sealed = a.seal(b"123ExampleCustomer321");
        assert_ne!(&sealed[12..], b"123ExampleCustomer321");
        assert_eq!(
            a.open(&sealed).ok().as_deref(),
            Some(&b"123ExampleCustomer321"[..])
        );
        assert!(Sealer::from_key([8; 32]).open(&sealed).is_err());
        assert!(a.open(b"short").is_err());
    }
}
