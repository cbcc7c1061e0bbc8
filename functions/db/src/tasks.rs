//! Tasks repository: the upload/analysis pipeline's state in Postgres.
//!
//! State changes are conditional `UPDATE ... WHERE status IN (...) RETURNING`, so two deliveries
//! of the same S3 event (or a late one after the janitor gave up) cannot both act: Postgres
//! decides which one wins, not the memory of one Lambda instance.
//!
//! `pending` (URL issued) → `uploaded` → `processing` → `completed` | `failed` | `expired`.

use crate::{DbError, GenericClient};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Uploaded,
    Processing,
    Completed,
    Failed,
    Expired,
}

impl Status {
    /// Every status, in the order of the pipeline.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Uploaded,
        Status::Processing,
        Status::Completed,
        Status::Failed,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Uploaded => "uploaded",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "uploaded" => Status::Uploaded,
            "processing" => Status::Processing,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "expired" => Status::Expired,
            _ => return None,
        })
    }

    /// States that still hold (or will hold) an upload being worked on.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Pending | Status::Uploaded | Status::Processing
        )
    }
}

/// A new task in state `pending` (upload URL issued).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub task_id: Uuid,
    pub owner_id: Option<Uuid>,
    pub filename: String,
    pub file_size_bytes: i64,
    pub s3_key: String,
    pub expires_at: OffsetDateTime,
}

/// A row of `tasks`, with the owner's name for admin listings.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub task_id: Uuid,
    pub owner_id: Option<Uuid>,
    pub owner_username: Option<String>,
    pub filename: String,
    pub status: Status,
    pub file_size_bytes: i64,
    #[serde(skip)]
    pub s3_key: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub uploaded_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub analyzed_at: Option<OffsetDateTime>,
    pub total_packets: Option<i64>,
    pub health_score: Option<f64>,
    pub capture_duration: Option<f64>,
    #[serde(skip)]
    pub report_html_key: Option<String>,
    #[serde(skip)]
    pub report_json_key: Option<String>,
    pub error_message: Option<String>,
    pub progress_percent: i32,
    pub current_phase: Option<String>,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_heartbeat: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The S3 multipart upload of the capture, while it goes up in parts.
    #[serde(skip)]
    pub multipart: Option<Multipart>,
}

/// An S3 multipart upload and the part size its URLs are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    pub upload_id: String,
    pub part_bytes: i64,
}

const COLUMNS: &str = "t.task_id, t.owner_id, u.username AS owner_username, t.filename, t.status, \
    t.file_size_bytes, t.s3_key, t.uploaded_at, t.analyzed_at, t.total_packets, t.health_score, \
    t.capture_duration, t.report_html_key, t.report_json_key, t.error_message, t.progress_percent, \
    t.current_phase, t.attempts, t.last_heartbeat, t.created_at, t.expires_at, \
    t.multipart_upload_id, t.multipart_part_bytes";

impl TryFrom<&Row> for Task {
    type Error = DbError;

    fn try_from(r: &Row) -> Result<Self, DbError> {
        let status: String = r.try_get("status")?;
        Ok(Task {
            task_id: r.try_get("task_id")?,
            owner_id: r.try_get("owner_id")?,
            owner_username: r.try_get("owner_username")?,
            filename: r.try_get("filename")?,
            status: Status::parse(&status)
                .ok_or_else(|| DbError::Data(format!("unknown task status {status}")))?,
            file_size_bytes: r.try_get("file_size_bytes")?,
            s3_key: r.try_get("s3_key")?,
            uploaded_at: r.try_get("uploaded_at")?,
            analyzed_at: r.try_get("analyzed_at")?,
            total_packets: r.try_get("total_packets")?,
            health_score: r.try_get("health_score")?,
            capture_duration: r.try_get("capture_duration")?,
            report_html_key: r.try_get("report_html_key")?,
            report_json_key: r.try_get("report_json_key")?,
            error_message: r.try_get("error_message")?,
            progress_percent: r.try_get("progress_percent")?,
            current_phase: r.try_get("current_phase")?,
            attempts: r.try_get("attempts")?,
            last_heartbeat: r.try_get("last_heartbeat")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            multipart: match (
                r.try_get::<_, Option<String>>("multipart_upload_id")?,
                r.try_get::<_, Option<i64>>("multipart_part_bytes")?,
            ) {
                (Some(upload_id), Some(part_bytes)) => Some(Multipart {
                    upload_id,
                    part_bytes,
                }),
                _ => None,
            },
        })
    }
}

