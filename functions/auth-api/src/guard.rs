//! Who is calling: token from the `Authorization: Bearer` header or the `access_token` cookie,
//! checked against the database on every request so revocation is immediate.

use crate::State;
use common::http::{cookie, header_str, is_state_changing, ACCESS_TOKEN_COOKIE, CSRF_HEADER};
use common::ApiError;
use db::users::{self, Role, User};
use db::DbError;
use lambda_http::Request;
use security::jwt::Claims;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSource {
    Bearer,
    Cookie,
}

#[derive(Debug)]
pub struct AuthUser {
    pub user: User,
    pub claims: Claims,
    pub source: AuthSource,
}

impl AuthUser {
    /// The value CSRF tokens are bound to: the user and its token version.
    pub fn csrf_subject(&self) -> String {
        csrf_subject(&self.user)
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

pub fn csrf_subject(user: &User) -> String {
    format!("{}:{}", user.id, user.token_version)
}

/// Maps a repository error: an unreachable database is a 503, anything else a 500.
pub fn db_error(e: DbError) -> ApiError {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "database unavailable");
        ApiError::Unavailable("database unavailable, try again shortly".into())
    } else {
        ApiError::internal(e)
    }
}

fn invalid_token() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_token",
        message: "authentication required".into(),
    }
}

/// The token the request carries, and where it came from. A bearer header wins over the cookie.
pub fn token_of(req: &Request) -> Option<(&str, AuthSource)> {
    if let Some(auth) = header_str(req, "authorization") {
        let (scheme, token) = auth.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim(), AuthSource::Bearer));
    }
    cookie(req, ACCESS_TOKEN_COOKIE)
        .filter(|t| !t.is_empty())
        .map(|t| (t, AuthSource::Cookie))
}

/// Authenticates the request: a valid token whose token version matches the active user's.
/// A cookie-authenticated POST/PUT/DELETE must also carry a valid `X-CSRF-Token`.
#[tracing::instrument(skip_all)]
pub async fn authenticate(state: &State, req: &Request) -> Result<AuthUser, ApiError> {
    let (token, source) = token_of(req).ok_or_else(invalid_token)?;
    let claims = state.tokens.verify(token).map_err(|e| {
        tracing::info!(reason = %e, "token refused");
        invalid_token()
    })?;
    let user_id = claims.user_id().ok_or_else(invalid_token)?;
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    let user = users::find_by_id(&client, user_id)
        .await
        .map_err(db_error)?
        .ok_or_else(invalid_token)?;
    // A password change, block, reset or logout bumped the version: the token is dead.
    if user.token_version != claims.tv || !user.is_active || !user.is_approved {
        tracing::info!(user_id = %user.id, "revoked token refused");
        return Err(invalid_token());
    }
    let auth = AuthUser {
        user,
        claims,
        source,
    };
    if source == AuthSource::Cookie && is_state_changing(req.method()) {
        state.cors.admits_page_of(req)?;
        let ok = header_str(req, CSRF_HEADER)
            .is_some_and(|t| state.csrf.verify(t, &auth.csrf_subject()));
        if !ok {
            return Err(ApiError::forbidden(
                "csrf_failed",
                "missing or invalid X-CSRF-Token header",
            ));
        }
    }
    Ok(auth)
}

/// Users with a temporary password may only change it (and read their profile) first.
pub fn require_password_current(auth: &AuthUser) -> Result<(), ApiError> {
    if auth.user.password_must_change {
        return Err(ApiError::forbidden(
            "password_change_required",
            "change your password first (PUT /api/users/me)",
        ));
    }
    Ok(())
}

/// Admin routes: a valid non-admin user gets 403.
pub fn require_admin(auth: &AuthUser) -> Result<(), ApiError> {
    if !auth.is_admin() {
        return Err(ApiError::forbidden(
            "forbidden",
            "admin privileges required",
        ));
    }
    require_password_current(auth)
}
