//! CSRF tokens for cookie-authenticated state-changing requests.
//!
//! A token is `<expiry>.<nonce>.<mac>` where `mac = HMAC-SHA256(CSRF_SECRET_KEY, subject|expiry|nonce)`.
//! The subject is the user id and token version, so a token is worthless for another user or
//! after a logout/password change. Nothing is stored server-side. A bearer-authenticated request
//! needs no CSRF token: browsers never attach an `Authorization` header on their own.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

/// Lifetime of a CSRF token, as v5 (1800 s).
pub const CSRF_TTL_SECS: u64 = 30 * 60;
const MAX_CSRF_TOKEN_BYTES: usize = 256;
const DOMAIN: &[u8] = b"pcap-analyzer-csrf-v1";

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct CsrfService {
    key: Vec<u8>,
}

impl std::fmt::Debug for CsrfService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfService(***)")
    }
}

impl CsrfService {
    pub fn new(key: &[u8]) -> Self {
        CsrfService { key: key.to_vec() }
    }

    fn mac(&self, subject: &str, expiry: u64, nonce: &str) -> HmacSha256 {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for part in [
            DOMAIN,
            subject.as_bytes(),
            expiry.to_string().as_bytes(),
            nonce.as_bytes(),
        ] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    pub fn issue(&self, subject: &str) -> String {
        self.issue_at(subject, crate::jwt::now_secs())
    }

    fn issue_at(&self, subject: &str, now: u64) -> String {
        let nonce: [u8; 16] = rand::rng().random();
        let nonce = URL_SAFE_NO_PAD.encode(nonce);
        let expiry = now + CSRF_TTL_SECS;
        let tag = self.mac(subject, expiry, &nonce).finalize().into_bytes();
        format!("{expiry}.{nonce}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// `true` when `token` was issued by us for `subject` and has not expired.
    pub fn verify(&self, token: &str, subject: &str) -> bool {
        self.verify_at(token, subject, crate::jwt::now_secs())
    }

    fn verify_at(&self, token: &str, subject: &str, now: u64) -> bool {
        if token.len() > MAX_CSRF_TOKEN_BYTES {
            return false;
        }
        let mut parts = token.split('.');
        let (Some(expiry), Some(nonce), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        // Constant-time comparison inside `verify_slice`.
        expiry > now && self.mac(subject, expiry, nonce).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_verifies_for_its_subject_only() {
        let s = CsrfService::new(b"k");
        let t = s.issue("user-1:0");
        assert!(s.verify(&t, "user-1:0"));
        assert!(!s.verify(&t, "user-2:0"));
        assert!(!s.verify(&t, "user-1:1"));
    }

    #[test]
    fn expired_tampered_or_foreign_tokens_fail() {
        let s = CsrfService::new(b"k");
        let t = s.issue_at("u", 1000);
        assert!(!s.verify_at(&t, "u", 1000 + CSRF_TTL_SECS + 1));
        let bumped = t.replacen(
            &(1000 + CSRF_TTL_SECS).to_string(),
            &(9_000_000_000u64).to_string(),
            1,
        );
        assert!(!s.verify_at(&bumped, "u", 1000));
        assert!(!CsrfService::new(b"other").verify_at(&t, "u", 1000));
        assert!(!s.verify("", "u"));
        assert!(!s.verify("a.b.c.d", "u"));
    }
}
