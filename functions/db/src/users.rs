//! Accounts repository.

use crate::{map_unique, DbError, GenericClient};
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

/// Password hashes kept per user so a change cannot go back to one of them (v5 keeps 5).
pub const PASSWORD_HISTORY_DEPTH: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Admin, Role::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// A row of `users`. `hashed_password` never leaves the server: the API maps this to its own
/// response type.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub hashed_password: String,
    pub role: Role,
    pub is_active: bool,
    pub is_approved: bool,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub last_login: Option<OffsetDateTime>,
    pub password_must_change: bool,
    pub is_2fa_enabled: bool,
    pub token_version: i32,
}

const COLUMNS: &str =
    "id, username, email, hashed_password, role, is_active, is_approved, approved_by, \
    approved_at, created_at, last_login, password_must_change, is_2fa_enabled, token_version";

impl TryFrom<&Row> for User {
    type Error = DbError;

    fn try_from(row: &Row) -> Result<Self, DbError> {
        let role: String = row.try_get("role")?;
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            hashed_password: row.try_get("hashed_password")?,
            role: Role::parse(&role)
                .ok_or_else(|| DbError::Data(format!("unknown role {role}")))?,
            is_active: row.try_get("is_active")?,
            is_approved: row.try_get("is_approved")?,
            approved_by: row.try_get("approved_by")?,
            approved_at: row.try_get("approved_at")?,
            created_at: row.try_get("created_at")?,
            last_login: row.try_get("last_login")?,
            password_must_change: row.try_get("password_must_change")?,
            is_2fa_enabled: row.try_get("is_2fa_enabled")?,
            token_version: row.try_get("token_version")?,
        })
    }
}

fn one(row: Option<Row>) -> Result<Option<User>, DbError> {
    row.as_ref().map(User::try_from).transpose()
}

#[derive(Debug, Clone)]
pub struct NewUser {
    /// Already validated and lower-cased by the caller.
    pub username: String,
    pub email: String,
    pub hashed_password: String,
    pub role: Role,
    pub is_approved: bool,
    pub approved_by: Option<Uuid>,
    pub password_must_change: bool,
}

/// Inserts a user (and its first password into the history). A taken username or email is
/// [`DbError::Duplicate`].
#[tracing::instrument(skip_all, fields(username = %new.username))]
pub async fn insert(c: &impl GenericClient, new: &NewUser) -> Result<User, DbError> {
    let sql = format!(
        "WITH u AS (
            INSERT INTO users (id, username, email, hashed_password, role, is_approved, approved_by, approved_at,
                               password_must_change)
            VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6 THEN now() END, $8)
            RETURNING {COLUMNS}),
         h AS (INSERT INTO password_history (user_id, hashed_password) SELECT id, hashed_password FROM u)
         SELECT {COLUMNS} FROM u"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let row = c
        .query_one(
            &stmt,
            &[
                &Uuid::new_v4(),
                &new.username,
                &new.email,
                &new.hashed_password,
                &new.role.as_str(),
                &new.is_approved,
                &new.approved_by,
                &new.password_must_change,
            ],
        )
        .await
        .map_err(map_unique)?;
    User::try_from(&row)
}

#[tracing::instrument(skip(c))]
pub async fn find_by_id(c: &impl GenericClient, id: Uuid) -> Result<Option<User>, DbError> {
    let stmt = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .await?;
    one(c.query_opt(&stmt, &[&id]).await?)
}

/// Looks a user up by (lower-cased) username.
#[tracing::instrument(skip(c))]
pub async fn find_by_username(
    c: &impl GenericClient,
    username: &str,
) -> Result<Option<User>, DbError> {
    let stmt = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
        .await?;
    one(c.query_opt(&stmt, &[&username]).await?)
}

#[tracing::instrument(skip(c))]
pub async fn admin_exists(c: &impl GenericClient) -> Result<bool, DbError> {
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin')",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Stores a new password: bumps the token version (every earlier token dies), records it in
/// the history and keeps the last [`PASSWORD_HISTORY_DEPTH`] entries.
#[tracing::instrument(skip(c, hashed_password))]
pub async fn change_password(
    c: &impl GenericClient,
    id: Uuid,
    hashed_password: &str,
    must_change: bool,
) -> Result<Option<User>, DbError> {
    let sql = format!(
        "WITH u AS (
            UPDATE users SET hashed_password = $2, password_must_change = $3, password_changed_at = now(),
                             token_version = token_version + 1
            WHERE id = $1 RETURNING {COLUMNS}),
         h AS (INSERT INTO password_history (user_id, hashed_password) SELECT id, hashed_password FROM u)
         SELECT {COLUMNS} FROM u"
    );
    let user = one(c
        .query_opt(&sql, &[&id, &hashed_password, &must_change])
        .await?)?;
    c.execute(
        "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN (
            SELECT id FROM password_history WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
        &[&id, &PASSWORD_HISTORY_DEPTH],
    )
    .await?;
    Ok(user)
}