fn rows(rows: Vec<Row>) -> Result<Vec<Task>, DbError> {
    rows.iter().map(Task::try_from).collect()
}

/// Who is asking: a user sees their own tasks; an admin sees all, including legacy rows
/// without an owner.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub user_id: Uuid,
    pub is_admin: bool,
}

#[tracing::instrument(skip(c), fields(task_id = %t.task_id))]
pub async fn insert_pending(c: &impl GenericClient, t: &NewTask) -> Result<(), DbError> {
    insert(c, t, None).await
}

async fn insert(
    c: &impl GenericClient,
    t: &NewTask,
    multipart: Option<&Multipart>,
) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO tasks (task_id, owner_id, filename, file_size_bytes, s3_key, expires_at, status,
                            multipart_upload_id, multipart_part_bytes)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        &[
            &t.task_id,
            &t.owner_id,
            &t.filename,
            &t.file_size_bytes,
            &t.s3_key,
            &t.expires_at,
            &multipart.map(|m| m.upload_id.as_str()),
            &multipart.map(|m| m.part_bytes),
        ],
    )
    .await
    .map_err(crate::map_unique)?;
    Ok(())
}

/// What one user may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Tasks pending, uploaded or processing.
    pub max_active_tasks: i64,
    /// Declared bytes of every task not yet expired.
    pub max_stored_bytes: i64,
}

/// Inserts the pending task if its owner stays within `quota`, or says what the owner holds.
/// The owner's row is locked for the check and the insert (one transaction), so parallel
/// uploads of one user are decided one after the other and cannot all pass one early count.
#[tracing::instrument(skip(client), fields(task_id = %t.task_id))]
pub async fn insert_pending_within(
    client: &mut crate::Client,
    t: &NewTask,
    quota: Quota,
) -> Result<Result<(), Usage>, DbError> {
    insert_within(client, t, None, quota).await
}

/// [`insert_pending_within`] for a capture going up as the multipart upload `multipart`.
#[tracing::instrument(skip(client, multipart), fields(task_id = %t.task_id))]
pub async fn insert_multipart_within(
    client: &mut crate::Client,
    t: &NewTask,
    multipart: &Multipart,
    quota: Quota,
) -> Result<Result<(), Usage>, DbError> {
    insert_within(client, t, Some(multipart), quota).await
}

async fn insert_within(
    client: &mut crate::Client,
    t: &NewTask,
    multipart: Option<&Multipart>,
    quota: Quota,
) -> Result<Result<(), Usage>, DbError> {
    let tx = client.transaction().await?;
    if let Some(owner) = t.owner_id {
        tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&owner])
            .await?;
        let held = usage(&tx, owner).await?;
        if held.active_tasks >= quota.max_active_tasks
            || held.stored_bytes.max(0).saturating_add(t.file_size_bytes) > quota.max_stored_bytes
        {
            return Ok(Err(held));
        }
    }
    insert(&tx, t, multipart).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

#[tracing::instrument(skip(c))]
pub async fn count_for_owner(c: &impl GenericClient, owner_id: Uuid) -> Result<i64, DbError> {
    Ok(c.query_one(
        "SELECT count(*) FROM tasks WHERE owner_id = $1",
        &[&owner_id],
    )
    .await?
    .try_get(0)?)
}

/// What a user currently holds, for the upload quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tasks pending, uploaded or processing.
    pub active_tasks: i64,
    /// Declared bytes of every task not yet expired (uploads and the reports they made).
    pub stored_bytes: i64,
}

