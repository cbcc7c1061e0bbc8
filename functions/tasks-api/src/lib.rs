//! `tasks-api`: uploads and everything a user does with their analyses.
//!
//! | route | effect |
//! |---|---|
//! | `POST /api/uploads` `{filename, size_bytes}` | 201: a `pending` task and a presigned PUT pinning key, size and type; above `MULTIPART_THRESHOLD_MB` an S3 multipart upload and a presigned PUT per part, each pinning its size |
//! | `GET /api/uploads/{id}` | the parts S3 holds of a multipart upload, and fresh URLs for the others (resume) |
//! | `POST /api/uploads/{id}/complete` `{parts}` | joins the parts once they hold exactly the declared size (else aborts: 422) |
//! | `DELETE /api/uploads/{id}` | a pending upload cancelled: the multipart upload aborted, the task deleted |
//! | `GET /api/tasks?status=&limit=&offset=` (alias `/api/history`) | the caller's tasks, newest first; admins see all with owner names |
//! | `GET /api/status/{id}` | one task |
//! | `GET /api/progress/{id}` | latest snapshot plus history |
//! | `GET /api/reports/{id}/html`, `/json` | 303 to a short-lived presigned GET |
//! | `DELETE /api/reports/{id}` | objects deleted, task `expired` |
//! | `GET /api/queue/status` | queue depth and the caller's (admin: everyone's) active tasks |
//!
//! Another user's task is a 404 everywhere, never a 403; legacy tasks without an owner are
//! visible to admins only.
#![deny(unsafe_code)]

use auth_api::guard::{authenticate, db_error, require_password_current, AuthUser};
use auth_api::model::parse_uuid;
use common::http::{allowed_method, json_response, parse_json, query_int, query_params, segments};
use common::ApiError;
use db::rate_limits::{self, UPLOAD_USER};
use db::tasks::{self, NewTask, Quota, Status, Task, TaskFilter, Viewer};
use lambda_http::http::header::LOCATION;
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use storage::{Download, ObjectStore, Queue, StorageError, StoredPart};
use time::OffsetDateTime;
use uuid::Uuid;

/// Content type every upload is signed with: captures are binary, whatever their format; the
/// analyzer checks the magic bytes, never this header.
pub const UPLOAD_CONTENT_TYPE: &str = "application/octet-stream";
/// A presigned PUT must be used soon: 15 minutes to start the upload (S3 checks the expiry when
/// the request starts, so a slow 500 MB upload still completes).
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// Report links are handed out on each click, so they can be short-lived.
pub const REPORT_URL_TTL: Duration = Duration::from_secs(5 * 60);
/// Tasks a user may have waiting or running at once; more would only queue behind each other.
pub const MAX_ACTIVE_TASKS_PER_USER: i64 = 10;
/// Bytes of uploads a user may hold until they expire: ten maximum-size captures.
pub const QUOTA_UPLOADS_OF_MAX_SIZE: u64 = 10;
/// Longest file name kept (the `tasks.filename` column).
pub const MAX_FILENAME_CHARS: usize = 255;
/// Extensions accepted at upload: what the engine reads (the content is checked later anyway).
pub const ALLOWED_EXTENSIONS: [&str; 5] = [".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz"];
/// Default and largest page of the task list; offsets beyond the maximum are refused.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;
pub const MAX_OFFSET: i64 = 1_000_000;
/// Snapshots returned by `GET /api/progress/{id}` (at most every 5 %, so 100 covers a run).
pub const PROGRESS_HISTORY: i64 = 100;

const MIB: u64 = 1024 * 1024;
/// Smallest part S3 takes in a multipart upload (all but the last part), and most parts of one
/// upload (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>).
pub const S3_MIN_PART_BYTES: u64 = 5 * MIB;
pub const S3_MAX_PARTS: u64 = 10_000;
/// Part size of a multipart upload unless the file needs larger parts: 8 MiB, the AWS SDKs'
/// and CLI's default, well above S3's minimum.
pub const MIN_PART_BYTES: u64 = 8 * MIB;
/// Parts of one upload at most, far inside S3's 10,000: the completion names every part with its
/// ETag, about 67 bytes each, in a body of at most 64 KiB (`common::http::MAX_BODY_BYTES`); and
/// every part's URL is in one answer, about 1.5 KB each with a Lambda's session token, where a
/// Lambda answer stops at 6 MB. 50 GiB then goes in parts of 57 MiB.
pub const MAX_PARTS: u64 = 900;

/// The part size of a multipart upload of `size_bytes`: the smallest whole number of MiB, at
/// least [`MIN_PART_BYTES`], that keeps the parts at most [`MAX_PARTS`].
pub fn part_bytes(size_bytes: u64) -> u64 {
    size_bytes
        .div_ceil(MAX_PARTS)
        .div_ceil(MIB)
        .saturating_mul(MIB)
        .max(MIN_PART_BYTES)
}

