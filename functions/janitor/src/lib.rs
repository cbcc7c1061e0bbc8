//! `janitor`: the scheduled sweep that keeps the pipeline's promises when nobody is watching.
//!
//! 1. Tasks past `expires_at` (`REPORT_TTL_HOURS` after creation, then after completion) are
//!    marked `expired` and their upload and reports deleted (an S3 lifecycle rule is the
//!    backstop for anything missed).
//! 2. `processing` tasks whose heartbeat stopped (the analyzer died: timeout, out of memory)
//!    are marked `failed`, so no task stays `processing` forever.
//! 3. Messages in the analysis queue's DLQ (deliveries that failed five times) end their task
//!    `failed` and are deleted.
//! 4. Rate-limit counters whose window ended long ago are purged.
//! 5. Multipart uploads under `uploads/` that nobody will complete are aborted (their parts
//!    cost storage until then): those of a task no longer pending (expired, failed, deleted),
//!    and those without a task once they are older than an upload URL's lifetime (a younger
//!    one may be waiting for its task to be written). The bucket's
//!    `AbortIncompleteMultipartUpload` rule is the backstop.
#![deny(unsafe_code)]

use db::tasks::{self, Status};
use db::{DbError, Pool};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use storage::{ObjectStore, Queue, StorageError};
use thiserror::Error;

/// Tasks expired per run; the next run takes the rest (keeps one run well inside its timeout).
pub const EXPIRE_BATCH: i64 = 500;
/// DLQ messages handled per run, ten at a time (SQS's batch limit).
pub const DLQ_BATCH: usize = 100;
/// Rate-limit rows are kept a day after their window (longest window is a day).
pub const RATE_LIMIT_RETENTION_SECS: u32 = 86_400;
/// Message on a task whose analyzer stopped answering.
pub const STALLED_MESSAGE: &str =
    "The analysis stopped responding (no heartbeat) and was abandoned; upload the file again.";
/// Message on a task whose deliveries all failed.
pub const DEAD_LETTER_MESSAGE: &str =
    "The analysis failed repeatedly because of a temporary problem; upload the file again.";

#[derive(Debug, Error)]
pub enum JanitorError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone)]
pub struct Config {
    /// A heartbeat older than this means the analyzer is gone. Longer than the analyzer's
    /// [`analyzer::STALE_AFTER`], so a retried delivery gets the first chance to take over.
    pub stale_after: Duration,
    /// A multipart upload without a task is abandoned once this old: `POST /api/uploads`
    /// creates the upload just before the task.
    pub orphan_upload_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stale_after: analyzer::STALE_AFTER * 3,
            orphan_upload_after: tasks_api::UPLOAD_URL_TTL,
        }
    }
}

pub struct State {
    pub pool: Pool,
    pub store: Arc<dyn ObjectStore>,
    pub dlq: Option<Arc<dyn Queue>>,
    pub config: Config,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RunReport {
    pub expired: usize,
    pub stalled_failed: usize,
    pub dead_letters: usize,
    pub rate_limits_purged: u64,
    pub uploads_aborted: usize,
}

#[tracing::instrument(skip_all)]
pub async fn run_once(state: &State) -> Result<RunReport, JanitorError> {
    let mut report = RunReport::default();
    let client = state.pool.get().await.map_err(DbError::from)?;

    for due in tasks::due_for_expiry(&client, EXPIRE_BATCH).await? {
        // Objects first: if deleting fails the task stays due and the next run tries again.
        tasks_api::delete_objects(state.store.as_ref(), &due).await?;
        if tasks::expire(&client, due.task_id).await?.is_some() {
            report.expired += 1;
        }
    }

    let stalled = tasks::fail_stale(&client, state.config.stale_after, STALLED_MESSAGE).await?;
    for task_id in &stalled {
        tracing::warn!(%task_id, "stalled analysis marked failed");
    }
    report.stalled_failed = stalled.len();

    if let Some(dlq) = &state.dlq {
        report.dead_letters = drain_dead_letters(state, &client, dlq.as_ref()).await?;
    }

    report.rate_limits_purged = db::rate_limits::purge(&client, RATE_LIMIT_RETENTION_SECS).await?;
    report.uploads_aborted = abort_abandoned_uploads(state, &client).await?;
    tracing::info!(?report, "janitor run");
    Ok(report)
}

/// Aborts the multipart uploads under `uploads/` that no pending task is waiting for.
async fn abort_abandoned_uploads(
    state: &State,
    client: &db::Client,
) -> Result<usize, JanitorError> {
    let mut aborted = 0;
    for upload in state.store.list_multiparts("uploads/").await? {
        let task = tasks::find_by_key(client, &upload.key).await?;
        let awaited = match &task {
            Some(t) if t.status == Status::Pending => t
                .multipart
                .as_ref()
                .is_some_and(|m| m.upload_id == upload.upload_id),
            Some(_) => false,
            // Its task may not be written yet; an upload of unknown age is not.
            None => upload.initiated.is_some_and(|at| {
                at.elapsed()
                    .is_ok_and(|age| age < state.config.orphan_upload_after)
            }),
        };
        if awaited {
            continue;
        }
        state
            .store
            .abort_multipart(&upload.key, &upload.upload_id)
            .await?;
        tracing::info!(key = %upload.key, status = ?task.map(|t| t.status), "abandoned multipart upload aborted");
        aborted += 1;
    }
    Ok(aborted)
}

async fn drain_dead_letters(
    state: &State,
    client: &db::Client,
    dlq: &dyn Queue,
) -> Result<usize, JanitorError> {
    let mut handled = 0;
    while handled < DLQ_BATCH {
        let messages = dlq.receive(10, Duration::ZERO).await?;
        if messages.is_empty() {
            break;
        }
        for m in messages {
            if let analyzer::notification::Notification::Created(objects) =
                analyzer::notification::parse(&m.body)
            {
                for object in objects {
                    if let Some(task_id) =
                        tasks::fail_by_key(client, &object.key, DEAD_LETTER_MESSAGE).await?
                    {
                        tracing::warn!(%task_id, key = %object.key, "dead-lettered analysis marked failed");
                        state.store.delete(&object.key).await?;
                    }
                }
            }
            dlq.delete(&m.receipt_handle).await?;
            handled += 1;
        }
    }
    Ok(handled)
}