#[tracing::instrument(skip(c))]
pub async fn usage(c: &impl GenericClient, owner_id: Uuid) -> Result<Usage, DbError> {
    let r = c
        .query_one(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'uploaded', 'processing')),
                    coalesce(sum(file_size_bytes) FILTER (WHERE status <> 'expired'), 0)::bigint
             FROM tasks WHERE owner_id = $1",
            &[&owner_id],
        )
        .await?;
    Ok(Usage {
        active_tasks: r.try_get(0)?,
        stored_bytes: r.try_get(1)?,
    })
}

/// The task if `viewer` may see it; `None` both when it does not exist and when it is someone
/// else's (the API answers 404 either way).
#[tracing::instrument(skip(c))]
pub async fn find_visible(
    c: &impl GenericClient,
    task_id: Uuid,
    viewer: Viewer,
) -> Result<Option<Task>, DbError> {
    find_where(
        c,
        "t.task_id = $1 AND ($2 OR t.owner_id = $3)",
        &[&task_id, &viewer.is_admin, &viewer.user_id],
    )
    .await
}

#[tracing::instrument(skip(c))]
pub async fn find(c: &impl GenericClient, task_id: Uuid) -> Result<Option<Task>, DbError> {
    find_where(c, "t.task_id = $1", &[&task_id]).await
}

/// The task `condition` (on `tasks t`) finds, with its owner's name.
async fn find_where(
    c: &impl GenericClient,
    condition: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<Task>, DbError> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM tasks t LEFT JOIN users u ON u.id = t.owner_id
                 WHERE {condition}"
            ),
            params,
        )
        .await?;
    row.as_ref().map(Task::try_from).transpose()
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<Status>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of the tasks `viewer` may see, newest first, and the total count.
#[tracing::instrument(skip(c))]
pub async fn list(
    c: &impl GenericClient,
    viewer: Viewer,
    filter: &TaskFilter,
) -> Result<(Vec<Task>, i64), DbError> {
    let status = filter.status.map(Status::as_str);
    let found = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM tasks t LEFT JOIN users u ON u.id = t.owner_id
                 WHERE ($1 OR t.owner_id = $2) AND ($3::text IS NULL OR t.status = $3)
                 ORDER BY t.created_at DESC, t.task_id LIMIT $4 OFFSET $5"
            ),
            &[
                &viewer.is_admin,
                &viewer.user_id,
                &status,
                &filter.limit,
                &filter.offset,
            ],
        )
        .await?;
    let total: i64 = c
        .query_one(
            "SELECT count(*) FROM tasks t
             WHERE ($1 OR t.owner_id = $2) AND ($3::text IS NULL OR t.status = $3)",
            &[&viewer.is_admin, &viewer.user_id, &status],
        )
        .await?
        .try_get(0)?;
    Ok((rows(found)?, total))
}

/// Counts per active state, for `GET /api/queue/status` (one user's, or everyone's).
#[tracing::instrument(skip(c))]
pub async fn active_counts(
    c: &impl GenericClient,
    owner: Option<Uuid>,
) -> Result<Vec<(Status, i64)>, DbError> {
    let found = c
        .query(
            "SELECT status, count(*) FROM tasks
             WHERE status IN ('pending', 'uploaded', 'processing')
               AND ($1::uuid IS NULL OR owner_id = $1)
             GROUP BY status ORDER BY status",
            &[&owner],
        )
        .await?;
    found
        .iter()
        .map(|r| {
            let s: String = r.try_get(0)?;
            let status =
                Status::parse(&s).ok_or_else(|| DbError::Data(format!("unknown status {s}")))?;
            Ok((status, r.try_get(1)?))
        })
        .collect()
}

/// A progress snapshot (bytes read out of the object's size).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub phase: String,
    pub progress_percent: i32,
    pub bytes_read: Option<i64>,
    pub bytes_total: Option<i64>,
    pub packets_processed: Option<i64>,
    pub message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
}