/// Each part's number (1-based) and size: `part_bytes` each, the last one the rest.
pub fn parts_of(size_bytes: u64, part_bytes: u64) -> impl Iterator<Item = (u32, u64)> {
    let count = size_bytes.div_ceil(part_bytes.max(1));
    (1..=count).map(move |n| {
        let start = (n - 1) * part_bytes;
        (n as u32, part_bytes.min(size_bytes - start))
    })
}

/// Limits and lifetimes, from the settings; tests shorten them.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_upload_bytes: u64,
    /// Uploads above this size are S3 multipart uploads (`MULTIPART_THRESHOLD_MB`).
    pub multipart_threshold_bytes: u64,
    pub quota_bytes: u64,
    pub upload_url_ttl: Duration,
    pub report_url_ttl: Duration,
    /// How long a task and its reports are kept (`REPORT_TTL_HOURS`).
    pub report_ttl: Duration,
    pub upload_rate_limit: u32,
    pub upload_rate_window_secs: u32,
}

impl Config {
    pub fn from_settings(s: &common::Settings) -> Self {
        let max_upload_bytes = s.max_upload_size_mb * 1024 * 1024;
        Config {
            max_upload_bytes,
            multipart_threshold_bytes: s.multipart_threshold_mb.saturating_mul(MIB),
            quota_bytes: max_upload_bytes * QUOTA_UPLOADS_OF_MAX_SIZE,
            upload_url_ttl: UPLOAD_URL_TTL,
            report_url_ttl: REPORT_URL_TTL,
            report_ttl: Duration::from_secs(u64::from(s.report_ttl_hours) * 3600),
            upload_rate_limit: s.upload_rate_limit_requests,
            upload_rate_window_secs: s.upload_rate_limit_window_seconds,
        }
    }
}

pub struct State {
    pub auth: auth_api::State,
    pub store: Arc<dyn ObjectStore>,
    pub queue: Arc<dyn Queue>,
    pub config: Config,
}

impl State {
    pub fn new(auth: auth_api::State, store: Arc<dyn ObjectStore>, queue: Arc<dyn Queue>) -> Self {
        State {
            config: Config::from_settings(&auth.settings),
            auth,
            store,
            queue,
        }
    }
}

/// `true` for the paths this function serves (used by `local-gateway` to dispatch).
pub fn owns_path(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p == "/api/uploads"
        || p.starts_with("/api/uploads/")
        || p == "/api/tasks"
        || p == "/api/history"
        || p == "/api/queue/status"
        || p.starts_with("/api/status/")
        || p.starts_with("/api/progress/")
        || p.starts_with("/api/reports/")
}

/// Serves one request: routing, error mapping, security and CORS headers, access log.
pub async fn handle(state: &State, req: Request) -> Response<Body> {
    auth_api::serve(&state.auth.cors, &req, |req| route(state, req)).await
}

#[derive(Debug, Clone, Copy)]
enum ReportFormat {
    Html,
    Json,
}

async fn route(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let segs = segments(req);
    let m = req.method();
    // Shapes first, so that an unknown path is a 404 and a known one with another method a 405
    // (with `Allow`), before any authentication.
    let allow = match segs.as_slice() {
        ["api", "uploads"] => "POST",
        ["api", "uploads", _] => "GET, DELETE",
        ["api", "uploads", _, "complete"] => "POST",
        ["api", "tasks"]
        | ["api", "history"]
        | ["api", "queue", "status"]
        | ["api", "status", _]
        | ["api", "progress", _]
        | ["api", "reports", _, "html" | "json"] => "GET",
        ["api", "reports", _] => "DELETE",
        _ => return Err(ApiError::NotFound("no such route".into())),
    };
    allowed_method(m, allow)?;
    let auth = authenticate(&state.auth, req).await?;
    require_password_current(&auth)?;
    match (segs.as_slice(), m) {
        (["api", "uploads"], &Method::POST) => create_upload(state, &auth, req).await,
        (["api", "uploads", id], &Method::GET) => upload_parts(state, &auth, id).await,
        (["api", "uploads", id, "complete"], &Method::POST) => {
            complete_upload(state, &auth, id, req).await
        }
        (["api", "uploads", id], &Method::DELETE) => cancel_upload(state, &auth, id).await,
        (["api", "tasks"] | ["api", "history"], &Method::GET) => list(state, &auth, req).await,
        (["api", "queue", "status"], &Method::GET) => queue_status(state, &auth).await,
        (["api", "status", id], &Method::GET) => status(state, &auth, id).await,
        (["api", "progress", id], &Method::GET) => progress(state, &auth, id).await,
        (["api", "reports", id, "html"], &Method::GET) => {
            report(state, &auth, id, ReportFormat::Html).await
        }
        (["api", "reports", id, "json"], &Method::GET) => {
            report(state, &auth, id, ReportFormat::Json).await
        }
        (["api", "reports", id], &Method::DELETE) => delete_report(state, &auth, id).await,
        _ => Err(ApiError::MethodNotAllowed { allow }),
    }
}

