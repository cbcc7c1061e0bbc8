//! Storage ports of the pipeline: an [`ObjectStore`] (S3) and a [`Queue`] (SQS), kept narrow so
//! the handlers say what they need and nothing else.
//!
//! [`s3::S3Store`] and [`sqs::SqsQueue`] are the real adapters (the AWS SDK, pointed at
//! LocalStack by `AWS_ENDPOINT_URL` with path-style addressing); [`memory`] holds hand-written
//! fakes for fast unit tests only. Integration tests always use the real services.
//! [`secrets::SecretsManager`] reads the functions' secrets at cold start.
//!
//! ```no_run
//! # async fn f() -> Result<(), storage::StorageError> {
//! let config = storage::aws::sdk_config(|k| std::env::var(k).ok()).await;
//! let store = storage::s3::S3Store::new(&config, "pcap-analyzer-local");
//! use storage::ObjectStore;
//! store.put("reports/a.json", b"{}".to_vec(), "application/json").await?;
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

pub mod aws;
pub mod memory;
pub mod reader;
pub mod s3;
pub mod secrets;
pub mod sqs;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(String),
    /// A call to S3 or SQS failed; usually worth retrying.
    #[error("{operation} failed: {message}")]
    Service {
        operation: &'static str,
        message: String,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl StorageError {
    pub(crate) fn service(operation: &'static str, e: impl std::fmt::Display) -> Self {
        StorageError::Service {
            operation,
            message: e.to_string(),
        }
    }
}

/// A URL that lets its holder do one request without credentials, and the headers that request
/// must carry exactly (they are part of the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

/// What a presigned GET answers with, so a report opens (HTML) or downloads (JSON) correctly.
#[derive(Debug, Clone)]
pub struct Download<'a> {
    pub content_type: &'a str,
    pub content_disposition: &'a str,
}

/// An object being read: its size and its bytes, in order, through a channel bounded in bytes.
/// The bound is the back-pressure: the producer waits while the consumer is behind, so memory
/// stays at the budget whatever the object's size or the size of the SDK's chunks.
pub struct ObjectStream {
    pub size_bytes: u64,
    pub chunks: mpsc::Receiver<Result<Bytes, StorageError>>,
    /// Bytes the producer may still send: a chunk takes its length (at most the whole budget),
    /// and the reader gives it back when it has read the chunk.
    pub budget: Arc<Semaphore>,
    pub budget_bytes: usize,
}

/// Chunks sent at most, whatever their size: the byte budget is the real bound.
const MAX_CHUNKS_IN_FLIGHT: usize = 1024;

/// The producing end of an [`ObjectStream`]; its clones share the channel and the budget.
#[derive(Clone)]
pub struct ChunkSender {
    tx: mpsc::Sender<Result<Bytes, StorageError>>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
}

impl ObjectStream {
    /// A stream of `size_bytes` with at most `budget_bytes` buffered ahead of the reader.
    pub fn channel(size_bytes: u64, budget_bytes: usize) -> (ChunkSender, ObjectStream) {
        let most = Semaphore::MAX_PERMITS.min(u32::MAX as usize);
        let budget_bytes = budget_bytes.clamp(1, most);
        let (tx, chunks) = mpsc::channel(MAX_CHUNKS_IN_FLIGHT);
        let budget = Arc::new(Semaphore::new(budget_bytes));
        let sender = ChunkSender {
            tx,
            budget: budget.clone(),
            budget_bytes,
        };
        let stream = ObjectStream {
            size_bytes,
            chunks,
            budget,
            budget_bytes,
        };
        (sender, stream)
    }
}

/// The part of the budget a chunk takes (a chunk bigger than the whole budget takes it all).
pub fn budget_share(chunk_len: usize, budget_bytes: usize) -> usize {
    chunk_len.min(budget_bytes)
}

impl ChunkSender {
    /// Sends a chunk (or the error that ends the stream) once the budget has room for it.
    /// False when the reader went away.
    pub async fn send(&self, item: Result<Bytes, StorageError>) -> bool {
        if let Ok(chunk) = &item {
            if !self.reserve(chunk.len()).await {
                return false;
            }
        }
        self.send_reserved(item).await
    }