/// The latest `limit` snapshots of a task, oldest first.
#[tracing::instrument(skip(c))]
pub async fn progress_history(
    c: &impl GenericClient,
    task_id: Uuid,
    limit: i64,
) -> Result<Vec<Snapshot>, DbError> {
    let found = c
        .query(
            "SELECT * FROM (
                SELECT phase, progress_percent, bytes_read, bytes_total, packets_processed, message,
                       \"timestamp\", id
                FROM progress_snapshots WHERE task_id = $1 ORDER BY id DESC LIMIT $2) s
             ORDER BY id",
            &[&task_id, &limit],
        )
        .await?;
    found
        .iter()
        .map(|r| {
            Ok(Snapshot {
                phase: r.try_get(0)?,
                progress_percent: r.try_get(1)?,
                bytes_read: r.try_get(2)?,
                bytes_total: r.try_get(3)?,
                packets_processed: r.try_get(4)?,
                message: r.try_get(5)?,
                timestamp: r.try_get(6)?,
            })
        })
        .collect()
}

/// The status of the task whose upload is `s3_key`, and the ETag of the object it analysed
/// (`None` when no task has this key).
#[tracing::instrument(skip(c))]
pub async fn upload_state(
    c: &impl GenericClient,
    s3_key: &str,
) -> Result<Option<(Status, Option<String>)>, DbError> {
    let row = c
        .query_opt(
            "SELECT status, s3_etag FROM tasks WHERE s3_key = $1",
            &[&s3_key],
        )
        .await?;
    row.map(|r| {
        let status: String = r.try_get(0)?;
        let status = Status::parse(&status)
            .ok_or_else(|| DbError::Data(format!("unknown task status {status}")))?;
        Ok((status, r.try_get(1)?))
    })
    .transpose()
}

/// A worker's hold on a task: the task and the generation its claim made (the attempt count).
/// Every write of the worker names it, so a worker whose claim was taken over after a stale
/// heartbeat changes nothing: a fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub task_id: Uuid,
    pub generation: i32,
}

impl Task {
    /// The claim this row records (meaningful on the row [`claim`] returned).
    pub fn claim(&self) -> Claim {
        Claim {
            task_id: self.task_id,
            generation: self.attempts,
        }
    }
}

/// Takes the task whose upload is `s3_key` for analysis. Only one caller ever gets it: the
/// task must be `pending`/`uploaded`, or `processing` with a heartbeat older than `stale` (the
/// previous attempt died without releasing it). A duplicate or concurrent delivery gets `None`.
#[tracing::instrument(skip(c))]
pub async fn claim(
    c: &impl GenericClient,
    s3_key: &str,
    etag: Option<&str>,
    stale: Duration,
) -> Result<Option<Task>, DbError> {
    let row = c
        .query_opt(
            &format!(
                "WITH claimed AS (
                    UPDATE tasks SET status = 'processing', s3_etag = coalesce($2, s3_etag),
                        uploaded_at = coalesce(uploaded_at, now()), attempts = attempts + 1,
                        last_heartbeat = now(), progress_percent = 0, current_phase = 'reading',
                        error_message = NULL, updated_at = now()
                    WHERE s3_key = $1 AND (status IN ('pending', 'uploaded')
                        OR (status = 'processing'
                            AND last_heartbeat < now() - make_interval(secs => $3::float8)))
                    RETURNING *)
                 SELECT {COLUMNS} FROM claimed t LEFT JOIN users u ON u.id = t.owner_id"
            ),
            &[&s3_key, &etag, &stale.as_secs_f64()],
        )
        .await?;
    row.as_ref().map(Task::try_from).transpose()
}

/// What [`claim_fairly`] got.
#[derive(Debug)]
pub enum Claimed {
    Task(Box<Task>),
    /// The owner already has this many analyses running: the task waits, others go first.
    OwnerBusy {
        analysing: i64,
    },
    /// Not claimable: a duplicate delivery, a task in other hands, or no task with this key.
    Nothing,
}