fn viewer(auth: &AuthUser) -> Viewer {
    Viewer {
        user_id: auth.user.id,
        is_admin: auth.is_admin(),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("task not found".into())
}

fn storage_error(e: StorageError) -> ApiError {
    tracing::error!(error = %e, "object store");
    ApiError::Unavailable("storage unavailable, try again shortly".into())
}

/// A connection from the shared pool; an exhausted or unreachable pool is a 503.
async fn db_client(state: &State) -> Result<db::Client, ApiError> {
    state.auth.pool.get().await.map_err(|e| db_error(e.into()))
}

/// A task id from the path; anything that is not a UUID cannot be a task (404, like a
/// missing one, so ids are not probed by their error).
fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_uuid(raw).ok_or_else(not_found)
}

async fn visible_task(state: &State, auth: &AuthUser, raw_id: &str) -> Result<Task, ApiError> {
    let id = task_id(raw_id)?;
    let client = db_client(state).await?;
    tasks::find_visible(&client, id, viewer(auth))
        .await
        .map_err(db_error)?
        .ok_or_else(not_found)
}

// ------------------------------------------------------------------ uploads

#[derive(Debug, Deserialize)]
struct UploadRequest {
    filename: String,
    #[serde(deserialize_with = "common::http::json_integer")]
    size_bytes: u64,
}

#[derive(Debug, Serialize)]
struct UploadResponse {
    task_id: Uuid,
    upload_url: String,
    method: String,
    headers: serde_json::Map<String, serde_json::Value>,
    expires_in: u64,
    s3_key: String,
}

/// A character no file name may hold: control characters and path separators.
pub fn is_refused_in_filename(c: char) -> bool {
    c.is_control() || c == '/' || c == '\\'
}

