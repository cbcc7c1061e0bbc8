//! Request and response bodies shared by the account functions, and input parsing at the edge.

use common::ApiError;
use db::users::User;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// v5's `UserResponse`: everything about an account except its secrets.
#[derive(Debug, Serialize)]
pub struct UserResponse {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub role: &'static str,
    pub is_active: bool,
    pub is_approved: bool,
    pub approved_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub approved_at: Option<OffsetDateTime>,
    pub password_must_change: bool,
    pub is_2fa_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login: Option<OffsetDateTime>,
}

impl From<&User> for UserResponse {
    fn from(u: &User) -> Self {
        UserResponse {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            role: u.role.as_str(),
            is_active: u.is_active,
            is_approved: u.is_approved,
            approved_by: u.approved_by,
            approved_at: u.approved_at,
            password_must_change: u.password_must_change,
            is_2fa_enabled: u.is_2fa_enabled,
            created_at: u.created_at,
            last_login: u.last_login,
        }
    }
}

/// Username rules kept from v5: 3–50 characters of `[A-Za-z0-9_-]`, stored lower-cased.
pub struct Username(String);

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 50;
/// RFC 5321 caps a path at 254 characters; v5's column holds 255.
pub const EMAIL_MAX: usize = 254;

/// A character a username may hold, in either case (the name is stored lower-cased).
pub fn is_username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl Username {
    /// Taken as sent, without trimming: what `openapi.yaml`'s pattern admits is exactly what is
    /// accepted (the UI trims what a person typed).
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if !raw.chars().all(is_username_char) {
            return Err(ApiError::Validation(
                "username may only contain letters, digits, '_' and '-'".into(),
            ));
        }
        // ASCII only from here, so bytes are characters.
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&raw.len()) {
            return Err(ApiError::Validation(format!(
                "username must be {USERNAME_MIN} to {USERNAME_MAX} characters"
            )));
        }
        Ok(Username(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An email address, checked for shape only (the mailbox is not verified): one `@`, a local
/// part without whitespace or control characters, a domain of ASCII letters, digits, `-` and
/// `.` (internationalised domains in their `xn--` form) with a dot inside. Taken as sent.
pub struct Email(String);

/// A character refused anywhere in an address.
pub fn is_refused_in_email(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// A character of an address's domain.
pub fn is_email_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::Validation("email is not a valid address".into());
        if raw.chars().count() > EMAIL_MAX || raw.chars().any(is_refused_in_email) {
            return Err(bad());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || !domain.chars().all(is_email_domain_char)
        {
            return Err(bad());
        }
        Ok(Email(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A UUID in its hyphenated form (8-4-4-4-12 hex digits, either case), the only one
/// `format: uuid` admits; the simple, braced and URN forms `Uuid::parse_str` also reads are not
/// ids of this API.
pub fn parse_uuid(raw: &str) -> Option<Uuid> {
    let b = raw.as_bytes();
    let hyphenated = b.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-');
    hyphenated.then(|| Uuid::parse_str(raw).ok()).flatten()
}

/// A user id taken from the path: not a UUID is a 422, like v5's typed path parameter.
pub fn parse_user_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_uuid(raw).ok_or_else(|| ApiError::Validation("user id must be a UUID".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_restricted() {
        assert_eq!(Username::parse("Alice_01").unwrap().as_str(), "alice_01");
        for bad in [
            "ab",
            " alice",
            "\u{212a}elvin",
            "a'; DROP TABLE users; --",
            "ali ce",
            &"a".repeat(51),
            "élodie",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_need_a_plausible_shape() {
        assert!(Email::parse("alice@example.com").is_ok());
        assert!(Email::parse("jos\u{e9}@xn--caf-dma.example").is_ok());
        for bad in [
            "alice",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@exa mple.com",
            "x@' OR 1=1--.com",
            " alice@example.com",
            "a@b.c.",
            "a@b\u{e9}.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_hyphenated_uuids_only() {
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert!(parse_uuid(id).is_some());
        assert!(parse_uuid(&id.to_uppercase()).is_some());
        for bad in [
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67e55044-10b1-426f-9247-bb680e5fe0cg",
            "",
        ] {
            assert!(parse_uuid(bad).is_none(), "{bad}");
        }
    }
}
