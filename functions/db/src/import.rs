//! The v4/v5 data import (`pcap_analyzer db import-v4`): the users, tasks and progress snapshots
//! read from a legacy SQLite database go into Postgres in ONE transaction, verified before the
//! commit, so an import is all or nothing.
//!
//! Re-running is safe: users and tasks keep their v5 ids, a row whose id is already there is
//! left alone, and snapshots are only written together with their (new) task. A legacy user whose
//! username is already taken by another account (typically the brise-glace `admin` created by
//! `migrate`) is matched to that account instead of being duplicated.

use crate::{DbError, Pool};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;
use uuid::Uuid;

/// Imported tasks expire like any task, but only this long after the import: their owners get
/// time to look at their history first (the janitor then expires them).
pub const LEGACY_TASK_RETENTION_DAYS: i64 = 30;

/// Serialises concurrent imports (two operators, or a retry) for the duration of the transaction.
/// ASCII "v4im".
const IMPORT_LOCK_KEY: i64 = 0x7634_696d;

/// Status given to legacy tasks that were still pending or running when v4/v5 was stopped: no
/// analyzer will ever pick them up again.
const INTERRUPTED_MESSAGE: &str =
    "interrupted by the migration from v4/v5; upload the capture again";

/// A `users` row of the legacy database (v5-inventory §5).
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    /// bcrypt (`$2b$12$...`) in v4/v5; the login verifies it and rehashes to argon2id.
    pub hashed_password: String,
    pub role: String,
    pub is_active: bool,
    pub is_approved: bool,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<OffsetDateTime>,
    pub created_at: Option<OffsetDateTime>,
    pub last_login: Option<OffsetDateTime>,
    pub password_must_change: bool,
}

/// A `tasks` row of the legacy database. `owner_id` is `None` for v4 tasks (admin-only).
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyTask {
    pub task_id: Uuid,
    pub owner_id: Option<Uuid>,
    pub filename: String,
    pub status: String,
    pub file_size_bytes: Option<i64>,
    pub uploaded_at: Option<OffsetDateTime>,
    pub analyzed_at: Option<OffsetDateTime>,
    pub created_at: Option<OffsetDateTime>,
    pub total_packets: Option<i64>,
    pub health_score: Option<f64>,
    pub error_message: Option<String>,
    pub progress_percent: Option<i32>,
    pub current_phase: Option<String>,
    pub last_heartbeat: Option<OffsetDateTime>,
}

/// A `progress_snapshots` row of the legacy database.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacySnapshot {
    pub task_id: Uuid,
    pub phase: String,
    pub progress_percent: i32,
    pub packets_processed: Option<i64>,
    pub total_packets: Option<i64>,
    pub current_analyzer: Option<String>,
    pub message: Option<String>,
    pub timestamp: OffsetDateTime,
}

/// Everything read from the legacy database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegacyData {
    pub users: Vec<LegacyUser>,
    pub tasks: Vec<LegacyTask>,
    pub snapshots: Vec<LegacySnapshot>,
}

/// Rows of one table: read from SQLite, written now, found already there from an earlier run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub read: usize,
    pub imported: usize,
    pub already_present: usize,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub users: Counts,
    pub tasks: Counts,
    pub snapshots: Counts,
    /// Legacy users matched by username to an account that already existed under another id.
    pub users_matched_by_username: usize,
    /// Tasks imported without owner (v4 rows, or an owner that is not in either database).
    pub tasks_without_owner: usize,
    /// Pending or running legacy tasks, imported as `failed`.
    pub tasks_interrupted: usize,
    /// Snapshots whose task is not in the legacy database (SQLite did not enforce the key).
    pub snapshots_without_task: usize,
    pub dry_run: bool,
}

/// Imports `data` in one transaction, verifies it, then commits (or rolls back when `dry_run`).
#[tracing::instrument(skip_all, fields(users = data.users.len(), tasks = data.tasks.len(), snapshots = data.snapshots.len(), dry_run))]
pub async fn import_legacy(
    pool: &Pool,
    data: &LegacyData,
    dry_run: bool,
) -> Result<ImportReport, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&IMPORT_LOCK_KEY])
        .await?;

    let mut report = ImportReport {
        dry_run,
        ..ImportReport::default()
    };
    let user_ids = import_users(&tx, &data.users, &mut report).await?;
    let new_tasks = import_tasks(&tx, &data.tasks, &user_ids, &mut report).await?;
    import_snapshots(&tx, data, &new_tasks, &mut report).await?;
    verify(&tx, data, &user_ids, &new_tasks, &report).await?;

    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(report)
}