/// The file name as stored and shown: one path component, not hidden, a known capture
/// extension in any case. Taken as sent, without trimming, so `openapi.yaml`'s pattern admits
/// exactly the names accepted.
pub fn validate_filename(raw: &str) -> Result<String, ApiError> {
    let name = raw;
    if name.is_empty() {
        return Err(ApiError::Validation("filename is required".into()));
    }
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Err(ApiError::Validation(format!(
            "filename is longer than {MAX_FILENAME_CHARS} characters"
        )));
    }
    if name.chars().any(is_refused_in_filename) || name.starts_with('.') {
        return Err(ApiError::Validation(
            "filename must be a plain file name (no path, no control characters)".into(),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if !ALLOWED_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
        return Err(ApiError::Validation(format!(
            "filename must end with one of {}",
            ALLOWED_EXTENSIONS.join(", ")
        )));
    }
    Ok(name.to_string())
}

/// Where a task's capture is uploaded. Only ids, so the key needs no escaping.
pub fn upload_key(owner: Uuid, task: Uuid) -> String {
    format!("uploads/{owner}/{task}")
}

/// Refuses an upload of `size` bytes past what `usage` leaves (`quota_exceeded`).
fn quota_check(usage: tasks::Usage, size: u64, quota_bytes: u64) -> Result<(), ApiError> {
    if usage.active_tasks >= MAX_ACTIVE_TASKS_PER_USER {
        return Err(ApiError::forbidden(
            "quota_exceeded",
            format!(
                "you already have {} analyses waiting or running; wait for one to finish",
                usage.active_tasks
            ),
        ));
    }
    if usage.stored_bytes.max(0) as u64 + size > quota_bytes {
        return Err(ApiError::forbidden(
            "quota_exceeded",
            format!(
                "storage quota of {} MB reached; delete old reports first",
                quota_bytes / (1024 * 1024)
            ),
        ));
    }
    Ok(())
}

#[tracing::instrument(skip_all, fields(user_id = %auth.user.id))]
async fn create_upload(
    state: &State,
    auth: &AuthUser,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: UploadRequest = parse_json(req)?;
    let filename = validate_filename(&body.filename)?;
    let cfg = &state.config;
    if body.size_bytes == 0 {
        return Err(ApiError::Validation("size_bytes must be positive".into()));
    }
    if body.size_bytes > cfg.max_upload_bytes {
        return Err(ApiError::Validation(format!(
            "size_bytes {} exceeds the upload limit of {} MB",
            body.size_bytes,
            cfg.max_upload_bytes / (1024 * 1024)
        )));
    }
    let size = i64::try_from(body.size_bytes)
        .map_err(|_| ApiError::Validation("size_bytes is too large".into()))?;
    let user_key = auth.user.id.to_string();
    let client = db_client(state).await?;
    if let Some(retry_after_secs) = rate_limits::attempt(
        &client,
        UPLOAD_USER,
        &user_key,
        cfg.upload_rate_window_secs,
        cfg.upload_rate_limit,
    )
    .await
    .map_err(db_error)?
    .retry_after()
    {
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    // Cheap early refusal before presigning; the decision that counts is taken again with the
    // owner locked when the task is inserted.
    let usage = tasks::usage(&client, auth.user.id)
        .await
        .map_err(db_error)?;
    quota_check(usage, body.size_bytes, cfg.quota_bytes)?;

    let task_id = Uuid::new_v4();
    let key = upload_key(auth.user.id, task_id);
    let new_task = NewTask {
        task_id,
        owner_id: Some(auth.user.id),
        filename,
        file_size_bytes: size,
        s3_key: key.clone(),
        expires_at: OffsetDateTime::now_utc() + cfg.report_ttl,
    };
    let quota = Quota {
        max_active_tasks: MAX_ACTIVE_TASKS_PER_USER,
        max_stored_bytes: i64::try_from(cfg.quota_bytes).unwrap_or(i64::MAX),
    };
    if body.size_bytes > cfg.multipart_threshold_bytes {
        return create_multipart_upload(state, client, new_task, body.size_bytes, quota).await;
    }
    let presigned = state
        .store
        .presign_put(
            &key,
            body.size_bytes,
            UPLOAD_CONTENT_TYPE,
            cfg.upload_url_ttl,
        )
        .await
        .map_err(storage_error)?;
    let mut client = client;
    let inserted = tasks::insert_pending_within(&mut client, &new_task, quota)
        .await
        .map_err(db_error)?;
    if let Err(usage) = inserted {
        quota_check(usage, body.size_bytes, cfg.quota_bytes)?;
    }
    tracing::info!(%task_id, size_bytes = body.size_bytes, "upload URL issued");

    let mut headers = serde_json::Map::new();
    headers.insert("Content-Type".into(), json!(UPLOAD_CONTENT_TYPE));
    headers.insert("Content-Length".into(), json!(body.size_bytes.to_string()));
    Ok(json_response(
        StatusCode::CREATED,
        &UploadResponse {
            task_id,
            upload_url: presigned.url,
            method: presigned.method,
            headers,
            expires_in: cfg.upload_url_ttl.as_secs(),
            s3_key: key,
        },
    ))
}

// --------------------------------------------------------- multipart uploads

/// One part to PUT: its presigned URL pins its number and its exact size.
#[derive(Debug, Serialize)]
struct PartUrl {
    part_number: u32,
    url: String,
    size: u64,
}

/// One part S3 holds.
#[derive(Debug, Serialize, Deserialize)]
struct HeldPart {
    part_number: u32,
    size: u64,
    etag: String,
}

#[derive(Debug, Serialize)]
struct MultipartResponse {
    task_id: Uuid,
    method: &'static str,
    size_bytes: u64,
    part_size: u64,
    /// `POST /api/uploads`: every part; `GET /api/uploads/{id}`: the parts S3 does not hold.
    parts: Vec<PartUrl>,
    expires_in: u64,
    s3_key: String,
}

/// Presigned PUTs of the parts of `task`'s upload whose numbers `wanted` admits.
async fn part_urls(
    state: &State,
    key: &str,
    multipart: &tasks::Multipart,
    size_bytes: u64,
    wanted: impl Fn(u32) -> bool,
) -> Result<Vec<PartUrl>, ApiError> {
    let part_bytes = u64::try_from(multipart.part_bytes).map_err(ApiError::internal)?;
    let mut urls = Vec::new();
    for (part_number, size) in parts_of(size_bytes, part_bytes).filter(|(n, _)| wanted(*n)) {
        let presigned = state
            .store
            .presign_part(
                key,
                &multipart.upload_id,
                part_number,
                size,
                state.config.upload_url_ttl,
            )
            .await
            .map_err(storage_error)?;
        urls.push(PartUrl {
            part_number,
            url: presigned.url,
            size,
        });
    }
    Ok(urls)
}

/// Creates the S3 multipart upload, then the task that names it (within the quota, as a single
/// upload), and answers with a URL per part.
#[tracing::instrument(skip_all, fields(task_id = %task.task_id))]
async fn create_multipart_upload(
    state: &State,
    mut client: db::Client,
    task: NewTask,
    size_bytes: u64,
    quota: Quota,
) -> Result<Response<Body>, ApiError> {
    let cfg = &state.config;
    let upload_id = state
        .store
        .create_multipart(&task.s3_key, UPLOAD_CONTENT_TYPE)
        .await
        .map_err(storage_error)?;
    let multipart = tasks::Multipart {
        upload_id,
        part_bytes: i64::try_from(part_bytes(size_bytes)).map_err(ApiError::internal)?,
    };
    let abort = || async {
        // The janitor aborts what this leaves behind (an upload without its task).
        if let Err(e) = state
            .store
            .abort_multipart(&task.s3_key, &multipart.upload_id)
            .await
        {
            tracing::warn!(error = %e, "aborting an unused multipart upload");
        }
    };
    let inserted = match tasks::insert_multipart_within(&mut client, &task, &multipart, quota).await
    {
        Ok(inserted) => inserted,
        Err(e) => {
            abort().await;
            return Err(db_error(e));
        }
    };
    if let Err(usage) = inserted {
        abort().await;
        quota_check(usage, size_bytes, cfg.quota_bytes)?;
    }
    let parts = part_urls(state, &task.s3_key, &multipart, size_bytes, |_| true).await?;
    tracing::info!(
        size_bytes,
        parts = parts.len(),
        "multipart upload URLs issued"
    );
    Ok(json_response(
        StatusCode::CREATED,
        &MultipartResponse {
            task_id: task.task_id,
            method: "multipart",
            size_bytes,
            part_size: u64::try_from(multipart.part_bytes).map_err(ApiError::internal)?,
            parts,
            expires_in: cfg.upload_url_ttl.as_secs(),
            s3_key: task.s3_key,
        },
    ))
}

/// The caller's pending multipart upload `raw_id`: its task, key and upload. Another user's
/// task is a 404; a task uploaded with a single PUT, or past `pending`, a 409.
async fn pending_multipart(
    state: &State,
    auth: &AuthUser,
    raw_id: &str,
) -> Result<(Task, String, tasks::Multipart), ApiError> {
    let task = visible_task(state, auth, raw_id).await?;
    let (Some(key), Some(multipart)) = (task.s3_key.clone(), task.multipart.clone()) else {
        return Err(ApiError::Conflict(
            "this task's capture goes up in a single PUT; it has no parts".into(),
        ));
    };
    if task.status != Status::Pending {
        return Err(ApiError::Conflict(format!(
            "the upload is over (task {})",
            task.status.as_str()
        )));
    }
    Ok((task, key, multipart))
}

/// A multipart upload S3 no longer has while its task is pending: completed a moment ago (the
/// analysis has not claimed it yet), or aborted (the bucket's lifecycle rule).
async fn upload_gone(state: &State, key: &str) -> ApiError {
    match state.store.exists(key).await {
        Ok(true) => ApiError::Conflict("the upload is complete; the analysis follows".into()),
        Ok(false) => ApiError::Conflict(
            "the upload no longer exists in storage; upload the file again".into(),
        ),
        Err(e) => storage_error(e),
    }
}

/// The parts S3 holds of the upload; a finished upload is a 409 saying how it finished.
async fn held_parts(
    state: &State,
    key: &str,
    multipart: &tasks::Multipart,
) -> Result<Vec<StoredPart>, ApiError> {
    match state.store.list_parts(key, &multipart.upload_id).await {
        Ok(parts) => Ok(parts),
        Err(StorageError::NotFound(_)) => Err(upload_gone(state, key).await),
        Err(e) => Err(storage_error(e)),
    }
}

/// ETags as S3 lists them and as a browser reads them from the PUT's answer, quotes or not.
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

#[tracing::instrument(skip(state, auth))]
async fn upload_parts(
    state: &State,
    auth: &AuthUser,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let (task, key, multipart) = pending_multipart(state, auth, id).await?;
    let held = held_parts(state, &key, &multipart).await?;
    let size_bytes = u64::try_from(task.file_size_bytes).map_err(ApiError::internal)?;
    let missing = part_urls(state, &key, &multipart, size_bytes, |n| {
        !held.iter().any(|p| p.part_number == n)
    })
    .await?;
    let held: Vec<HeldPart> = held
        .into_iter()
        .map(|p| HeldPart {
            part_number: p.part_number,
            size: p.size_bytes,
            etag: p.etag,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "task_id": task.task_id,
            "method": "multipart",
            "size_bytes": size_bytes,
            "part_size": multipart.part_bytes,
            "parts": held,
            "missing": missing,
            "expires_in": state.config.upload_url_ttl.as_secs(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
struct CompleteRequest {
    parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize)]
struct CompletedPart {
    #[serde(deserialize_with = "common::http::json_integer")]
    part_number: u64,
    etag: String,
}

/// Message of a task whose parts did not add up to the size declared.
pub const SIZE_MISMATCH_MESSAGE: &str =
    "The uploaded parts do not add up to the size declared; the upload was discarded. Upload the file again.";

/// Completes the upload when the caller names exactly the parts S3 holds, every part of the
/// declared size is there, and they add up to the declared size. Parts still missing or named
/// wrongly are a 409 and the upload stays resumable; parts that hold another size than declared
/// (possible only by going around the signed URLs) end it: aborted, the task failed, 422.
#[tracing::instrument(skip(state, auth, req))]
async fn complete_upload(
    state: &State,
    auth: &AuthUser,
    id: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let (task, key, multipart) = pending_multipart(state, auth, id).await?;
    let body: CompleteRequest = parse_json(req)?;
    let declared = u64::try_from(task.file_size_bytes).map_err(ApiError::internal)?;
    let part_bytes = u64::try_from(multipart.part_bytes).map_err(ApiError::internal)?;
    let expected: Vec<(u32, u64)> = parts_of(declared, part_bytes).collect();
    if body.parts.is_empty() || body.parts.len() as u64 > MAX_PARTS {
        return Err(ApiError::Validation(format!(
            "parts must list 1 to {MAX_PARTS} parts"
        )));
    }
    if let Some(p) = body
        .parts
        .iter()
        .find(|p| !(1..=MAX_PARTS).contains(&p.part_number))
    {
        return Err(ApiError::Validation(format!(
            "part_number {} is outside 1..={MAX_PARTS}",
            p.part_number
        )));
    }
    let held = held_parts(state, &key, &multipart).await?;
    let missing: Vec<String> = expected
        .iter()
        .filter(|(n, _)| !held.iter().any(|p| p.part_number == *n))
        .map(|(n, _)| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::Conflict(format!(
            "parts not uploaded yet: {}",
            missing.join(", ")
        )));
    }
    let named_as_held =
        body.parts.len() == held.len()
            && body.parts.iter().zip(&held).all(|(c, h)| {
                c.part_number == u64::from(h.part_number) && same_etag(&c.etag, &h.etag)
            });
    if !named_as_held {
        return Err(ApiError::Conflict(
            "parts must name every uploaded part, in order, with the ETag of its upload (GET /api/uploads/{id} lists them)".into(),
        ));
    }
    let total: u64 = held.iter().map(|p| p.size_bytes).sum();
    let sizes_match = held.len() == expected.len()
        && held
            .iter()
            .zip(&expected)
            .all(|(h, (_, size))| h.size_bytes == *size);
    if total != declared || !sizes_match {
        tracing::warn!(
            total,
            declared,
            "multipart parts do not add up to the declared size"
        );
        state
            .store
            .abort_multipart(&key, &multipart.upload_id)
            .await
            .map_err(storage_error)?;
        let client = db_client(state).await?;
        tasks::fail(&client, task.task_id, SIZE_MISMATCH_MESSAGE)
            .await
            .map_err(db_error)?;
        return Err(ApiError::Validation(format!(
            "the parts hold {total} bytes in {} parts, the upload declared {declared} bytes in {}; the upload was discarded",
            held.len(),
            expected.len()
        )));
    }
    let parts: Vec<StoredPart> = held;
    match state
        .store
        .complete_multipart(&key, &multipart.upload_id, &parts)
        .await
    {
        Ok(()) => {}
        Err(StorageError::Invalid(why)) => {
            return Err(ApiError::Conflict(format!(
                "storage refused the parts: {why}"
            )))
        }
        Err(StorageError::NotFound(_)) => return Err(upload_gone(state, &key).await),
        Err(e) => return Err(storage_error(e)),
    }
    tracing::info!(%task.task_id, parts = parts.len(), "multipart upload completed");
    // S3's ObjectCreated:CompleteMultipartUpload notification starts the analysis, as a PUT's.
    Ok(json_response(
        StatusCode::OK,
        &json!({ "task_id": task.task_id, "status": "pending", "size_bytes": total }),
    ))
}

/// Cancels a pending upload (multipart or single): the task is deleted, then its upload aborted
/// and any object removed. Past `pending` it is a 409: `DELETE /api/reports/{id}` removes a task
/// that was uploaded.
#[tracing::instrument(skip(state, auth))]
async fn cancel_upload(
    state: &State,
    auth: &AuthUser,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let task = visible_task(state, auth, id).await?;
    if task.status != Status::Pending {
        return Err(ApiError::Conflict(format!(
            "the upload is over (task {}); DELETE /api/reports/{{id}} deletes the task",
            task.status.as_str()
        )));
    }
    let client = db_client(state).await?;
    let Some(deleted) = tasks::delete_pending(&client, task.task_id)
        .await
        .map_err(db_error)?
    else {
        return Err(ApiError::Conflict(
            "the task changed state meanwhile; try again".into(),
        ));
    };
    // The task is gone first, so nothing analyses a late completion; an upload left behind here
    // (storage unavailable) is the janitor's: an upload without a task.
    delete_objects(state.store.as_ref(), &deleted)
        .await
        .map_err(storage_error)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "task_id": deleted.task_id, "status": "deleted", "message": "upload cancelled" }),
    ))
}

