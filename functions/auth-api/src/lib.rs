//! `auth-api`: the public and per-user account routes of pcap-analyzer.
//!
//! | route | who |
//! |---|---|
//! | `GET /api/health` | anyone: 200 with `"database":"connected"`, 503 `"disconnected"` |
//! | `GET /api/openapi.yaml` | anyone: the OpenAPI document |
//! | `POST /api/register` | anyone (rate-limited per IP): 201 with the created user, not yet approved |
//! | `POST /api/token` | anyone (rate-limited per account and IP): form or JSON `username`/`password` |
//! | `POST /api/logout` | anyone: clears the cookie, revokes the presented token |
//! | `GET`/`PUT /api/users/me` | user: profile, password change |
//! | `GET /api/csrf/token` | user: CSRF token for cookie-authenticated requests |
//!
//! [`handle`] takes the shared [`State`] and a `lambda_http::Request`; `main.rs` only wires it
//! into the Lambda runtime and `local-gateway` mounts it on a local port.
#![deny(unsafe_code)]

pub mod guard;
pub mod model;
mod state;

pub use state::State;

use common::http::{
    access_token_cookie, clear_access_token_cookie, finalize, header_str, json_response,
    parse_form_or_json, parse_json, segments,
};
use common::ApiError;
use db::rate_limits::{self, Attempt, LOGIN_ACCOUNT, LOGIN_ACCOUNT_ADDRESS, LOGIN_IP, REGISTER_IP};
use db::users::{self, NewUser, Role};
use guard::{authenticate, db_error, AuthSource};
use lambda_http::http::header::SET_COOKIE;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use model::{Email, UserResponse, Username};
use security::csrf::CSRF_TTL_SECS;
use security::password;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;

/// Longest password accepted at login before hashing anything (the policy caps new ones at 128).
pub const MAX_LOGIN_PASSWORD_CHARS: usize = 1024;
/// Longest username accepted at login; longer ones cannot exist.
pub const MAX_LOGIN_USERNAME_CHARS: usize = 255;

/// A character no username given at login may hold: NUL, which no account name has and Postgres
/// text cannot store (the name is a key of the attempt counters).
pub fn is_refused_at_login(c: char) -> bool {
    c == '\0'
}

/// Serves one request: routing, error mapping, security and CORS headers, access log.
pub async fn handle(state: &State, req: Request) -> Response<Body> {
    serve(&state.cors, &req, |req| route(state, req)).await
}

/// The frame every API function puts around its routes: CORS preflight, error mapping to
/// JSON, security and CORS headers, one access-log line.
pub async fn serve<'r, F>(
    cors: &common::http::Cors,
    req: &'r Request,
    route: impl FnOnce(&'r Request) -> F,
) -> Response<Body>
where
    F: std::future::Future<Output = Result<Response<Body>, ApiError>>,
{
    let started = Instant::now();
    let origin = header_str(req, "origin").map(str::to_owned);
    let resp = if req.method() == Method::OPTIONS {
        cors.preflight(origin.as_deref())
    } else {
        route(req).await.unwrap_or_else(ApiError::into_response)
    };
    log_request(req, resp.status(), started);
    finalize(resp, cors, origin.as_deref())
}

