//! Password hashing and policy.
//!
//! Argon2id with m = 19456 KiB, t = 2, p = 1: the OWASP Password Storage Cheat Sheet minimum.
//! A hash made with other parameters still verifies, and [`Verified::needs_rehash`] tells the
//! caller to store a new hash, so raising the cost later upgrades users as they log in.

use crate::SecurityError;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use std::sync::OnceLock;

pub const ARGON2_M_COST_KIB: u32 = 19_456;
pub const ARGON2_T_COST: u32 = 2;
pub const ARGON2_P_COST: u32 = 1;

/// Policy bounds (DESIGN "Security model"): 12 characters at least; 128 at most so nobody
/// can make us hash megabytes.
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Length of the passwords we generate (brise-glace admin, admin-created users, resets).
pub const GENERATED_PASSWORD_CHARS: usize = 24;

fn hasher() -> Argon2<'static> {
    // The parameters are constants inside Argon2's accepted ranges, so this cannot fail.
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash_password(password: &str) -> Result<String, SecurityError> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| SecurityError::Hashing(e.to_string()))
}

/// A successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The stored hash uses other parameters than today's: store a fresh hash.
    pub needs_rehash: bool,
}

/// Checks `password` against a stored hash: an argon2 PHC string, or a bcrypt hash imported
/// from v4/v5 (`$2b$12$...`). `Ok(None)` is a wrong password.
pub fn verify_password(
    stored_hash: &str,
    password: &str,
) -> Result<Option<Verified>, SecurityError> {
    if is_bcrypt(stored_hash) {
        return verify_bcrypt(stored_hash, password);
    }
    let parsed =
        PasswordHash::new(stored_hash).map_err(|e| SecurityError::BadStoredHash(e.to_string()))?;
    match hasher().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(Some(Verified {
            needs_rehash: !has_current_params(&parsed),
        })),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(None),
        Err(e) => Err(SecurityError::BadStoredHash(e.to_string())),
    }
}

/// bcrypt's modular-crypt prefixes: `2b` (v5's Python `bcrypt`), `2a` and `2y` (older writers).
const BCRYPT_PREFIXES: [&str; 3] = ["$2b$", "$2a$", "$2y$"];

fn is_bcrypt(stored_hash: &str) -> bool {
    BCRYPT_PREFIXES.iter().any(|p| stored_hash.starts_with(p))
}

/// v5 hashed with bcrypt (cost 12), which only ever reads the first 72 bytes of a password;
/// `bcrypt::verify` truncates the same way, so every v5 password still matches. A match always
/// asks for a rehash: the account moves to argon2id at its first login.
fn verify_bcrypt(stored_hash: &str, password: &str) -> Result<Option<Verified>, SecurityError> {
    match bcrypt::verify(password, stored_hash) {
        Ok(true) => Ok(Some(Verified { needs_rehash: true })),
        Ok(false) => Ok(None),
        Err(e) => Err(SecurityError::BadStoredHash(format!("bcrypt: {e}"))),
    }
}

fn has_current_params(parsed: &PasswordHash) -> bool {
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    match Params::try_from(parsed) {
        Ok(p) => {
            p.m_cost() == ARGON2_M_COST_KIB
                && p.t_cost() == ARGON2_T_COST
                && p.p_cost() == ARGON2_P_COST
        }
        Err(_) => false,
    }
}

/// Runs one verification against a fixed hash and throws the answer away, so a login for an
/// unknown user costs the same time as one with a wrong password (no user enumeration by timing).
pub fn dummy_verify(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| {
        hash_password(&generate_password(GENERATED_PASSWORD_CHARS)).unwrap_or_default()
    });
    let _ = verify_password(hash, password);
}

/// Why a password is refused; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyViolation(pub String);

/// Fewest distinct characters a password may be made of ("aaaaaaaaaaaa" is long, not strong).
pub const MIN_DISTINCT_CHARS: usize = 6;

/// Characters no password may hold: control characters (a paste accident, or worse).
pub fn is_refused_char(c: char) -> bool {
    c.is_control()
}

/// Passwords seen in every breach list. The check is on the password with digits and symbols
/// stripped and lower-cased, which also catches "Password2024!" and friends.
pub const COMMON_WORDS: &[&str] = &[
    "password",
    "passwort",
    "motdepasse",
    "qwerty",
    "qwertyuiop",
    "azerty",
    "azertyuiop",
    "letmein",
    "welcome",
    "admin",
    "administrator",
    "changeme",
    "iloveyou",
    "dragon",
    "monkey",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "master",
    "shadow",
    "superman",
    "trustno",
    "abc",
    "abcdef",
    "abcdefgh",
    "secret",
    "login",
    "pcapanalyzer",
    "pcap",
    "wireshark",
    "test",
    "testtest",
    "user",
    "root",
    "toor",
    "hello",
    "freedom",
];

