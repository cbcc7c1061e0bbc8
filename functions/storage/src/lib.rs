//! Storage ports of the pipeline: an [`ObjectStore`] (S3) and a [`Queue`] (SQS), kept narrow so
//! the handlers say what they need and nothing else.
//!
//! [`s3::S3Store`] and [`sqs::SqsQueue`] are the real adapters (the AWS SDK, pointed at
//! LocalStack by `AWS_ENDPOINT_URL` with path-style addressing); [`memory`] holds hand-written
//! fakes for fast unit tests only. Integration tests always use the real services.
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
pub mod sqs;

use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

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

/// An object being read: its size and its bytes, in order, through a bounded channel. The
/// channel is the back-pressure: the producer waits while the consumer is behind, so memory
/// stays at `capacity` chunks whatever the object's size.
pub struct ObjectStream {
    pub size_bytes: u64,
    pub chunks: mpsc::Receiver<Result<Bytes, StorageError>>,
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

    /// Starts reading `key`; at most `capacity` chunks are buffered ahead of the reader.
    async fn open(&self, key: &str, capacity: usize) -> Result<ObjectStream, StorageError>;

    /// Deletes `key`; deleting a missing object succeeds (S3 semantics).
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    async fn exists(&self, key: &str) -> Result<bool, StorageError>;
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

    async fn depth(&self) -> Result<QueueDepth, StorageError>;

    /// The queue's ARN, as Lambda puts it in `eventSourceARN`.
    fn arn(&self) -> String;
}
