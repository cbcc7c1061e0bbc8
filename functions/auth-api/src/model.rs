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

/// Username rules kept from v5: 3–50 characters of `[a-z0-9_-]`, stored lower-cased.
pub struct Username(String);

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 50;
/// RFC 5321 caps a path at 254 characters; v5's column holds 255.
pub const EMAIL_MAX: usize = 254;

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let s = raw.trim().to_lowercase();
        let n = s.chars().count();
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&n) {
            return Err(ApiError::Validation(format!(
                "username must be {USERNAME_MIN} to {USERNAME_MAX} characters"
            )));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(ApiError::Validation(
                "username may only contain letters, digits, '_' and '-'".into(),
            ));
        }
        Ok(Username(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An email address, checked for shape only (the mailbox is not verified).
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let s = raw.trim();
        let bad = || ApiError::Validation("email is not a valid address".into());
        if s.is_empty()
            || s.chars().count() > EMAIL_MAX
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.contains('@')
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || !domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        {
            return Err(bad());
        }
        Ok(Email(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A user id taken from the path: not a UUID is a 422, like v5's typed path parameter.
pub fn parse_user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::Validation("user id must be a UUID".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_restricted() {
        assert_eq!(Username::parse(" Alice_01 ").unwrap().as_str(), "alice_01");
        for bad in [
            "ab",
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
        for bad in [
            "alice",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@exa mple.com",
            "x@' OR 1=1--.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