    /// Waits until the budget has room for a chunk of `len` bytes and takes that room, for a
    /// chunk to be sent later with [`ChunkSender::send_reserved`]. False when the reader went
    /// away (also while waiting: a reader that stopped early gives no room back).
    pub async fn reserve(&self, len: usize) -> bool {
        let share = budget_share(len, self.budget_bytes);
        tokio::select! {
            acquired = self.budget.acquire_many(share as u32) => match acquired {
                // Given back by the reader (`Semaphore::add_permits`) once it read the chunk.
                Ok(permit) => {
                    permit.forget();
                    true
                }
                Err(_) => false,
            },
            () = self.tx.closed() => false,
        }
    }

    /// Sends a chunk whose room was taken by [`ChunkSender::reserve`], or the error that ends
    /// the stream. False when the reader went away.
    pub async fn send_reserved(&self, item: Result<Bytes, StorageError>) -> bool {
        self.tx.send(item).await.is_ok()
    }

    /// The whole byte budget, which is also the most one chunk may take of it.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A PUT URL pinning the key, the exact size and the content type, valid for `expires_in`.
    async fn presign_put(
        &self,
        key: &str,
        content_length: u64,
        content_type: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError>;

    /// A GET URL valid for `expires_in`, answering with the given type and disposition.
    async fn presign_get(
        &self,
        key: &str,
        download: &Download<'_>,
        expires_in: Duration,
    ) -> Result<String, StorageError>;

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StorageError>;

    /// Starts reading `key`; at most `budget_bytes` are buffered ahead of the reader.
    async fn open(&self, key: &str, budget_bytes: usize) -> Result<ObjectStream, StorageError>;

    /// Deletes `key`; deleting a missing object succeeds (S3 semantics).
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    async fn exists(&self, key: &str) -> Result<bool, StorageError>;

    /// Starts a multipart upload of `key` (its parts are PUT to [`ObjectStore::presign_part`]
    /// URLs); the upload id names it in every later call.
    async fn create_multipart(&self, key: &str, content_type: &str)
        -> Result<String, StorageError>;

    /// A PUT URL for part `part_number` (1-based) of an upload, pinning its exact size.
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError>;

    /// The parts the store holds of an upload, by part number; [`StorageError::NotFound`] when
    /// the upload is gone (completed or aborted).
    async fn list_parts(&self, key: &str, upload_id: &str)
        -> Result<Vec<StoredPart>, StorageError>;

    /// Joins the parts into the object `key`. [`StorageError::Invalid`] when the store refuses
    /// the list (a part missing, an ETag that does not match, a part too small); NotFound when
    /// the upload is gone.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<(), StorageError>;

    /// Discards an upload and its parts; aborting one that is gone succeeds.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError>;

    /// Every multipart upload in progress under `prefix`.
    async fn list_multiparts(&self, prefix: &str) -> Result<Vec<MultipartUpload>, StorageError>;
}

/// A part of a multipart upload: its number (1-based), size and the ETag S3 answered its PUT
/// with (what completion names it by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub part_number: u32,
    pub size_bytes: u64,
    pub etag: String,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<std::time::SystemTime>,
}

/// One received queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    pub sent_timestamp_ms: Option<u64>,
}

/// Approximate message counts of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Up to `max` messages (1–10), waiting up to `wait` for the first one (long polling).
    async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<QueueMessage>, StorageError>;

    async fn delete(&self, receipt_handle: &str) -> Result<(), StorageError>;

    /// Makes an in-flight message visible again after `after` (retry back-off).
    async fn retry_after(&self, receipt_handle: &str, after: Duration) -> Result<(), StorageError>;

    async fn send(&self, body: &str) -> Result<(), StorageError>;

    /// Sends `body` to be received no sooner than `after` from now (SQS: at most 15 minutes).
    async fn send_later(&self, body: &str, after: Duration) -> Result<(), StorageError>;

    async fn depth(&self) -> Result<QueueDepth, StorageError>;

    /// The queue's ARN, as Lambda puts it in `eventSourceARN`.
    fn arn(&self) -> String;
}