// -------------------------------------------------------------------- reads

/// A task as the API shows it: the row plus the report links when there is a report.
#[derive(Debug, Serialize)]
struct TaskView {
    #[serde(flatten)]
    task: Task,
    #[serde(skip_serializing_if = "Option::is_none")]
    reports: Option<serde_json::Value>,
}

impl From<Task> for TaskView {
    fn from(task: Task) -> Self {
        let reports = (task.status == Status::Completed).then(|| {
            json!({
                "html": format!("/api/reports/{}/html", task.task_id),
                "json": format!("/api/reports/{}/json", task.task_id),
            })
        });
        TaskView { task, reports }
    }
}

#[tracing::instrument(skip_all)]
async fn list(state: &State, auth: &AuthUser, req: &Request) -> Result<Response<Body>, ApiError> {
    let q = query_params(req)?;
    let filter = TaskFilter {
        status: match q.get("status").map(String::as_str) {
            None | Some("all") => None,
            Some(s) => Some(
                Status::parse(s)
                    .ok_or_else(|| ApiError::Validation(format!("unknown status '{s}'")))?,
            ),
        },
        limit: query_int(&q, "limit", DEFAULT_PAGE, 1, MAX_PAGE)?,
        offset: query_int(&q, "offset", 0, 0, MAX_OFFSET)?,
    };
    let client = db_client(state).await?;
    let (found, total) = tasks::list(&client, viewer(auth), &filter)
        .await
        .map_err(db_error)?;
    let tasks: Vec<TaskView> = found.into_iter().map(TaskView::from).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "tasks": tasks, "total": total, "limit": filter.limit, "offset": filter.offset }),
    ))
}

