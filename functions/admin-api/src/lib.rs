//! `admin-api`: user administration, admins only (a valid non-admin token gets 403).
//!
//! | route | effect |
//! |---|---|
//! | `GET /api/users?status=&role=&limit=&offset=` | list, newest first; with `offset` the answer is `{users,total,offset,limit}` (v5) |
//! | `POST /api/admin/users` | create an approved user with a temporary password |
//! | `PUT /api/admin/users/{id}/approve`, `/block`, `/unblock` | state changes; block revokes tokens |
//! | `DELETE /api/admin/users/{id}` | delete, tasks and progress cascade |
//! | `POST /api/admin/users/bulk/approve`, `/block`, `/unblock` | the same for 1–100 ids |
//! | `POST /api/admin/users/{id}/reset-password` | new temporary password, tokens revoked |
//!
//! Admins cannot block, delete or reset another admin (nor themselves) here, as in v5.
#![deny(unsafe_code)]

use auth_api::guard::{authenticate, db_error, require_admin, AuthUser};
use auth_api::model::{parse_user_id, Email, UserResponse, Username};
use auth_api::State;
use common::http::{json_response, parse_json, query_int, query_params, segments};
use common::ApiError;
use db::users::{self, NewUser, Role, StatusFilter, User, UserFilter};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use security::password;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use uuid::Uuid;

/// Largest bulk request (v5: 1–100 ids).
pub const MAX_BULK_IDS: usize = 100;
/// Default and largest page of `GET /api/users` (v5 default 100).
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 500;
/// Offsets beyond this are refused rather than scanning forever.
pub const MAX_OFFSET: i64 = 1_000_000;

/// Serves one request: routing, admin check, error mapping, headers.
pub async fn handle(state: &State, req: Request) -> Response<Body> {
    auth_api::serve(&state.cors, &req, |req| route(state, req)).await
}

/// `true` for the paths this function serves (used by `local-gateway` to dispatch).
pub fn owns_path(path: &str) -> bool {
    path == "/api/users" || path == "/api/users/" || path.starts_with("/api/admin/")
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Approve,
    Block,
    Unblock,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        match s {
            "approve" => Some(Action::Approve),
            "block" => Some(Action::Block),
            "unblock" => Some(Action::Unblock),
            _ => None,
        }
    }
}

async fn route(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let segs = segments(req);
    let m = req.method().clone();
    // Known route shapes first, so that an unknown path is a 404 whoever asks.
    enum R {
        List,
        Create,
        Act(String, Action),
        Delete(String),
        Bulk(Action),
        Reset(String),
    }
    let r = match (segs.as_slice(), &m) {
        (["api", "users"], &Method::GET) => R::List,
        (["api", "admin", "users"], &Method::POST) => R::Create,
        // A concrete path before the templated ones (OpenAPI 3.1, path templating matching):
        // `bulk/approve` is never user `bulk`, whatever the method.
        (["api", "admin", "users", "bulk", a], _) if Action::parse(a).is_some() => {
            match (Action::parse(a), &m) {
                (Some(action), &Method::POST) => R::Bulk(action),
                _ => return Err(ApiError::MethodNotAllowed { allow: "POST" }),
            }
        }
        (["api", "admin", "users", id, "reset-password"], &Method::POST) => {
            R::Reset(id.to_string())
        }
        (["api", "admin", "users", id, a], &Method::PUT) => match Action::parse(a) {
            Some(action) => R::Act(id.to_string(), action),
            None => return Err(ApiError::NotFound("no such route".into())),
        },
        (["api", "admin", "users", id], &Method::DELETE) => R::Delete(id.to_string()),
        (["api", "users"], _) => return Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (["api", "admin", "users"], _) => return Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["api", "admin", "users", _], _) => {
            return Err(ApiError::MethodNotAllowed { allow: "DELETE" })
        }
        (["api", "admin", "users", _, "reset-password"], _) => {
            return Err(ApiError::MethodNotAllowed { allow: "POST" })
        }
        (["api", "admin", "users", _, _], _) => {
            return Err(ApiError::MethodNotAllowed { allow: "PUT" })
        }
        _ => return Err(ApiError::NotFound("no such route".into())),
    };
    let admin = authenticate(state, req).await?;
    require_admin(&admin)?;
    match r {
        R::List => list(state, req).await,
        R::Create => create(state, req, &admin).await,
        R::Act(id, a) => act_one(state, &admin, parse_user_id(&id)?, a).await,
        R::Delete(id) => delete(state, &admin, parse_user_id(&id)?).await,
        R::Bulk(a) => bulk(state, req, &admin, a).await,
        R::Reset(id) => reset_password(state, &admin, parse_user_id(&id)?).await,
    }
}