/// Inserts the users not there yet; returns legacy id → id in Postgres for every legacy user.
async fn import_users(
    tx: &deadpool_postgres::Transaction<'_>,
    users: &[LegacyUser],
    report: &mut ImportReport,
) -> Result<HashMap<Uuid, Uuid>, DbError> {
    report.users.read = users.len();
    let mut ids = HashMap::with_capacity(users.len());
    let mut inserted = Vec::new();
    for u in users {
        let username = u.username.trim().to_lowercase();
        let by_id = tx
            .query_opt("SELECT id FROM users WHERE id = $1", &[&u.id])
            .await?;
        if by_id.is_some() {
            report.users.already_present += 1;
            ids.insert(u.id, u.id);
            continue;
        }
        let by_name = tx
            .query_opt("SELECT id FROM users WHERE username = $1", &[&username])
            .await?;
        if let Some(row) = by_name {
            report.users.already_present += 1;
            report.users_matched_by_username += 1;
            ids.insert(u.id, row.get(0));
            continue;
        }
        let role = match u.role.as_str() {
            "admin" | "user" => u.role.as_str(),
            other => {
                return Err(DbError::Data(format!(
                    "user {} ({}): unknown role {other:?}",
                    u.username, u.id
                )))
            }
        };
        let now = OffsetDateTime::now_utc();
        let created_at = u.created_at.unwrap_or(now);
        let approved_at = if u.is_approved { u.approved_at } else { None };
        tx.execute(
            "INSERT INTO users (id, username, email, hashed_password, role, is_active, is_approved, \
                 approved_at, created_at, last_login, password_must_change, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9)",
            &[
                &u.id,
                &username,
                &u.email.trim(),
                &u.hashed_password,
                &role,
                &u.is_active,
                &u.is_approved,
                &approved_at,
                &created_at,
                &u.last_login,
                &u.password_must_change,
            ],
        )
        .await
        .map_err(|e| user_error(u, e))?;
        report.users.imported += 1;
        ids.insert(u.id, u.id);
        inserted.push(u);
    }
    // Approvers are set once every user exists, since an approver may come later in the file.
    for u in inserted {
        if let Some(by) = u.approved_by.and_then(|b| ids.get(&b)) {
            if u.is_approved {
                tx.execute(
                    "UPDATE users SET approved_by = $2 WHERE id = $1",
                    &[&u.id, by],
                )
                .await?;
            }
        }
    }
    Ok(ids)
}

fn user_error(u: &LegacyUser, e: tokio_postgres::Error) -> DbError {
    match crate::map_unique(e) {
        DbError::Duplicate(field) => DbError::Data(format!(
            "user {} ({}): another account already has this {field}",
            u.username, u.id
        )),
        DbError::Query(e) => match e.as_db_error() {
            Some(db) => DbError::Data(format!(
                "user {} ({}): refused by Postgres: {}",
                u.username,
                u.id,
                db.message()
            )),
            None => DbError::Query(e),
        },
        other => other,
    }
}

/// Inserts the tasks not there yet; returns the ids of those inserted now.
async fn import_tasks(
    tx: &deadpool_postgres::Transaction<'_>,
    tasks: &[LegacyTask],
    user_ids: &HashMap<Uuid, Uuid>,
    report: &mut ImportReport,
) -> Result<HashSet<Uuid>, DbError> {
    report.tasks.read = tasks.len();
    let now = OffsetDateTime::now_utc();
    let expires_at = now + time::Duration::days(LEGACY_TASK_RETENTION_DAYS);
    let mut inserted = HashSet::new();
    for t in tasks {
        let (status, error_message) = match t.status.as_str() {
            "completed" | "failed" | "expired" => (t.status.as_str(), t.error_message.clone()),
            "pending" | "processing" | "uploaded" => {
                report.tasks_interrupted += 1;
                ("failed", Some(INTERRUPTED_MESSAGE.to_string()))
            }
            other => {
                return Err(DbError::Data(format!(
                    "task {}: unknown status {other:?}",
                    t.task_id
                )))
            }
        };
        let owner = match t.owner_id {
            None => None,
            Some(legacy) => match user_ids.get(&legacy) {
                Some(id) => Some(*id),
                None => tx
                    .query_opt("SELECT id FROM users WHERE id = $1", &[&legacy])
                    .await?
                    .map(|r| r.get::<_, Uuid>(0)),
            },
        };
        let progress = t.progress_percent.unwrap_or(0).clamp(0, 100);
        let created_at = t.created_at.or(t.uploaded_at).unwrap_or(now);
        let file_size = t.file_size_bytes.unwrap_or(0).max(0);
        let row = tx
            .query_opt(
                "INSERT INTO tasks (task_id, owner_id, filename, status, file_size_bytes, uploaded_at, \
                     analyzed_at, total_packets, health_score, error_message, progress_percent, \
                     current_phase, last_heartbeat, created_at, updated_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15) \
                 ON CONFLICT (task_id) DO NOTHING RETURNING task_id",
                &[
                    &t.task_id,
                    &owner,
                    &t.filename,
                    &status,
                    &file_size,
                    &t.uploaded_at,
                    &t.analyzed_at,
                    &t.total_packets,
                    &t.health_score,
                    &error_message,
                    &progress,
                    &t.current_phase,
                    &t.last_heartbeat,
                    &created_at,
                    &expires_at,
                ],
            )
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => DbError::Data(format!(
                    "task {}: refused by Postgres: {}",
                    t.task_id,
                    db.message()
                )),
                None => DbError::Query(e),
            })?;
        if row.is_some() {
            report.tasks.imported += 1;
            if owner.is_none() {
                report.tasks_without_owner += 1;
            }
            inserted.insert(t.task_id);
        } else {
            report.tasks.already_present += 1;
        }
    }
    Ok(inserted)
}