#[tracing::instrument(skip(state, auth))]
async fn status(state: &State, auth: &AuthUser, id: &str) -> Result<Response<Body>, ApiError> {
    let task = visible_task(state, auth, id).await?;
    Ok(json_response(StatusCode::OK, &TaskView::from(task)))
}

#[tracing::instrument(skip(state, auth))]
async fn progress(state: &State, auth: &AuthUser, id: &str) -> Result<Response<Body>, ApiError> {
    let task = visible_task(state, auth, id).await?;
    let client = db_client(state).await?;
    let history = tasks::progress_history(&client, task.task_id, PROGRESS_HISTORY)
        .await
        .map_err(db_error)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "task_id": task.task_id,
            "status": task.status,
            "progress_percent": task.progress_percent,
            "current_phase": task.current_phase,
            "error_message": task.error_message,
            "last_heartbeat": task.last_heartbeat.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "latest": history.last(),
            "history": history,
        }),
    ))
}

/// A file name safe inside a quoted `Content-Disposition` parameter.
fn download_name(filename: &str, ext: &str) -> String {
    let stem: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{stem}.{ext}")
}

#[tracing::instrument(skip(state, auth))]
async fn report(
    state: &State,
    auth: &AuthUser,
    id: &str,
    format: ReportFormat,
) -> Result<Response<Body>, ApiError> {
    let task = visible_task(state, auth, id).await?;
    let key = match format {
        ReportFormat::Html => task.report_html_key.as_deref(),
        ReportFormat::Json => task.report_json_key.as_deref(),
    };
    let key = match (task.status, key) {
        (Status::Completed, Some(k)) => k,
        (status, _) => {
            return Err(ApiError::NotFound(format!(
                "no report for this task (status {})",
                status.as_str()
            )))
        }
    };
    let (content_type, disposition) = match format {
        ReportFormat::Html => (
            "text/html; charset=utf-8",
            format!(
                "inline; filename=\"{}\"",
                download_name(&task.filename, "html")
            ),
        ),
        ReportFormat::Json => (
            "application/json",
            format!(
                "attachment; filename=\"{}\"",
                download_name(&task.filename, "json")
            ),
        ),
    };
    let url = state
        .store
        .presign_get(
            key,
            &Download {
                content_type,
                content_disposition: &disposition,
            },
            state.config.report_url_ttl,
        )
        .await
        .map_err(storage_error)?;
    let mut resp = json_response(StatusCode::SEE_OTHER, &json!({ "url": url }));
    resp.headers_mut().insert(
        LOCATION,
        HeaderValue::from_str(&url).map_err(ApiError::internal)?,
    );
    Ok(resp)
}