#[derive(Serialize)]
struct Page {
    users: Vec<UserResponse>,
    total: i64,
    offset: i64,
    limit: i64,
}

#[tracing::instrument(skip_all)]
async fn list(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let q = query_params(req)?;
    let status = match q.get("status").map(String::as_str) {
        None => None,
        Some(s) => Some(StatusFilter::parse(s).ok_or_else(|| {
            ApiError::Validation("status must be pending, approved or blocked".into())
        })?),
    };
    let role = match q.get("role").map(String::as_str) {
        None => None,
        Some(r) => Some(
            Role::parse(r)
                .ok_or_else(|| ApiError::Validation("role must be admin or user".into()))?,
        ),
    };
    let limit = query_int(&q, "limit", DEFAULT_PAGE, 1, MAX_PAGE)?;
    let offset = query_int(&q, "offset", 0, 0, MAX_OFFSET)?;
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    let (found, total) = users::list(
        &client,
        &UserFilter {
            status,
            role,
            limit,
            offset,
        },
    )
    .await
    .map_err(db_error)?;
    let users: Vec<UserResponse> = found.iter().map(UserResponse::from).collect();
    // v5 answered a bare list unless `offset` was given; clients of both forms keep working.
    if q.contains_key("offset") {
        Ok(json_response(
            StatusCode::OK,
            &Page {
                users,
                total,
                offset,
                limit,
            },
        ))
    } else {
        Ok(json_response(StatusCode::OK, &users))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserRequest {
    username: String,
    email: String,
    /// Absent is a user; `null` or another name is refused (422), as the document says.
    #[serde(default)]
    role: RoleName,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RoleName {
    Admin,
    #[default]
    User,
}

#[tracing::instrument(skip_all)]
async fn create(
    state: &State,
    req: &Request,
    admin: &AuthUser,
) -> Result<Response<Body>, ApiError> {
    let body: CreateUserRequest = parse_json(req)?;
    let username = Username::parse(&body.username)?;
    let email = Email::parse(&body.email)?;
    let role = match body.role {
        RoleName::Admin => Role::Admin,
        RoleName::User => Role::User,
    };
    let temporary = password::generate_password(password::GENERATED_PASSWORD_CHARS);
    let to_hash = temporary.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&to_hash))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    let user = match users::insert(
        &client,
        &NewUser {
            username: username.into_inner(),
            email: email.into_inner(),
            hashed_password: hash,
            role,
            is_approved: true,
            approved_by: Some(admin.user.id),
            password_must_change: true,
        },
    )
    .await
    {
        Ok(u) => u,
        Err(db::DbError::Duplicate(_)) => {
            return Err(ApiError::Conflict(
                "username or email already registered".into(),
            ))
        }
        Err(e) => return Err(db_error(e)),
    };
    tracing::warn!(target: "audit", admin_id = %admin.user.id, user_id = %user.id, role = role.as_str(), "admin created user");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "user": UserResponse::from(&user),
            "temporary_password": temporary,
            "message": "user created; the temporary password must be changed at first login",
        }),
    ))
}

/// Why an action does not apply to a user; the text is shown to the admin.
enum Refusal {
    NotFound,
    /// Not for this target, whatever its state (oneself, an administrator): 403.
    Forbidden(&'static str),
    /// The user's state already is what the action would make it (RFC 9110 §15.5.10): 409.
    Conflict(&'static str),
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::NotFound => "user not found",
            Refusal::Forbidden(r) | Refusal::Conflict(r) => r,
        }
    }

    fn into_error(self) -> ApiError {
        match self {
            Refusal::NotFound => ApiError::NotFound(self.reason().into()),
            Refusal::Forbidden(r) => ApiError::forbidden("forbidden", r),
            Refusal::Conflict(r) => ApiError::Conflict(r.into()),
        }
    }
}

/// Why an action cannot apply to `target`, if it cannot.
fn refusal(admin: &AuthUser, target: &User, action: Action) -> Option<Refusal> {
    match action {
        Action::Approve if target.is_approved => {
            Some(Refusal::Conflict("user is already approved"))
        }
        Action::Block if target.id == admin.user.id => {
            Some(Refusal::Forbidden("you cannot block yourself"))
        }
        Action::Block if target.role == Role::Admin => {
            Some(Refusal::Forbidden("administrators cannot be blocked"))
        }
        Action::Block if !target.is_active => Some(Refusal::Conflict("user is already blocked")),
        Action::Unblock if target.is_active => Some(Refusal::Conflict("user is not blocked")),
        _ => None,
    }
}

