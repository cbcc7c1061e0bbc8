//! `analyzer`: turns an uploaded capture into its reports, exactly once.
//!
//! ```text
//! SQS message (S3 notification) ─> claim the task in Postgres (conditional UPDATE; a duplicate
//!   delivery gets nothing) ─> GetObject stream ─> bounded channel ─> blocking Read ─> engine
//!   (spawn_blocking) ─> reports/{owner}/{task}-{claim}.json + .html ─> task completed ─> upload deleted
//! ```
//!
//! While the engine runs, a ticker writes progress snapshots (when 5 points were gained, or
//! every 2 s while bytes move) and the heartbeat the janitor watches.
//!
//! Outcomes per message: success (done, a duplicate, an `s3:TestEvent`, or a file that is not a
//! capture, which ends `failed` with a message for its owner and must not be retried); or a
//! batch item failure (S3 or Postgres failed: the task is released and SQS delivers again; after
//! the DLQ the janitor marks it `failed`).
#![deny(unsafe_code)]

pub mod notification;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use db::tasks::{self, Claimed, Snapshot, Status, Summary, Task};
use db::{DbError, Pool};
use notification::{CreatedObject, Notification};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::reader::ChannelReader;
use storage::{ObjectStore, Queue, StorageError};
use thiserror::Error;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A snapshot is written when progress gained this many points...
pub const SNAPSHOT_EVERY_PERCENT: i32 = 5;
/// ...or this much time passed while bytes were read, whichever comes first.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(2);
/// How often the ticker looks at the byte counter.
const TICK: Duration = Duration::from_millis(250);
/// The heartbeat is refreshed at least this often, even without progress (e.g. a slow S3).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// A `processing` task whose heartbeat is older than this was abandoned by a dead attempt and
/// may be claimed again by the retried delivery (several heartbeat intervals, so a slow but
/// live run is never taken over).
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// Bytes buffered between the S3 download and the engine, counting the parts being fetched:
/// four ranged GETs of `storage::s3::PART_BYTES` (8 MiB) at once, so the download keeps up
/// with the engine on AWS (one connection carries far less) and goes on while the engine's
/// reading thread runs analyses; small enough for the memory budget whatever the file size.
pub const STREAM_BUFFER_BYTES: usize = 32 << 20;
/// Longest one analysis may run: the function's timeout (600 s in `template.yaml`) less the
/// time to write the reports and mark the task. Past it the task ends `failed` with the reason,
/// instead of the function being killed and the message redelivered until the DLQ.
pub const ANALYSIS_TIME_BUDGET: Duration = Duration::from_secs(540);
/// Analyses one user may have running at once. The trigger runs 5 at most
/// (`MaximumConcurrency` in `template.yaml`): past 2, a user's next upload waits and the others'
/// go first.
pub const MAX_ANALYSES_PER_OWNER: i64 = 2;
/// How long a task held back by [`MAX_ANALYSES_PER_OWNER`] waits before it is tried again.
pub const OWNER_BUSY_DELAY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Config {
    /// How long reports are kept after completion (`REPORT_TTL_HOURS`).
    pub report_ttl: Duration,
    pub stale_after: Duration,
    pub snapshot_interval: Duration,
    pub heartbeat_interval: Duration,
    /// [`MAX_ANALYSES_PER_OWNER`].
    pub max_per_owner: i64,
    pub owner_busy_delay: Duration,
    pub engine: engine::Config,
}

impl Config {
    pub fn from_settings(s: &common::Settings) -> Self {
        Config {
            report_ttl: Duration::from_secs(u64::from(s.report_ttl_hours) * 3600),
            stale_after: STALE_AFTER,
            snapshot_interval: SNAPSHOT_INTERVAL,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            max_per_owner: MAX_ANALYSES_PER_OWNER,
            owner_busy_delay: OWNER_BUSY_DELAY,
            engine: engine::Config::default(),
        }
    }
}

pub struct State {
    pub pool: Pool,
    pub store: Arc<dyn ObjectStore>,
    pub config: Config,
    /// Where a task held back for its owner's running analyses is sent again, delayed (the
    /// analysis queue). Without it the message is retried through its visibility timeout.
    pub requeue: Option<Arc<dyn Queue>>,
}