/// One access-log line per request.
pub fn log_request(req: &Request, status: StatusCode, started: Instant) {
    tracing::info!(
        method = %req.method(),
        path = %req.uri().path(),
        status = status.as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
}

async fn route(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let segs = segments(req);
    let m = req.method();
    match segs.as_slice() {
        ["api", "health"] if m == Method::GET || m == Method::HEAD => Ok(health(state).await),
        ["api", "openapi.yaml"] if m == Method::GET || m == Method::HEAD => Ok(openapi()),
        ["api", "register"] if m == Method::POST => register(state, req).await,
        ["api", "token"] if m == Method::POST => login(state, req).await,
        ["api", "logout"] if m == Method::POST => logout(state, req).await,
        ["api", "users", "me"] if m == Method::GET => me(state, req).await,
        ["api", "users", "me"] if m == Method::PUT => change_password(state, req).await,
        ["api", "csrf", "token"] if m == Method::GET => csrf_token(state, req).await,
        ["api", "health"] | ["api", "openapi.yaml"] => {
            Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" })
        }
        ["api", "register"] | ["api", "token"] | ["api", "logout"] => {
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        }
        ["api", "users", "me"] => Err(ApiError::MethodNotAllowed { allow: "GET, PUT" }),
        ["api", "csrf", "token"] => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        _ => Err(ApiError::NotFound("no such route".into())),
    }
}

/// The API's OpenAPI document (`functions/openapi.yaml`), built into the function.
const OPENAPI: &str = include_str!("../../openapi.yaml");

/// `GET /api/openapi.yaml`: the document clients are generated from (v5 offered `/docs`).
fn openapi() -> Response<Body> {
    let mut resp = Response::new(Body::from(OPENAPI));
    resp.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/yaml"),
    );
    resp
}

/// Runs CPU-heavy argon2 work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

#[tracing::instrument(skip_all)]
pub async fn health(state: &State) -> Response<Body> {
    let uptime_seconds = state.started.elapsed().as_secs();
    let version = env!("CARGO_PKG_VERSION");
    match db::ping(&state.pool).await {
        Ok(()) => json_response(
            StatusCode::OK,
            &Health {
                status: "ok",
                database: "connected",
                version,
                uptime_seconds,
                error: None,
                message: None,
            },
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health: database unreachable");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &Health {
                    status: "unavailable",
                    database: "disconnected",
                    version,
                    uptime_seconds,
                    error: Some("service_unavailable"),
                    message: Some("database unreachable"),
                },
            )
        }
    }
}

#[derive(Deserialize)]
struct RegisterRequest {
    username: String,
    email: String,
    password: String,
}

#[tracing::instrument(skip_all)]
async fn register(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: RegisterRequest = parse_json(req)?;
    let ip = common::http::client_ip(req);
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    let limit = state.settings.register_limit_per_ip_per_hour;
    if let Some(wait) = rate_limits::attempt(&client, REGISTER_IP, &ip, 3600, limit)
        .await
        .map_err(db_error)?
        .retry_after()
    {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait,
        });
    }

    let username = Username::parse(&body.username)?;
    let email = Email::parse(&body.email)?;
    password::check_policy(&body.password, username.as_str(), email.as_str())
        .map_err(|v| ApiError::BadRequest(v.to_string()))?;
    let plain = body.password;
    let hash = blocking(move || password::hash_password(&plain))
        .await?
        .map_err(ApiError::internal)?;
    let new = NewUser {
        username: username.into_inner(),
        email: email.into_inner(),
        hashed_password: hash,
        role: Role::User,
        is_approved: false,
        approved_by: None,
        password_must_change: false,
    };
    let user = match users::insert(&client, &new).await {
        Ok(u) => u,
        // RFC 9110 §15.5.10: the request conflicts with an existing account.
        Err(db::DbError::Duplicate(_)) => {
            return Err(ApiError::Conflict(
                "username or email already registered".into(),
            ))
        }
        Err(e) => return Err(db_error(e)),
    };
    tracing::info!(target: "audit", user_id = %user.id, "user registered, pending approval");
    Ok(json_response(
        StatusCode::CREATED,
        &UserResponse::from(&user),
    ))
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    password_must_change: bool,
}

/// The counter of one account's failures from one address. The address comes first: a clipped
/// key (hostile lengths) loses the end of the account name, never the address.
fn account_address(account: &str, ip: &str) -> String {
    format!("{ip} {account}")
}