/// The user's most recent password hashes, newest first.
#[tracing::instrument(skip(c))]
pub async fn recent_password_hashes(
    c: &impl GenericClient,
    id: Uuid,
) -> Result<Vec<String>, DbError> {
    let rows = c
        .query(
            "SELECT hashed_password FROM password_history WHERE user_id = $1
             ORDER BY created_at DESC, id DESC LIMIT $2",
            &[&id, &PASSWORD_HISTORY_DEPTH],
        )
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(DbError::from))
        .collect()
}

/// Replaces the hash of the same password (rehash with today's parameters): no revocation.
#[tracing::instrument(skip(c, hashed_password))]
pub async fn update_hash(
    c: &impl GenericClient,
    id: Uuid,
    hashed_password: &str,
) -> Result<(), DbError> {
    c.execute(
        "UPDATE users SET hashed_password = $2 WHERE id = $1",
        &[&id, &hashed_password],
    )
    .await?;
    Ok(())
}

#[tracing::instrument(skip(c))]
pub async fn record_login(c: &impl GenericClient, id: Uuid) -> Result<(), DbError> {
    let stmt = c
        .prepare_cached("UPDATE users SET last_login = now() WHERE id = $1")
        .await?;
    c.execute(&stmt, &[&id]).await?;
    Ok(())
}

/// Revokes every token of the user (logout everywhere).
#[tracing::instrument(skip(c))]
pub async fn bump_token_version(c: &impl GenericClient, id: Uuid) -> Result<(), DbError> {
    c.execute(
        "UPDATE users SET token_version = token_version + 1 WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Active, waiting for approval.
    Pending,
    /// Active and approved.
    Approved,
    Blocked,
}

impl StatusFilter {
    pub const ALL: [StatusFilter; 3] = [
        StatusFilter::Pending,
        StatusFilter::Approved,
        StatusFilter::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Pending => "pending",
            StatusFilter::Approved => "approved",
            StatusFilter::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<StatusFilter> {
        StatusFilter::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub status: Option<StatusFilter>,
    pub role: Option<Role>,
    pub limit: i64,
    pub offset: i64,
}

/// One page of users, newest first, and the total matching the filter.
#[tracing::instrument(skip(c))]
pub async fn list(
    c: &impl GenericClient,
    filter: &UserFilter,
) -> Result<(Vec<User>, i64), DbError> {
    let status = filter.status.map(|s| match s {
        StatusFilter::Pending => "pending",
        StatusFilter::Approved => "approved",
        StatusFilter::Blocked => "blocked",
    });
    let role = filter.role.map(Role::as_str);
    let condition = "($1::text IS NULL
            OR ($1 = 'pending' AND is_active AND NOT is_approved)
            OR ($1 = 'approved' AND is_active AND is_approved)
            OR ($1 = 'blocked' AND NOT is_active))
        AND ($2::text IS NULL OR role = $2)";
    let rows = c
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE {condition} ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"),
            &[&status, &role, &filter.limit, &filter.offset],
        )
        .await?;
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM users WHERE {condition}"),
            &[&status, &role],
        )
        .await?
        .try_get(0)?;
    let users = rows.iter().map(User::try_from).collect::<Result<_, _>>()?;
    Ok((users, total))
}

#[tracing::instrument(skip(c))]
pub async fn approve(c: &impl GenericClient, id: Uuid, by: Uuid) -> Result<Option<User>, DbError> {
    one(c
        .query_opt(
            &format!(
                "UPDATE users SET is_approved = true, approved_by = $2, approved_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &by],
        )
        .await?)
}

/// Blocks (revoking every token) or unblocks a user.
#[tracing::instrument(skip(c))]
pub async fn set_active(
    c: &impl GenericClient,
    id: Uuid,
    active: bool,
) -> Result<Option<User>, DbError> {
    one(c
        .query_opt(
            &format!(
                "UPDATE users SET is_active = $2,
                        token_version = token_version + CASE WHEN $2 THEN 0 ELSE 1 END
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &active],
        )
        .await?)
}

/// Deletes a user; its tasks and progress go with it (`ON DELETE CASCADE`). Returns the user
/// and how many tasks were removed.
#[tracing::instrument(skip(c))]
pub async fn delete(c: &impl GenericClient, id: Uuid) -> Result<Option<(User, i64)>, DbError> {
    let row = c
        .query_opt(
            &format!(
                "WITH t AS (SELECT count(*) AS n FROM tasks WHERE owner_id = $1)
                 DELETE FROM users WHERE id = $1 RETURNING {COLUMNS}, (SELECT n FROM t) AS tasks_deleted"
            ),
            &[&id],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some((User::try_from(&r)?, r.try_get("tasks_deleted")?))),
    }
}