/// [`claim`], unless the task's owner already has `per_owner` analyses running (heartbeats
/// fresher than `stale`): one user's uploads cannot take every analyzer slot. The owner's row
/// is locked for the count and the claim (one transaction), so parallel deliveries of one
/// user's tasks are decided one after the other.
#[tracing::instrument(skip(client))]
pub async fn claim_fairly(
    client: &mut crate::Client,
    s3_key: &str,
    etag: Option<&str>,
    stale: Duration,
    per_owner: i64,
) -> Result<Claimed, DbError> {
    let stale_secs = stale.as_secs_f64();
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT owner_id FROM tasks WHERE s3_key = $1 AND (status IN ('pending', 'uploaded')
                 OR (status = 'processing'
                     AND last_heartbeat < now() - make_interval(secs => $2::float8)))",
            &[&s3_key, &stale_secs],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Claimed::Nothing);
    };
    let owner: Option<Uuid> = row.try_get(0)?;
    if let Some(owner) = owner {
        tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&owner])
            .await?;
        let analysing: i64 = tx
            .query_one(
                "SELECT count(*) FROM tasks
                 WHERE owner_id = $1 AND s3_key <> $2 AND status = 'processing'
                   AND last_heartbeat >= now() - make_interval(secs => $3::float8)",
                &[&owner, &s3_key, &stale_secs],
            )
            .await?
            .try_get(0)?;
        if analysing >= per_owner {
            return Ok(Claimed::OwnerBusy { analysing });
        }
    }
    let task = claim(&tx, s3_key, etag, stale).await?;
    tx.commit().await?;
    Ok(task.map_or(Claimed::Nothing, |t| Claimed::Task(Box::new(t))))
}

/// Gives a task back after a transient failure, so the retried delivery can claim it.
#[tracing::instrument(skip(c))]
pub async fn release(c: &impl GenericClient, claim: Claim, why: &str) -> Result<bool, DbError> {
    Ok(c.execute(
        "UPDATE tasks SET status = 'uploaded', current_phase = 'retrying', error_message = $2,
                updated_at = now()
         WHERE task_id = $1 AND status = 'processing' AND attempts = $3",
        &[&claim.task_id, &why, &claim.generation],
    )
    .await?
        == 1)
}

/// Records a snapshot and the heartbeat, while the task is still being processed by us.
#[tracing::instrument(skip(c, s))]
pub async fn record_progress(
    c: &impl GenericClient,
    claim: Claim,
    s: &Snapshot,
) -> Result<bool, DbError> {
    let task_id = claim.task_id;
    let updated = c
        .execute(
            "UPDATE tasks SET progress_percent = $2, current_phase = $3, last_heartbeat = now(),
                    updated_at = now()
             WHERE task_id = $1 AND status = 'processing' AND attempts = $4",
            &[&task_id, &s.progress_percent, &s.phase, &claim.generation],
        )
        .await?;
    if updated == 0 {
        return Ok(false);
    }
    c.execute(
        "INSERT INTO progress_snapshots
            (task_id, phase, progress_percent, bytes_read, bytes_total, packets_processed, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &task_id,
            &s.phase,
            &s.progress_percent,
            &s.bytes_read,
            &s.bytes_total,
            &s.packets_processed,
            &s.message,
        ],
    )
    .await?;
    Ok(true)
}

/// Only the heartbeat (a long phase without byte progress, e.g. writing reports).
#[tracing::instrument(skip(c))]
pub async fn heartbeat(c: &impl GenericClient, claim: Claim) -> Result<bool, DbError> {
    Ok(c.execute(
        "UPDATE tasks SET last_heartbeat = now()
         WHERE task_id = $1 AND status = 'processing' AND attempts = $2",
        &[&claim.task_id, &claim.generation],
    )
    .await?
        == 1)
}