/// One attempt on the (account, address) counter of `pair`.
async fn pair_attempt(
    client: &impl db::GenericClient,
    limits: &common::settings::LoginLimits,
    pair: &str,
) -> Result<Attempt, ApiError> {
    rate_limits::attempt(
        client,
        LOGIN_ACCOUNT_ADDRESS,
        pair,
        limits.window_seconds,
        limits.max_failures_per_account,
    )
    .await
    .map_err(db_error)
}

/// First step of the delay once an account's failures from every address pass the limit.
const DELAY_STEP: std::time::Duration = std::time::Duration::from_millis(250);
/// The longest delay: slow enough to blunt a guessing crowd, short enough that the owner, who
/// is never refused for other addresses' failures, still gets in.
const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(4);

/// The wait before verifying a password for an account with `failures` recent failures: none up
/// to `limit`, then doubling from [`DELAY_STEP`] up to [`MAX_DELAY`] (OWASP ASVS 2.2.1: soft
/// throttling that cannot become a lockout).
fn progressive_delay(failures: u32, limit: u32) -> std::time::Duration {
    if failures < limit.max(1) {
        return std::time::Duration::ZERO;
    }
    let doublings = (failures - limit.max(1)).min(8);
    (DELAY_STEP * 2u32.pow(doublings)).min(MAX_DELAY)
}

fn bad_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_credentials",
        message: "incorrect username or password".into(),
    }
}

/// `POST /api/token`. Unknown user and wrong password take the same path (one argon2
/// verification, one failure recorded) and give the same answer. Whether the account is
/// blocked or pending is told only after the password verified.
#[tracing::instrument(skip_all)]
async fn login(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    // It sets the session cookie: a form on another site must not sign the browser in.
    state.cors.admits_page_of(req)?;
    let body: LoginRequest = parse_form_or_json(req)?;
    if body.username.is_empty() || body.password.is_empty() {
        return Err(ApiError::Validation(
            "username and password are required".into(),
        ));
    }
    if body.username.chars().count() > MAX_LOGIN_USERNAME_CHARS
        || body.password.chars().count() > MAX_LOGIN_PASSWORD_CHARS
    {
        return Err(ApiError::Validation("username or password too long".into()));
    }
    if body.username.chars().any(is_refused_at_login) {
        return Err(ApiError::Validation(
            "username may not contain a NUL character".into(),
        ));
    }
    let account = body.username.trim().to_lowercase();
    let ip = common::http::client_ip(req);
    let limits = &state.settings.login_limits;
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;

    // Both counters take this attempt before anything is verified, each in one statement, so
    // parallel guesses are refused past the limit instead of all passing one early check.
    let pair = account_address(&account, &ip);
    let by_ip = rate_limits::attempt(
        &client,
        LOGIN_IP,
        &ip,
        limits.window_seconds,
        limits.max_failures_per_ip,
    )
    .await
    .map_err(db_error)?;
    let by_pair = match by_ip {
        Attempt::Blocked { .. } => by_ip,
        Attempt::Admitted { .. } => pair_attempt(&client, limits, &pair).await?,
    };
    if let Some(wait) = by_pair.retry_after() {
        if by_ip.retry_after().is_none() {
            rate_limits::refund(&client, LOGIN_IP, &ip)
                .await
                .map_err(db_error)?;
        }
        tracing::warn!(target: "audit", ip = %ip, "login throttled");
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait,
        });
    }
    // Failures against the account from everywhere slow its logins down, never refuse them.
    let failures = rate_limits::count(&client, LOGIN_ACCOUNT, &account, limits.window_seconds)
        .await
        .map_err(db_error)?;
    let delay = progressive_delay(failures, limits.max_failures_per_account);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let user = users::find_by_username(&client, &account)
        .await
        .map_err(db_error)?;
    let password = body.password;
    let verified = match &user {
        Some(u) => {
            let hash = u.hashed_password.clone();
            blocking(move || password::verify_password(&hash, &password).map(|v| (v, password)))
                .await?
                .map_err(ApiError::internal)?
        }
        None => {
            blocking(move || {
                password::dummy_verify(&password);
                (None, password)
            })
            .await?
        }
    };
    let (verified, password) = verified;

    let (Some(user), Some(verified)) = (user, verified) else {
        // The attempt stays counted on the address and the pair.
        rate_limits::hit(&client, LOGIN_ACCOUNT, &account, limits.window_seconds)
            .await
            .map_err(db_error)?;
        tracing::warn!(target: "audit", ip = %ip, "login failed");
        return Err(bad_credentials());
    };

    if !user.is_active {
        tracing::warn!(target: "audit", user_id = %user.id, "login refused: account blocked");
        return Err(ApiError::forbidden("account_blocked", "account is blocked"));
    }
    if !user.is_approved {
        return Err(ApiError::forbidden(
            "pending_approval",
            "account pending approval by an administrator",
        ));
    }

    // The right password was not a failure: the address gets its attempt back, the pair starts
    // again.
    rate_limits::refund(&client, LOGIN_IP, &ip)
        .await
        .map_err(db_error)?;
    rate_limits::clear(&client, LOGIN_ACCOUNT_ADDRESS, &pair)
        .await
        .map_err(db_error)?;
    if verified.needs_rehash {
        // Same password, today's argon2 parameters; no token is revoked by this.
        let new_hash = blocking(move || password::hash_password(&password))
            .await?
            .map_err(ApiError::internal)?;
        users::update_hash(&client, user.id, &new_hash)
            .await
            .map_err(db_error)?;
    }
    users::record_login(&client, user.id)
        .await
        .map_err(db_error)?;
    let issued = state
        .tokens
        .issue(
            user.id,
            &user.username,
            user.role.as_str(),
            user.token_version,
        )
        .map_err(ApiError::internal)?;
    tracing::info!(target: "audit", user_id = %user.id, "login succeeded");

    let mut resp = json_response(
        StatusCode::OK,
        &TokenResponse {
            access_token: issued.token.clone(),
            token_type: "bearer",
            expires_in: issued.expires_in,
            password_must_change: user.password_must_change,
        },
    );
    resp.headers_mut().append(
        SET_COOKIE,
        access_token_cookie(&issued.token, issued.expires_in),
    );
    Ok(resp)
}

