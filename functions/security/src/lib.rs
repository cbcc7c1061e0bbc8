//! Security primitives of pcap-analyzer, free of I/O so they are fast to test:
//!
//! - [`password`]: argon2id hashing (OWASP parameters), verification with rehash detection, a
//!   dummy verification that gives unknown users the same timing, and the password policy.
//! - [`jwt`]: HS256 access tokens with `exp`, `iat`, `iss`, `aud`, `role` and the token version
//!   `tv` that revokes every earlier token of a user when it changes.
//! - [`csrf`]: HMAC tokens bound to the user and token version, for cookie-authenticated requests.
#![deny(unsafe_code)]

pub mod csrf;
pub mod jwt;
pub mod password;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SecurityError {
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("stored password hash is unreadable: {0}")]
    BadStoredHash(String),
    #[error("token signing failed: {0}")]
    Signing(#[source] jsonwebtoken::errors::Error),
}