impl State {
    pub fn new(pool: Pool, store: Arc<dyn ObjectStore>, config: Config) -> Self {
        State {
            pool,
            store,
            config,
            requeue: None,
        }
    }

    pub fn with_requeue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.requeue = Some(queue);
        self
    }
}

/// Why one object could not be analysed now.
#[derive(Debug, Error)]
pub enum Failure {
    /// S3 or Postgres failed: worth another delivery.
    #[error("transient: {0}")]
    Transient(String),
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Transient(format!("database: {e}"))
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Failure::Transient(format!("storage: {e}"))
    }
}

/// How one analysis ended, short of a transient failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed {
        task_id: Uuid,
    },
    /// Not a capture (or a broken one): the task is `failed` with this message.
    Rejected {
        task_id: Uuid,
        message: String,
    },
    /// Another delivery has (or had) the task, or no task has this key.
    Ignored,
    /// The owner has [`MAX_ANALYSES_PER_OWNER`] analyses running: tried again later.
    Deferred,
}

/// Handles one SQS batch and reports only the messages to retry.
#[tracing::instrument(skip_all, fields(records = event.records.len()))]
pub async fn handle(state: &State, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in &event.records {
        let id = message.message_id.clone().unwrap_or_default();
        if let Err(e) = handle_message(state, message).await {
            tracing::warn!(message_id = %id, error = %e, "message will be retried");
            response.add_failure(id);
        }
    }
    response
}

#[tracing::instrument(skip_all, fields(message_id = message.message_id.as_deref().unwrap_or("")))]
async fn handle_message(state: &State, message: &SqsMessage) -> Result<(), Failure> {
    let body = message.body.as_deref().unwrap_or("");
    match notification::parse(body) {
        Notification::Test => {
            tracing::info!("s3:TestEvent skipped");
            Ok(())
        }
        Notification::Unknown(why) => {
            // Retrying cannot make it parse; it would only end in the DLQ.
            tracing::error!(%why, "unreadable message dropped");
            Ok(())
        }
        Notification::Created(objects) => {
            let mut deferred = false;
            for object in &objects {
                let outcome = process_object(state, object).await?;
                tracing::info!(key = %object.key, ?outcome, "object handled");
                deferred |= outcome == Outcome::Deferred;
            }
            if deferred {
                defer(state, body).await?;
            }
            Ok(())
        }
    }
}

/// Sends the message again, delayed, and lets this delivery go: its receive count starts
/// again, so a long wait behind the owner's other analyses never ends in the dead-letter
/// queue. Without a queue to send to, the delivery is retried through its visibility timeout.
async fn defer(state: &State, body: &str) -> Result<(), Failure> {
    match &state.requeue {
        Some(queue) => Ok(queue
            .send_later(body, state.config.owner_busy_delay)
            .await?),
        None => Err(Failure::Transient(
            "the owner's other analyses go first".into(),
        )),
    }
}

/// Analyses one uploaded object, unless another delivery already has its task.
#[tracing::instrument(skip_all, fields(key = %object.key))]
pub async fn process_object(state: &State, object: &CreatedObject) -> Result<Outcome, Failure> {
    if !object.key.starts_with("uploads/") {
        tracing::warn!("object outside uploads/ ignored");
        return Ok(Outcome::Ignored);
    }
    let claimed = {
        let mut client = state.pool.get().await.map_err(DbError::from)?;
        tasks::claim_fairly(
            &mut client,
            &object.key,
            object.etag.as_deref(),
            state.config.stale_after,
            state.config.max_per_owner,
        )
        .await?
    };
    let task = match claimed {
        Claimed::Task(task) => task,
        Claimed::OwnerBusy { analysing } => {
            tracing::info!(
                analysing,
                "the owner's other analyses go first; the task waits"
            );
            return Ok(Outcome::Deferred);
        }
        Claimed::Nothing => {
            discard_if_dead(state, object).await?;
            return Ok(Outcome::Ignored);
        }
    };
    let task_id = task.task_id;
    tracing::info!(%task_id, size_bytes = object.size_bytes, "analysis started");
    match analyze_task(state, &task, &object.key).await {
        Ok(Analysis::Report(report)) => finish(state, &task, &object.key, report).await,
        Ok(Analysis::Rejected(message)) => {
            tracing::info!(%task_id, %message, "not a capture");
            let client = state.pool.get().await.map_err(DbError::from)?;
            if !tasks::fail_claimed(&client, task.claim(), &message).await? {
                // Another claim holds the task now: its upload is not ours to delete.
                tracing::info!(%task_id, "task changed meanwhile; left as it is");
                return Ok(Outcome::Ignored);
            }
            if let Err(e) = state.store.delete(&object.key).await {
                tracing::warn!(error = %e, "rejected upload not deleted (the janitor will)");
            }
            Ok(Outcome::Rejected { task_id, message })
        }
        Err(failure) => {
            // Give the task back so the retried delivery can claim it; if Postgres is the
            // problem this fails too, and the claim's stale-heartbeat rule takes over.
            if let Ok(client) = state.pool.get().await {
                let why = "a temporary error interrupted the analysis; retrying";
                if let Err(e) = tasks::release(&client, task.claim(), why).await {
                    tracing::warn!(error = %e, "task not released");
                }
            }
            Err(failure)
        }
    }
}