/// `POST /api/logout`: always clears the cookie; a valid token (bearer, or cookie with its
/// CSRF token) is revoked along with every other token of the user.
#[tracing::instrument(skip_all)]
async fn logout(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    state.cors.admits_page_of(req)?;
    let revoked = match authenticate(state, req).await {
        Ok(auth) => {
            let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
            users::bump_token_version(&client, auth.user.id)
                .await
                .map_err(db_error)?;
            tracing::info!(target: "audit", user_id = %auth.user.id, "logout");
            true
        }
        Err(ApiError::Unavailable(m)) => return Err(ApiError::Unavailable(m)),
        Err(_) => false,
    };
    let mut resp = json_response(
        StatusCode::OK,
        &json!({"message": "logged out", "revoked": revoked}),
    );
    resp.headers_mut()
        .append(SET_COOKIE, clear_access_token_cookie());
    Ok(resp)
}

#[tracing::instrument(skip_all)]
async fn me(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let auth = authenticate(state, req).await?;
    Ok(json_response(
        StatusCode::OK,
        &UserResponse::from(&auth.user),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

#[derive(Serialize)]
struct ChangePasswordResponse {
    #[serde(flatten)]
    user: UserResponse,
    /// A fresh token for this session: every earlier token was revoked by the change.
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// `PUT /api/users/me`: password change. Revokes every token issued before, and answers with a
/// new one so the caller's session goes on.
#[tracing::instrument(skip_all)]
async fn change_password(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let auth = authenticate(state, req).await?;
    let body: ChangePasswordRequest = parse_json(req)?;
    if body.current_password.chars().count() > MAX_LOGIN_PASSWORD_CHARS {
        return Err(ApiError::Validation("current_password too long".into()));
    }
    let user = auth.user;
    let limits = &state.settings.login_limits;
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    // The current password is a credential: guessing it here counts like failed logins.
    let pair = account_address(&user.username, &common::http::client_ip(req));
    if let Some(wait) = pair_attempt(&client, limits, &pair).await?.retry_after() {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait,
        });
    }
    let (hash, current) = (user.hashed_password.clone(), body.current_password.clone());
    let ok = blocking(move || password::verify_password(&hash, &current))
        .await?
        .map_err(ApiError::internal)?;
    if ok.is_none() {
        // The session is valid, the credential offered for this change is not (RFC 9110
        // §15.5.4); a 401 would tell clients to sign in again.
        return Err(ApiError::forbidden(
            "invalid_current_password",
            "current password is incorrect",
        ));
    }
    rate_limits::refund(&client, LOGIN_ACCOUNT_ADDRESS, &pair)
        .await
        .map_err(db_error)?;
    if body.new_password == body.current_password {
        return Err(ApiError::BadRequest(
            "the new password must differ from the current one".into(),
        ));
    }
    password::check_policy(&body.new_password, &user.username, &user.email)
        .map_err(|v| ApiError::BadRequest(v.to_string()))?;
    let history = users::recent_password_hashes(&client, user.id)
        .await
        .map_err(db_error)?;
    let new_password = body.new_password;
    let (reused, new_hash) = blocking(move || {
        let reused = history
            .iter()
            .any(|h| matches!(password::verify_password(h, &new_password), Ok(Some(_))));
        (reused, password::hash_password(&new_password))
    })
    .await?;
    if reused {
        return Err(ApiError::BadRequest(format!(
            "the new password must differ from the last {} ones",
            users::PASSWORD_HISTORY_DEPTH
        )));
    }
    let new_hash = new_hash.map_err(ApiError::internal)?;
    let updated = users::change_password(&client, user.id, &new_hash, false)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::Unauthorized {
            code: "invalid_token",
            message: "authentication required".into(),
        })?;
    let issued = state
        .tokens
        .issue(
            updated.id,
            &updated.username,
            updated.role.as_str(),
            updated.token_version,
        )
        .map_err(ApiError::internal)?;
    tracing::info!(target: "audit", user_id = %updated.id, "password changed, earlier tokens revoked");

    let mut resp = json_response(
        StatusCode::OK,
        &ChangePasswordResponse {
            user: UserResponse::from(&updated),
            access_token: issued.token.clone(),
            token_type: "bearer",
            expires_in: issued.expires_in,
        },
    );
    if auth.source == AuthSource::Cookie {
        resp.headers_mut().append(
            SET_COOKIE,
            access_token_cookie(&issued.token, issued.expires_in),
        );
    }
    Ok(resp)
}

#[tracing::instrument(skip_all)]
async fn csrf_token(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let auth = authenticate(state, req).await?;
    let token = state.csrf.issue(&auth.csrf_subject());
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "csrf_token": token,
            "header_name": "X-CSRF-Token",
            "expires_in": CSRF_TTL_SECS,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_delay_starts_at_the_limit_doubles_and_stops_at_its_ceiling() {
        assert_eq!(progressive_delay(0, 5), Duration::ZERO);
        assert_eq!(progressive_delay(4, 5), Duration::ZERO);
        assert_eq!(progressive_delay(5, 5), DELAY_STEP);
        assert_eq!(progressive_delay(6, 5), DELAY_STEP * 2);
        assert_eq!(progressive_delay(1000, 5), MAX_DELAY);
        assert_eq!(progressive_delay(u32::MAX, 0), MAX_DELAY);
    }

    #[test]
    fn the_address_survives_a_hostile_account_name() {
        let long = "x".repeat(1000);
        assert!(account_address(&long, "127.0.0.2").starts_with("127.0.0.2 "));
    }
}
