//! Security primitives: the SSRF guard for outbound requests, sealing of stored secrets, and
//! constant-time comparison.

pub mod links;
pub mod seal;
pub mod ssrf;

use subtle::ConstantTimeEq;

/// Compares two secrets without leaking, through timing, how long a prefix matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}