#[tracing::instrument(skip(state, auth))]
async fn delete_report(
    state: &State,
    auth: &AuthUser,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let task = visible_task(state, auth, id).await?;
    match task.status {
        Status::Processing => {
            return Err(ApiError::Conflict(
                "the analysis is running; delete it when it has finished".into(),
            ))
        }
        Status::Expired => return Err(ApiError::NotFound("this task was already deleted".into())),
        _ => {}
    }
    let client = db_client(state).await?;
    let Some(expired) = tasks::expire(&client, task.task_id)
        .await
        .map_err(db_error)?
    else {
        return Err(ApiError::Conflict(
            "the task changed state meanwhile; try again".into(),
        ));
    };
    delete_objects(state.store.as_ref(), &expired)
        .await
        .map_err(storage_error)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "task_id": expired.task_id, "status": "expired", "message": "report deleted" }),
    ))
}

/// Deletes every object of a task (upload and reports) and aborts its multipart upload if it
/// was still going up; missing ones are fine.
pub async fn delete_objects(store: &dyn ObjectStore, task: &Task) -> Result<(), StorageError> {
    if let (Status::Pending, Some(key), Some(multipart)) =
        (task.status, &task.s3_key, &task.multipart)
    {
        store.abort_multipart(key, &multipart.upload_id).await?;
    }
    for key in [&task.s3_key, &task.report_html_key, &task.report_json_key]
        .into_iter()
        .flatten()
    {
        store.delete(key).await?;
    }
    Ok(())
}