/// Applies one action; `Err` is the refusal, with the target's name when it exists.
async fn apply(
    client: &db::Client,
    admin: &AuthUser,
    id: Uuid,
    action: Action,
) -> Result<Result<User, (Refusal, Option<String>)>, ApiError> {
    let Some(target) = users::find_by_id(client, id).await.map_err(db_error)? else {
        return Ok(Err((Refusal::NotFound, None)));
    };
    if let Some(refused) = refusal(admin, &target, action) {
        return Ok(Err((refused, Some(target.username))));
    }
    let updated = match action {
        Action::Approve => users::approve(client, id, admin.user.id).await,
        Action::Block => users::set_active(client, id, false).await,
        Action::Unblock => users::set_active(client, id, true).await,
    }
    .map_err(db_error)?;
    match updated {
        Some(u) => {
            tracing::warn!(target: "audit", admin_id = %admin.user.id, user_id = %u.id, action = ?action, "admin action");
            Ok(Ok(u))
        }
        None => Ok(Err((Refusal::NotFound, None))),
    }
}

#[tracing::instrument(skip_all, fields(user_id = %id, action = ?action))]
async fn act_one(
    state: &State,
    admin: &AuthUser,
    id: Uuid,
    action: Action,
) -> Result<Response<Body>, ApiError> {
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    match apply(&client, admin, id, action).await? {
        Ok(user) => Ok(json_response(StatusCode::OK, &UserResponse::from(&user))),
        Err((refused, _)) => Err(refused.into_error()),
    }
}

#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn delete(state: &State, admin: &AuthUser, id: Uuid) -> Result<Response<Body>, ApiError> {
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    let target = users::find_by_id(&client, id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    if target.id == admin.user.id {
        return Err(ApiError::forbidden(
            "forbidden",
            "you cannot delete yourself",
        ));
    }
    if target.role == Role::Admin {
        return Err(ApiError::forbidden(
            "forbidden",
            "administrators cannot be deleted",
        ));
    }
    let (user, tasks_deleted) = users::delete(&client, id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    tracing::warn!(target: "audit", admin_id = %admin.user.id, user_id = %user.id, tasks_deleted, "admin deleted user");
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "message": "user deleted",
            "user_id": user.id,
            "username": user.username,
            "tasks_deleted": tasks_deleted,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    user_ids: Vec<String>,
}

#[derive(Serialize)]
struct BulkResult {
    user_id: String,
    username: Option<String>,
    status: &'static str,
    reason: Option<String>,
}

#[tracing::instrument(skip_all, fields(action = ?action))]
async fn bulk(
    state: &State,
    req: &Request,
    admin: &AuthUser,
    action: Action,
) -> Result<Response<Body>, ApiError> {
    let body: BulkRequest = parse_json(req)?;
    if body.user_ids.is_empty() || body.user_ids.len() > MAX_BULK_IDS {
        return Err(ApiError::Validation(format!(
            "user_ids must hold 1 to {MAX_BULK_IDS} ids"
        )));
    }
    // Unique as JSON Schema's `uniqueItems` says it: as strings. The same id spelt in two cases
    // is applied twice, and the second gets its refusal in the results.
    let mut seen = HashSet::new();
    if !body.user_ids.iter().all(|raw| seen.insert(raw.as_str())) {
        return Err(ApiError::Validation("user_ids must be unique".into()));
    }
    let ids = body
        .user_ids
        .iter()
        .map(|raw| parse_user_id(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        results.push(match apply(&client, admin, id, action).await? {
            Ok(u) => BulkResult {
                user_id: id.to_string(),
                username: Some(u.username),
                status: "success",
                reason: None,
            },
            Err((refused, username)) => BulkResult {
                user_id: id.to_string(),
                username,
                status: "failed",
                reason: Some(refused.reason().into()),
            },
        });
    }
    let success = results.iter().filter(|r| r.status == "success").count();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "total": results.len(),
            "success": success,
            "failed": results.len() - success,
            "results": results,
        }),
    ))
}

#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn reset_password(
    state: &State,
    admin: &AuthUser,
    id: Uuid,
) -> Result<Response<Body>, ApiError> {
    let client = state.pool.get().await.map_err(|e| db_error(e.into()))?;
    let target = users::find_by_id(&client, id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    if target.role == Role::Admin {
        return Err(ApiError::forbidden(
            "forbidden",
            "the password of an administrator cannot be reset here",
        ));
    }
    let temporary = password::generate_password(password::GENERATED_PASSWORD_CHARS);
    let to_hash = temporary.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&to_hash))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    users::change_password(&client, id, &hash, true)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    tracing::warn!(target: "audit", admin_id = %admin.user.id, user_id = %id, "admin reset password");
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "user_id": id,
            "username": target.username,
            "temporary_password": temporary,
            "message": "password reset; the user must change it at next login",
        }),
    ))
}