/// Writes the snapshots of the tasks inserted by this run; those of earlier runs are there.
async fn import_snapshots(
    tx: &deadpool_postgres::Transaction<'_>,
    data: &LegacyData,
    new_tasks: &HashSet<Uuid>,
    report: &mut ImportReport,
) -> Result<(), DbError> {
    report.snapshots.read = data.snapshots.len();
    let known: HashSet<Uuid> = data.tasks.iter().map(|t| t.task_id).collect();
    for s in &data.snapshots {
        if !known.contains(&s.task_id) {
            report.snapshots_without_task += 1;
            continue;
        }
        if !new_tasks.contains(&s.task_id) {
            report.snapshots.already_present += 1;
            continue;
        }
        tx.execute(
            "INSERT INTO progress_snapshots (task_id, phase, progress_percent, packets_processed, \
                 total_packets, current_analyzer, message, \"timestamp\") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &s.task_id,
                &s.phase,
                &s.progress_percent.clamp(0, 100),
                &s.packets_processed.map(|n| n.max(0)),
                &s.total_packets.map(|n| n.max(0)),
                &s.current_analyzer,
                &s.message,
                &s.timestamp,
            ],
        )
        .await?;
        report.snapshots.imported += 1;
    }
    Ok(())
}

/// Counts what Postgres holds now against what was read: no row lost, or no commit.
async fn verify(
    tx: &deadpool_postgres::Transaction<'_>,
    data: &LegacyData,
    user_ids: &HashMap<Uuid, Uuid>,
    new_tasks: &HashSet<Uuid>,
    report: &ImportReport,
) -> Result<(), DbError> {
    let targets: Vec<Uuid> = user_ids
        .values()
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let users: i64 = tx
        .query_one("SELECT count(*) FROM users WHERE id = ANY($1)", &[&targets])
        .await?
        .get(0);
    let task_ids: Vec<Uuid> = data.tasks.iter().map(|t| t.task_id).collect();
    let tasks: i64 = tx
        .query_one(
            "SELECT count(DISTINCT task_id) FROM tasks WHERE task_id = ANY($1)",
            &[&task_ids],
        )
        .await?
        .get(0);
    let distinct_tasks = task_ids.iter().collect::<HashSet<_>>().len();
    let new: Vec<Uuid> = new_tasks.iter().copied().collect();
    let snapshots: i64 = tx
        .query_one(
            "SELECT count(*) FROM progress_snapshots WHERE task_id = ANY($1)",
            &[&new],
        )
        .await?
        .get(0);

    let mut problems = Vec::new();
    if user_ids.len() != data.users.len() || users as usize != targets.len() {
        problems.push(format!(
            "{} users read, {} found in Postgres",
            data.users.len(),
            users
        ));
    }
    if tasks as usize != distinct_tasks || distinct_tasks != data.tasks.len() {
        problems.push(format!(
            "{} tasks read, {} found in Postgres",
            data.tasks.len(),
            tasks
        ));
    }
    if snapshots as usize != report.snapshots.imported
        || report.snapshots.imported
            + report.snapshots.already_present
            + report.snapshots_without_task
            != data.snapshots.len()
    {
        problems.push(format!(
            "{} snapshots to write, {} found in Postgres",
            report.snapshots.imported, snapshots
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DbError::Data(format!(
            "verification failed, nothing imported: {}",
            problems.join("; ")
        )))
    }
}