/// What a finished analysis stores on the task row.
#[derive(Debug, Clone)]
pub struct Summary {
    pub total_packets: i64,
    pub health_score: Option<f64>,
    pub capture_duration: f64,
    pub report_html_key: String,
    pub report_json_key: String,
    /// Reports are kept this long from now.
    pub keep_for: Duration,
}

/// Completes a task we are processing; `false` if it was expired, deleted or failed meanwhile.
#[tracing::instrument(skip(c, s))]
pub async fn complete(c: &impl GenericClient, claim: Claim, s: &Summary) -> Result<bool, DbError> {
    let task_id = claim.task_id;
    let updated = c
        .execute(
            "UPDATE tasks SET status = 'completed', analyzed_at = now(), total_packets = $2,
                    health_score = $3, capture_duration = $4, report_html_key = $5,
                    report_json_key = $6, progress_percent = 100, current_phase = 'completed',
                    error_message = NULL, last_heartbeat = now(), updated_at = now(),
                    expires_at = now() + make_interval(secs => $7::float8)
             WHERE task_id = $1 AND status = 'processing' AND attempts = $8",
            &[
                &task_id,
                &s.total_packets,
                &s.health_score,
                &s.capture_duration,
                &s.report_html_key,
                &s.report_json_key,
                &s.keep_for.as_secs_f64(),
                &claim.generation,
            ],
        )
        .await?;
    if updated == 1 {
        c.execute(
            "INSERT INTO progress_snapshots (task_id, phase, progress_percent, message)
             VALUES ($1, 'completed', 100, 'analysis complete')",
            &[&task_id],
        )
        .await?;
    }
    Ok(updated == 1)
}

/// Ends a task that has not finished with a message for its owner (the dead-letter queue, the
/// janitor: whoever holds the task).
#[tracing::instrument(skip(c))]
pub async fn fail(c: &impl GenericClient, task_id: Uuid, message: &str) -> Result<bool, DbError> {
    fail_held(c, task_id, None, message).await
}

/// [`fail`] by the worker holding `claim`: nothing changes once another claim took the task.
#[tracing::instrument(skip(c))]
pub async fn fail_claimed(
    c: &impl GenericClient,
    claim: Claim,
    message: &str,
) -> Result<bool, DbError> {
    fail_held(c, claim.task_id, Some(claim.generation), message).await
}

async fn fail_held(
    c: &impl GenericClient,
    task_id: Uuid,
    generation: Option<i32>,
    message: &str,
) -> Result<bool, DbError> {
    let updated = c
        .execute(
            "UPDATE tasks SET status = 'failed', error_message = $2, current_phase = 'failed',
                    analyzed_at = now(), updated_at = now()
             WHERE task_id = $1 AND status IN ('pending', 'uploaded', 'processing')
               AND ($3::int IS NULL OR (status = 'processing' AND attempts = $3))",
            &[&task_id, &message, &generation],
        )
        .await?;
    if updated == 1 {
        c.execute(
            "INSERT INTO progress_snapshots (task_id, phase, progress_percent, message)
             SELECT task_id, 'failed', progress_percent, $2 FROM tasks WHERE task_id = $1",
            &[&task_id, &message],
        )
        .await?;
    }
    Ok(updated == 1)
}