#[tracing::instrument(skip_all)]
async fn queue_status(state: &State, auth: &AuthUser) -> Result<Response<Body>, ApiError> {
    let owner = (!auth.is_admin()).then_some(auth.user.id);
    let client = db_client(state).await?;
    let counts = tasks::active_counts(&client, owner)
        .await
        .map_err(db_error)?;
    let count = |s: Status| {
        counts
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n)
    };
    // The queue depth is informative; its absence must not hide the user's own tasks.
    let queue = match state.queue.depth().await {
        Ok(d) => json!({ "visible": d.visible, "in_flight": d.in_flight }),
        Err(e) => {
            tracing::warn!(error = %e, "queue depth unavailable");
            serde_json::Value::Null
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "scope": if owner.is_some() { "user" } else { "all" },
            "queue": queue,
            "tasks": {
                "pending": count(Status::Pending),
                "uploaded": count(Status::Uploaded),
                "processing": count(Status::Processing),
            },
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_names_are_accepted_and_paths_refused() {
        assert_eq!(validate_filename("a b.pcapng").unwrap(), "a b.pcapng");
        assert!(validate_filename("a.pcap ").is_err());
        assert!(validate_filename(".a.pcap").is_err());
        assert!(validate_filename("trace.PCAP").is_ok());
        assert!(validate_filename("x.pcap.gz").is_ok());
        assert!(validate_filename("../etc/passwd.pcap").is_err());
        assert!(validate_filename("a\\b.pcap").is_err());
        assert!(validate_filename("notes.txt").is_err());
        assert!(validate_filename("").is_err());
        assert!(validate_filename(&format!("{}.pcap", "a".repeat(300))).is_err());
    }

    #[test]
    fn download_names_keep_only_safe_characters() {
        assert_eq!(
            download_name("my \"trace\".pcap", "html"),
            "my__trace_.pcap.html"
        );
    }

    #[test]
    fn part_sizes_are_the_smallest_s3_valid_ones_from_the_threshold_to_50_gib() {
        for size in [
            MIB + 1,
            100 * MIB + 1,
            5 * 1024 * MIB,
            16 * 1024 * MIB + 7,
            50 * 1024 * MIB,
        ] {
            let part = part_bytes(size);
            let parts: Vec<(u32, u64)> = parts_of(size, part).collect();

            assert!(
                part >= S3_MIN_PART_BYTES && part % MIB == 0,
                "{size}: {part}"
            );
            assert!(parts.len() as u64 <= MAX_PARTS.min(S3_MAX_PARTS), "{size}");
            assert!(part == MIN_PART_BYTES || size.div_ceil(part - MIB) > MAX_PARTS);
            assert_eq!(parts.iter().map(|(_, s)| s).sum::<u64>(), size);
            assert!(parts.iter().all(|(_, s)| *s > 0 && *s <= part));
            assert_eq!(parts.last().map(|(n, _)| *n as usize), Some(parts.len()));
        }
        assert_eq!(part_bytes(50 * 1024 * MIB), 57 * MIB);
        assert_eq!(part_bytes(500 * MIB), MIN_PART_BYTES);
    }

    #[test]
    fn the_completion_of_the_most_parts_fits_in_a_request_body() {
        let etag = format!("\"{}\"", "0123456789abcdef".repeat(2));
        let parts: Vec<serde_json::Value> = (1..=MAX_PARTS)
            .map(|n| json!({"part_number": n, "etag": etag}))
            .collect();
        let body = serde_json::to_vec(&json!({ "parts": parts })).unwrap();
        assert!(body.len() <= common::http::MAX_BODY_BYTES, "{}", body.len());
    }

    #[test]
    fn etags_match_with_or_without_their_quotes() {
        assert!(same_etag("\"abc\"", "abc"));
        assert!(!same_etag("\"abc\"", "abd"));
    }

    #[test]
    fn every_task_route_is_owned_and_others_are_not() {
        for p in [
            "/api/uploads",
            "/api/uploads/x",
            "/api/uploads/x/complete",
            "/api/tasks",
            "/api/history",
            "/api/queue/status",
            "/api/status/x",
            "/api/progress/x",
            "/api/reports/x/html",
            "/api/reports/x",
        ] {
            assert!(owns_path(p), "{p}");
        }
        assert!(!owns_path("/api/users"));
        assert!(!owns_path("/api/health"));
    }
}
