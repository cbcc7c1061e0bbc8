//! Tasks repository: the part the account functions need (creation for tests, counts for
//! admin deletes). The upload/analysis pipeline extends it.

use crate::{DbError, GenericClient};
use time::OffsetDateTime;
use uuid::Uuid;

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

#[tracing::instrument(skip(c), fields(task_id = %t.task_id))]
pub async fn insert_pending(c: &impl GenericClient, t: &NewTask) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO tasks (task_id, owner_id, filename, file_size_bytes, s3_key, expires_at, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
        &[&t.task_id, &t.owner_id, &t.filename, &t.file_size_bytes, &t.s3_key, &t.expires_at],
    )
    .await
    .map_err(crate::map_unique)?;
    Ok(())
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