/// [`fail`] for the task whose upload is `s3_key` (a message that reached the DLQ).
#[tracing::instrument(skip(c))]
pub async fn fail_by_key(
    c: &impl GenericClient,
    s3_key: &str,
    message: &str,
) -> Result<Option<Uuid>, DbError> {
    let row = c
        .query_opt(
            "SELECT task_id FROM tasks WHERE s3_key = $1 AND status IN ('pending', 'uploaded', 'processing')",
            &[&s3_key],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let task_id: Uuid = row.try_get(0)?;
    Ok(fail(c, task_id, message).await?.then_some(task_id))
}

/// Marks `expired` (the owner deleted it, or its time is up); returns the task as it was, with
/// the keys of the objects to delete. Tasks being processed are left alone.
#[tracing::instrument(skip(c))]
pub async fn expire(c: &impl GenericClient, task_id: Uuid) -> Result<Option<Task>, DbError> {
    let row = c
        .query_opt(
            &format!(
                "WITH old AS (SELECT * FROM tasks WHERE task_id = $1 FOR UPDATE),
                 upd AS (
                    UPDATE tasks SET status = 'expired', current_phase = 'expired', updated_at = now()
                    WHERE task_id = $1 AND status <> 'processing' AND status <> 'expired'
                    RETURNING task_id)
                 SELECT {COLUMNS} FROM old t JOIN upd ON upd.task_id = t.task_id
                 LEFT JOIN users u ON u.id = t.owner_id"
            ),
            &[&task_id],
        )
        .await?;
    let task = row.as_ref().map(Task::try_from).transpose()?;
    if task.is_some() {
        c.execute(
            "DELETE FROM progress_snapshots WHERE task_id = $1",
            &[&task_id],
        )
        .await?;
    }
    Ok(task)
}

/// Deletes a task still `pending` (its owner cancelled the upload); returns it as it was, with
/// the key and the multipart upload to clean up. `None` when it is no longer pending.
#[tracing::instrument(skip(c))]
pub async fn delete_pending(
    c: &impl GenericClient,
    task_id: Uuid,
) -> Result<Option<Task>, DbError> {
    let row = c
        .query_opt(
            &format!(
                "WITH t AS (DELETE FROM tasks WHERE task_id = $1 AND status = 'pending' RETURNING *)
                 SELECT {COLUMNS} FROM t LEFT JOIN users u ON u.id = t.owner_id"
            ),
            &[&task_id],
        )
        .await?;
    row.as_ref().map(Task::try_from).transpose()
}

/// The task whose upload is `s3_key`, whoever owns it (the janitor's sweep of uploads).
#[tracing::instrument(skip(c))]
pub async fn find_by_key(c: &impl GenericClient, s3_key: &str) -> Result<Option<Task>, DbError> {
    find_where(c, "t.s3_key = $1", &[&s3_key]).await
}

/// Tasks whose time is up (not processing, not already expired), oldest first.
#[tracing::instrument(skip(c))]
pub async fn due_for_expiry(c: &impl GenericClient, limit: i64) -> Result<Vec<Task>, DbError> {
    rows(
        c.query(
            &format!(
                "SELECT {COLUMNS} FROM tasks t LEFT JOIN users u ON u.id = t.owner_id
                 WHERE t.expires_at <= now() AND t.status NOT IN ('expired', 'processing')
                 ORDER BY t.expires_at LIMIT $1"
            ),
            &[&limit],
        )
        .await?,
    )
}

/// Fails every `processing` task whose heartbeat is older than `stale`; returns their ids.
#[tracing::instrument(skip(c))]
pub async fn fail_stale(
    c: &impl GenericClient,
    stale: Duration,
    message: &str,
) -> Result<Vec<Uuid>, DbError> {
    let found = c
        .query(
            "UPDATE tasks SET status = 'failed', error_message = $2, current_phase = 'failed',
                    updated_at = now()
             WHERE status = 'processing'
               AND coalesce(last_heartbeat, updated_at) < now() - make_interval(secs => $1::float8)
             RETURNING task_id",
            &[&stale.as_secs_f64(), &message],
        )
        .await?;
    found.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Test and admin helper: sets a task's expiry (e.g. to the past) and heartbeat.
#[tracing::instrument(skip(c))]
pub async fn set_times(
    c: &impl GenericClient,
    task_id: Uuid,
    expires_at: Option<OffsetDateTime>,
    last_heartbeat: Option<OffsetDateTime>,
) -> Result<(), DbError> {
    c.execute(
        "UPDATE tasks SET expires_at = coalesce($2, expires_at),
                last_heartbeat = coalesce($3, last_heartbeat)
         WHERE task_id = $1",
        &[&task_id, &expires_at, &last_heartbeat],
    )
    .await?;
    Ok(())
}