/// An object nobody will analyse: no task has its key, or its task was deleted, expired or
/// failed (a presigned PUT stays valid after its task is deleted), or it was put again over a
/// completed task's upload. It is deleted on arrival, so it is stored for and counted against
/// nobody. A duplicate delivery of a task in hand is left alone.
async fn discard_if_dead(state: &State, object: &CreatedObject) -> Result<(), Failure> {
    let held = {
        let client = state.pool.get().await.map_err(DbError::from)?;
        tasks::upload_state(&client, &object.key).await?
    };
    let dead = match &held {
        None => true,
        Some((Status::Expired | Status::Failed, _)) => true,
        Some((Status::Completed, analysed)) => {
            object.etag.is_some() && analysed.as_deref() != object.etag.as_deref()
        }
        Some(_) => false,
    };
    if !dead {
        tracing::info!("task already claimed (duplicate delivery)");
        return Ok(());
    }
    tracing::warn!(status = ?held.map(|h| h.0), "object of no live task deleted on arrival");
    match state.store.delete(&object.key).await {
        Ok(()) | Err(StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

enum Analysis {
    Report(Box<engine::Report>),
    Rejected(String),
}

/// Streams the object into the engine while the ticker records progress.
async fn analyze_task(state: &State, task: &Task, key: &str) -> Result<Analysis, Failure> {
    let stream = match state.store.open(key, STREAM_BUFFER_BYTES).await {
        Ok(s) => s,
        Err(StorageError::NotFound(_)) => {
            return Ok(Analysis::Rejected(
                "The uploaded file is no longer available; upload it again.".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let size_bytes = stream.size_bytes;
    let progress = Arc::new(Progress::default());
    let reader = TrackedReader {
        inner: ChannelReader::new(stream),
        progress: progress.clone(),
    };
    let (stop, stopped) = oneshot::channel();
    let ticker = tokio::spawn(tick(
        state.pool.clone(),
        task.claim(),
        size_bytes,
        progress.clone(),
        state.config.clone(),
        stopped,
    ));

    let engine_config = state.config.engine.clone();
    let options = engine::Options {
        file_name: task.filename.clone(),
        file_size: Some(size_bytes),
        budget: engine::Budget {
            max_duration: Some(ANALYSIS_TIME_BUDGET),
            ..engine::Budget::default()
        },
        ..engine::Options::default()
    };
    let result =
        tokio::task::spawn_blocking(move || run_engine(reader, &engine_config, &options)).await;
    let _ = stop.send(());
    let _ = ticker.await;

    // A download error may surface as a "corrupt" capture or even a cut-short one: whatever
    // the engine said, a storage failure means the file was not fully read, so retry.
    if progress.storage_failed.load(Ordering::Relaxed) {
        return Err(Failure::Transient(
            "the download from S3 failed during the analysis".into(),
        ));
    }
    match result {
        Ok(Ok(report)) => Ok(Analysis::Report(Box::new(report))),
        Ok(Err(EngineFailure::NotACapture(message))) => Ok(Analysis::Rejected(message)),
        Ok(Err(EngineFailure::Io(e))) => Err(Failure::Transient(format!("reading: {e}"))),
        Err(join) => {
            // A panic on hostile input would happen again on every retry.
            tracing::error!(error = %join, "the engine panicked");
            Ok(Analysis::Rejected(
                "The analysis of this file failed unexpectedly; the file may be damaged.".into(),
            ))
        }
    }
}

enum EngineFailure {
    NotACapture(String),
    Io(io::Error),
}

/// Runs on a blocking thread: checks the magic number, then runs the engine on the stream.
fn run_engine(
    mut reader: TrackedReader,
    config: &engine::Config,
    options: &engine::Options,
) -> Result<engine::Report, EngineFailure> {
    let mut head = Vec::with_capacity(engine::capture::SNIFF_BYTES);
    (&mut reader)
        .take(engine::capture::SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(EngineFailure::Io)?;
    if let Err(why) = engine::capture::sniff(&head) {
        return Err(EngineFailure::NotACapture(
            notification::not_a_capture_message(why),
        ));
    }
    let input = FullReads(io::Cursor::new(head).chain(reader));
    engine::analyze(input, config, options).map_err(|e| match e {
        engine::Error::Io(io) => EngineFailure::Io(io),
        engine::Error::NotACapture(why) => {
            EngineFailure::NotACapture(notification::not_a_capture_message(why))
        }
        engine::Error::Corrupt {
            frame,
            offset,
            reason,
        } => EngineFailure::NotACapture(format!(
            "The capture is damaged after frame {frame} (byte {offset}): {reason}."
        )),
        engine::Error::Config(m) => EngineFailure::NotACapture(format!("Analysis settings: {m}")),
        engine::Error::OverBudget(m) => EngineFailure::NotACapture(format!(
            "The analysis stopped: {m}. Cut the capture into parts (editcap -c or -i) or filter it (tshark -w), and upload those."
        )),
    })
}

/// Fills every buffer it is given unless the input ends: the capture reader sizes its first
/// read for the file header, and a short read there (the 4 checked bytes, or a small first S3
/// chunk) would look like a file that is too short.
struct FullReads<R>(R);

impl<R: Read> Read for FullReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if filled == 0 => return Err(e),
                // Hand over what was read; a download failure was recorded by TrackedReader
                // and turns the whole run into a retry.
                Err(_) => break,
            }
        }
        Ok(filled)
    }
}

/// Shared between the engine's thread and the ticker.
#[derive(Debug, Default)]
struct Progress {
    bytes_read: AtomicU64,
    storage_failed: AtomicBool,
}

struct TrackedReader {
    inner: ChannelReader,
    progress: Arc<Progress>,
}

impl Read for TrackedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.progress
                    .bytes_read
                    .fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                self.progress.storage_failed.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// Decides when a snapshot is worth writing: [`SNAPSHOT_EVERY_PERCENT`] points gained, or
/// `interval` passed with some progress.
#[derive(Debug, Clone)]
pub struct Throttle {
    last_percent: i32,
    last_bytes: u64,
    last_at: Instant,
    interval: Duration,
}

impl Throttle {
    pub fn new(now: Instant, interval: Duration) -> Self {
        Throttle {
            last_percent: 0,
            last_bytes: 0,
            last_at: now,
            interval,
        }
    }

    pub fn due(&mut self, bytes: u64, percent: i32, now: Instant) -> bool {
        let gained = percent - self.last_percent >= SNAPSHOT_EVERY_PERCENT;
        let timed = now.duration_since(self.last_at) >= self.interval && bytes > self.last_bytes;
        if gained || timed {
            self.last_percent = percent;
            self.last_bytes = bytes;
            self.last_at = now;
            true
        } else {
            false
        }
    }
}

/// Percent of `total` read, 0–99 while reading (100 is written on completion only).
pub fn percent(bytes: u64, total: u64) -> i32 {
    if total == 0 {
        return 0;
    }
    ((bytes.min(total) as u128 * 100 / total as u128) as i32).min(99)
}

async fn tick(
    pool: Pool,
    claim: tasks::Claim,
    size_bytes: u64,
    progress: Arc<Progress>,
    config: Config,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut throttle = Throttle::new(Instant::now(), config.snapshot_interval);
    let mut last_beat = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = interval.tick() => {}
        }
        let now = Instant::now();
        let bytes = progress.bytes_read.load(Ordering::Relaxed);
        let pct = percent(bytes, size_bytes);
        let write = if throttle.due(bytes, pct, now) {
            Some(true)
        } else if now.duration_since(last_beat) >= config.heartbeat_interval {
            Some(false)
        } else {
            None
        };
        let Some(snapshot) = write else { continue };
        last_beat = now;
        let result = async {
            let client = pool.get().await.map_err(DbError::from)?;
            if snapshot {
                tasks::record_progress(
                    &client,
                    claim,
                    &Snapshot {
                        phase: "reading".into(),
                        progress_percent: pct,
                        bytes_read: i64::try_from(bytes).ok(),
                        bytes_total: i64::try_from(size_bytes).ok(),
                        packets_processed: None,
                        message: None,
                        timestamp: OffsetDateTime::now_utc(),
                    },
                )
                .await
            } else {
                tasks::heartbeat(&client, claim).await
            }
        }
        .await;
        // Progress is informative: a failed write must not stop the analysis.
        if let Err(e) = result {
            tracing::warn!(task_id = %claim.task_id, error = %e, "progress not recorded");
        }
    }
}

/// Keys of the reports of a claimed task. They name the claim's generation, so a worker that
/// lost its claim writes, and on failing deletes, only its own objects, never the winner's.
pub fn report_keys(task: &Task) -> (String, String) {
    let owner = task
        .owner_id
        .map_or_else(|| "legacy".to_string(), |o| o.to_string());
    let claim = task.claim();
    let stem = format!("reports/{owner}/{}-{}", claim.task_id, claim.generation);
    (format!("{stem}.html"), format!("{stem}.json"))
}

async fn finish(
    state: &State,
    task: &Task,
    upload_key: &str,
    report: Box<engine::Report>,
) -> Result<Outcome, Failure> {
    let task_id = task.task_id;
    tracing::info!(
        %task_id,
        engine_seconds = report.metadata.analysis_seconds,
        "capture read; writing the reports"
    );
    let (html_key, json_key) = report_keys(task);
    let json = report.to_json();
    let html = engine::render::html(&report);
    state
        .store
        .put(&json_key, json.into_bytes(), "application/json")
        .await?;
    state
        .store
        .put(&html_key, html.into_bytes(), "text/html; charset=utf-8")
        .await?;
    let duration = report.metadata.capture_duration;
    let summary = Summary {
        total_packets: i64::try_from(report.metadata.total_packets).unwrap_or(i64::MAX),
        health_score: report
            .health_score
            .as_ref()
            .map(|h| h.overall_score)
            .filter(|s| s.is_finite()),
        capture_duration: if duration.is_finite() {
            duration.max(0.0)
        } else {
            0.0
        },
        report_html_key: html_key.clone(),
        report_json_key: json_key.clone(),
        keep_for: state.config.report_ttl,
    };
    let completed = {
        let client = state.pool.get().await.map_err(DbError::from)?;
        tasks::complete(&client, task.claim(), &summary).await?
    };
    if !completed {
        // Deleted, expired or claimed by another worker while we worked: leave nothing behind
        // (these keys are this claim's own).
        tracing::info!(%task_id, "task changed meanwhile; reports discarded");
        for key in [&html_key, &json_key] {
            let _ = state.store.delete(key).await;
        }
        return Ok(Outcome::Ignored);
    }
    if let Err(e) = state.store.delete(upload_key).await {
        tracing::warn!(error = %e, "upload not deleted (the janitor will)");
    }
    tracing::info!(%task_id, packets = summary.total_packets, "analysis completed");
    Ok(Outcome::Completed { task_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_come_every_five_points_or_every_interval_while_reading() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, Duration::from_secs(2));
        assert!(!t.due(10, 1, t0 + Duration::from_millis(250)));
        assert!(t.due(60, 5, t0 + Duration::from_millis(500)));
        assert!(!t.due(70, 7, t0 + Duration::from_millis(750)));
        assert!(t.due(80, 7, t0 + Duration::from_millis(2600)));
        // No bytes moved: no snapshot (the heartbeat covers liveness).
        assert!(!t.due(80, 7, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn percent_stays_below_100_until_completion() {
        assert_eq!(percent(0, 0), 0);
        assert_eq!(percent(50, 100), 50);
        assert_eq!(percent(100, 100), 99);
        assert_eq!(percent(u64::MAX, 10), 99);
    }
}