/// The password policy: 12–128 characters, enough variety, not built on the username or email,
/// not a common password with digits around it. No composition rules (ASVS 5 6.2.5).
pub fn check_policy(password: &str, username: &str, email: &str) -> Result<(), PolicyViolation> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PolicyViolation(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PolicyViolation(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    if password.chars().any(is_refused_char) {
        return Err(PolicyViolation(
            "password must not contain control characters".into(),
        ));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Err(PolicyViolation("password is too repetitive".into()));
    }
    let lower = password.to_lowercase();
    let letters: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.is_empty() || COMMON_WORDS.contains(&letters.as_str()) {
        return Err(PolicyViolation("password is too common".into()));
    }
    if is_sequence(&lower) {
        return Err(PolicyViolation(
            "password is a keyboard or number sequence".into(),
        ));
    }
    // A password built on the username or email is guessed first; one that merely contains
    // them (e.g. "MySecureAdminPassword123!" for admin) is fine when the rest is strong.
    for (personal, what) in [
        (username.to_lowercase(), "username"),
        (
            email.split('@').next().unwrap_or("").to_lowercase(),
            "email address",
        ),
    ] {
        if personal.chars().count() >= 3
            && lower.contains(&personal)
            && weak_remainder(&lower.replace(&personal, ""))
        {
            return Err(PolicyViolation(format!(
                "password is too close to the {what}"
            )));
        }
    }
    Ok(())
}

fn weak_remainder(rest: &str) -> bool {
    let mut distinct: Vec<char> = rest.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    rest.chars().count() < 8 || distinct.len() < 5 || is_sequence(rest)
}

fn is_sequence(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 1
        && b.windows(2)
            .all(|w| w[1] == w[0].wrapping_add(1) || w[1] == w[0].wrapping_sub(1))
}

/// A random password from an alphabet without look-alike characters (no 0/O, 1/l/I), which
/// always passes [`check_policy`].
pub fn generate_password(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.!";
    let mut rng = rand::rng();
    loop {
        let candidate: String = (0..len.max(MIN_PASSWORD_CHARS))
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        if check_policy(&candidate, "", "").is_ok() {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }

    #[test]
    fn right_password_verifies_and_wrong_one_does_not() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert_eq!(
            verify_password(&h, "correct horse battery staple").unwrap(),
            Some(Verified {
                needs_rehash: false
            })
        );
        assert_eq!(
            verify_password(&h, "correct horse battery stapler").unwrap(),
            None
        );
    }

    /// Made by Python's `bcrypt` 5.0 (`hashpw(b"Legacy-V5-Password-42", gensalt(12))`), as v5
    /// stored passwords.
    const V5_BCRYPT_HASH: &str = "$2b$12$8F5x0Ktikz56eqxr4hLlYuGgNS6zSVOJWT91iZ2i0kcyi8Bw3FTJe";

    #[test]
    fn v5_bcrypt_hash_verifies_and_asks_for_a_rehash_to_argon2id() {
        assert_eq!(
            verify_password(V5_BCRYPT_HASH, "Legacy-V5-Password-42").unwrap(),
            Some(Verified { needs_rehash: true })
        );
        assert_eq!(
            verify_password(V5_BCRYPT_HASH, "Legacy-V5-Password-43").unwrap(),
            None
        );
    }

    #[test]
    fn older_bcrypt_prefixes_verify_too() {
        // Openwall's crypt_blowfish test vector ("U*U", $2a$, cost 5).
        let h = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(verify_password(h, "U*U").unwrap().is_some());
        let y = h.replacen("$2a$", "$2y$", 1);
        assert!(verify_password(&y, "U*U").unwrap().is_some());
    }

    #[test]
    fn damaged_bcrypt_hash_is_an_error_not_a_wrong_password() {
        let damaged = &V5_BCRYPT_HASH[..40];
        assert!(matches!(
            verify_password(damaged, "Legacy-V5-Password-42"),
            Err(SecurityError::BadStoredHash(_))
        ));
    }

    #[test]
    fn hash_with_old_parameters_asks_for_a_rehash() {
        let params = Params::new(8192, 1, 1, None).unwrap();
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse battery staple")
            .unwrap()
            .to_string();
        assert_eq!(
            verify_password(&old, "correct horse battery staple").unwrap(),
            Some(Verified { needs_rehash: true })
        );
    }

    #[test]
    fn garbage_stored_hash_is_an_error_not_a_match() {
        assert!(verify_password("not a hash", "whatever").is_err());
    }

    #[test]
    fn policy_accepts_the_v5_guide_examples() {
        assert!(check_policy("SecurePassword123!", "alice", "alice@example.com").is_ok());
        assert!(check_policy("MySecureAdminPassword123!", "admin", "admin@localhost").is_ok());
        assert!(check_policy("MyNewSecurePassword123!", "bob", "bob@example.com").is_ok());
    }

    #[test]
    fn policy_refuses_short_long_common_and_personal_passwords() {
        for (pw, why) in [
            ("short1!", "short"),
            ("Password2024!", "common"),
            ("aaaaaaaaaaaaaaaa", "repetitive"),
            ("123456789012", "sequence/common"),
            ("alice12345678", "username"),
            ("alice!alice!", "username"),
        ] {
            assert!(
                check_policy(pw, "alice", "alice@example.com").is_err(),
                "{why}: {pw}"
            );
        }
        assert!(check_policy(&"x1y2z3".repeat(30), "u", "u@e.x").is_err());
    }

    #[test]
    fn generated_passwords_pass_the_policy_and_differ() {
        let a = generate_password(GENERATED_PASSWORD_CHARS);
        let b = generate_password(GENERATED_PASSWORD_CHARS);
        assert_eq!(a.chars().count(), 24);
        assert_ne!(a, b);
        assert!(check_policy(&a, "", "").is_ok());
    }
}
