//! Access tokens: JWT signed with HS256 and `SECRET_KEY`.
//!
//! The algorithm is pinned (no `none`, no RS/HS confusion, ASVS 9.1.2); `exp`, `iat`, `iss`,
//! `aud` and `sub` are required (ASVS 9.2.1, 9.2.3). `tv` carries the user's token version;
//! the caller compares it with the database so a password change, block or delete revokes
//! every earlier token at once (ASVS 7.4.1).

use crate::SecurityError;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

pub const ISSUER: &str = "pcap-analyzer";
pub const AUDIENCE: &str = "pcap-analyzer-api";
/// Token lifetime: 30 minutes, as v5.
pub const TOKEN_TTL_SECS: u64 = 30 * 60;
/// Clock skew tolerated on `exp`/`nbf` between Lambda instances.
const LEEWAY_SECS: u64 = 5;
/// Longest token we even try to decode; ours are about 400 bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub username: String,
    pub role: String,
    /// Token version of the user when the token was issued.
    pub tv: i32,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// Unique id, for audit logs.
    pub jti: String,
}

impl Claims {
    pub fn user_id(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.sub).ok()
    }
}

/// Why a token was refused. All of them are a 401 to the client; the kind goes to the log.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token malformed")]
    Malformed,
    #[error("token signature or algorithm invalid")]
    BadSignature,
    #[error("token claims invalid: {0}")]
    BadClaims(String),
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

/// Issues and checks tokens; build it once at cold start.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenService(HS256)")
    }
}

impl TokenService {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        TokenService {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        username: &str,
        role: &str,
        token_version: i32,
    ) -> Result<IssuedToken, SecurityError> {
        let now = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            username: username.to_string(),
            role: role.to_string(),
            tv: token_version,
            iat: now,
            nbf: now,
            exp: now + TOKEN_TTL_SECS,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: Uuid::new_v4().to_string(),
        };
        self.sign(&claims).map(|token| IssuedToken {
            token,
            expires_in: TOKEN_TTL_SECS,
        })
    }

    /// Signs arbitrary claims; tests use it to forge expired or foreign tokens.
    pub fn sign(&self, claims: &Claims) -> Result<String, SecurityError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(SecurityError::Signing)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => TokenError::Expired,
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName => TokenError::BadSignature,
                ErrorKind::InvalidIssuer => TokenError::BadClaims("iss".into()),
                ErrorKind::InvalidAudience => TokenError::BadClaims("aud".into()),
                ErrorKind::MissingRequiredClaim(c) => TokenError::BadClaims(format!("missing {c}")),
                _ => TokenError::Malformed,
            })
    }
}

pub fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-test-key";

    fn service() -> TokenService {
        TokenService::new(KEY)
    }

    fn valid_claims() -> Claims {
        let now = now_secs();
        Claims {
            sub: Uuid::new_v4().to_string(),
            username: "alice".into(),
            role: "user".into(),
            tv: 0,
            iat: now,
            nbf: now,
            exp: now + 60,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: "j".into(),
        }
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let id = Uuid::new_v4();
        let t = service().issue(id, "alice", "admin", 3).unwrap();
        let c = service().verify(&t.token).unwrap();
        assert_eq!((c.user_id(), c.role.as_str(), c.tv), (Some(id), "admin", 3));
        assert_eq!(c.exp - c.iat, TOKEN_TTL_SECS);
        assert_eq!(t.expires_in, 1800);
    }

    #[test]
    fn alg_none_token_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid_claims()).unwrap());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(service().verify(&token).is_err(), "{token}");
        }
    }

    #[test]
    fn flipped_signature_bit_is_refused() {
        let token = service().sign(&valid_claims()).unwrap();
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[0] ^= 1;
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(service().verify(&forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn token_signed_with_another_key_is_refused() {
        let other = TokenService::new(b"another-key-another-key-another-key!!");
        let token = other.sign(&valid_claims()).unwrap();
        assert_eq!(service().verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn token_with_other_hmac_algorithm_is_refused() {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &valid_claims(),
            &EncodingKey::from_secret(KEY),
        )
        .unwrap();
        assert_eq!(service().verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_token_is_refused() {
        let mut c = valid_claims();
        c.iat -= 3600;
        c.nbf -= 3600;
        c.exp = now_secs() - 60;
        let token = service().sign(&c).unwrap();
        assert_eq!(service().verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let mut c = valid_claims();
        c.aud = "someone-else".into();
        assert!(matches!(
            service().verify(&service().sign(&c).unwrap()),
            Err(TokenError::BadClaims(_))
        ));
        let mut c = valid_claims();
        c.iss = "evil".into();
        assert!(matches!(
            service().verify(&service().sign(&c).unwrap()),
            Err(TokenError::BadClaims(_))
        ));
    }

    #[test]
    fn oversized_or_garbage_tokens_are_malformed() {
        assert_eq!(
            service().verify(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::Malformed)
        );
        assert!(service().verify("' OR 1=1 --").is_err());
    }
}
