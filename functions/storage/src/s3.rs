//! S3 adapter of [`ObjectStore`].

use crate::{
    ChunkSender, Download, MultipartUpload, ObjectStore, ObjectStream, PresignedRequest,
    StorageError, StoredPart,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::presigning::{PresignedRequest as SdkPresigned, PresigningConfig};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Longest presigned URL S3 accepts (SigV4: 7 days).
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Objects are read in ranged GETs of this size, several at once, as AWS advises for large
/// objects (8 or 16 MB ranges over parallel connections: one connection carries far less than
/// the engine reads). A part whose body breaks off is fetched again on its own.
pub const PART_BYTES: usize = 8 << 20;

/// Attempts at one part whose body broke off (the SDK retries failed requests itself).
const PART_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    part_bytes: usize,
}

impl S3Store {
    /// An adapter for `bucket`. With a custom endpoint (LocalStack) the bucket goes in the path,
    /// since `bucket.127.0.0.1` does not resolve.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        S3Store {
            client: Client::from_conf(s3),
            bucket: bucket.into(),
            part_bytes: PART_BYTES,
        }
    }

    /// The same store reading objects in parts of `part_bytes` (tests use small parts).
    pub fn with_part_bytes(mut self, part_bytes: usize) -> Self {
        self.part_bytes = part_bytes.max(1);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn presigning(expires_in: Duration) -> Result<PresigningConfig, StorageError> {
    PresigningConfig::expires_in(expires_in.min(MAX_PRESIGN))
        .map_err(|e| StorageError::Invalid(e.to_string()))
}

fn presigned(req: SdkPresigned) -> PresignedRequest {
    PresignedRequest {
        url: req.uri().to_string(),
        method: req.method().to_string(),
        headers: req
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// S3's error codes for an upload id that names no upload in progress (completed or aborted).
fn is_no_such_upload(code: Option<&str>) -> bool {
    matches!(code, Some("NoSuchUpload"))
}

/// A failed multipart call: NotFound for a finished upload, Invalid for a part list S3 refuses
/// (CompleteMultipartUpload's client errors), Service otherwise.
fn multipart_error<E, R>(
    operation: &'static str,
    key: &str,
    e: aws_sdk_s3::error::SdkError<E, R>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.as_service_error().and_then(|se| se.code());
    if is_no_such_upload(code) {
        return StorageError::NotFound(key.to_string());
    }
    if let (
        Some(code @ ("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "MalformedXML")),
        Some(se),
    ) = (code, e.as_service_error())
    {
        return StorageError::Invalid(format!("{code}: {}", se.message().unwrap_or("")));
    }
    StorageError::service(operation, DisplayErrorContext(e))
}

fn part_number_of(n: u32) -> Result<i32, StorageError> {
    i32::try_from(n).map_err(|_| StorageError::Invalid(format!("part number {n}")))
}

#[async_trait]
impl ObjectStore for S3Store {
    #[tracing::instrument(skip(self))]
    async fn presign_put(
        &self,
        key: &str,
        content_length: u64,
        content_type: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let length = i64::try_from(content_length)
            .map_err(|_| StorageError::Invalid("content length too large".into()))?;
        // Content-Length and Content-Type become signed headers: S3 refuses (403) a body of
        // another size or type, so the size the user declared is enforced by S3 itself.
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(length)
            .content_type(content_type)
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|e| StorageError::service("presign PutObject", e))?;
        Ok(presigned(req))
    }

    #[tracing::instrument(skip(self))]
    async fn presign_get(
        &self,
        key: &str,
        download: &Download<'_>,
        expires_in: Duration,
    ) -> Result<String, StorageError> {
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(download.content_type)
            .response_content_disposition(download.content_disposition)
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|e| StorageError::service("presign GetObject", e))?;
        Ok(req.uri().to_string())
    }

    #[tracing::instrument(skip(self, body), fields(bytes = body.len()))]
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| {
                StorageError::service("PutObject", aws_sdk_s3::error::DisplayErrorContext(e))
            })?;
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn open(&self, key: &str, budget_bytes: usize) -> Result<ObjectStream, StorageError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_not_found() => StorageError::NotFound(key.to_string()),
                _ => StorageError::service("HeadObject", aws_sdk_s3::error::DisplayErrorContext(e)),
            })?;
        let size_bytes = head.content_length().unwrap_or(0).max(0) as u64;
        let (tx, stream) = ObjectStream::channel(size_bytes, budget_bytes);
        // A part never takes more than the budget, so the parts being fetched and those
        // waiting for the reader fit in it together.
        let part_bytes = self.part_bytes.min(tx.budget_bytes()) as u64;
        let object = Arc::new(ObjectVersion {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            etag: head.e_tag,
        });
        tokio::spawn(download(object, size_bytes, part_bytes, tx));
        Ok(stream)
    }

    #[tracing::instrument(skip(self))]
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                StorageError::service("DeleteObject", aws_sdk_s3::error::DisplayErrorContext(e))
            })?;
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(false),
            Err(e) => Err(StorageError::service(
                "HeadObject",
                aws_sdk_s3::error::DisplayErrorContext(e),
            )),
        }
    }

    #[tracing::instrument(skip(self))]
    async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| StorageError::service("CreateMultipartUpload", DisplayErrorContext(e)))?;
        out.upload_id
            .ok_or_else(|| StorageError::service("CreateMultipartUpload", "no upload id"))
    }

    #[tracing::instrument(skip(self, upload_id))]
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let length = i64::try_from(content_length)
            .map_err(|_| StorageError::Invalid("content length too large".into()))?;
        // As for the single PUT, Content-Length is a signed header: S3 refuses (403) a part of
        // another size, so every part, and the whole, is exactly the size declared.
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number_of(part_number)?)
            .content_length(length)
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|e| StorageError::service("presign UploadPart", e))?;
        Ok(presigned(req))
    }

    #[tracing::instrument(skip(self, upload_id))]
    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, StorageError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| multipart_error("ListParts", key, e))?;
            for p in out.parts() {
                let (Some(number), Some(etag)) = (p.part_number(), p.e_tag()) else {
                    continue;
                };
                parts.push(StoredPart {
                    part_number: u32::try_from(number).unwrap_or(0),
                    size_bytes: p.size().unwrap_or(0).max(0) as u64,
                    etag: etag.to_string(),
                });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) if !next.is_empty() => marker = Some(next.to_string()),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    #[tracing::instrument(skip(self, upload_id, parts), fields(parts = parts.len()))]
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<(), StorageError> {
        let completed = parts
            .iter()
            .map(|p| {
                Ok(CompletedPart::builder()
                    .part_number(part_number_of(p.part_number)?)
                    .e_tag(&p.etag)
                    .build())
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| multipart_error("CompleteMultipartUpload", key, e))?;
        Ok(())
    }

    #[tracing::instrument(skip(self, upload_id))]
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match multipart_error("AbortMultipartUpload", key, e) {
                StorageError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    #[tracing::instrument(skip(self))]
    async fn list_multiparts(&self, prefix: &str) -> Result<Vec<MultipartUpload>, StorageError> {
        let mut uploads = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(markers.0.take())
                .set_upload_id_marker(markers.1.take())
                .send()
                .await
                .map_err(|e| {
                    StorageError::service("ListMultipartUploads", DisplayErrorContext(e))
                })?;
            for u in out.uploads() {
                let (Some(key), Some(upload_id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                uploads.push(MultipartUpload {
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                    initiated: u
                        .initiated()
                        .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                });
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            markers = (
                out.next_key_marker().map(str::to_string),
                out.next_upload_id_marker().map(str::to_string),
            );
            if markers.0.is_none() && markers.1.is_none() {
                break;
            }
        }
        Ok(uploads)
    }
}

/// The object being read, pinned to the version its HEAD saw: every part asks for that ETag,
/// so an object replaced during the read fails it (412) instead of mixing two files.
struct ObjectVersion {
    client: Client,
    bucket: String,
    key: String,
    etag: Option<String>,
}

/// Fetches the object's parts as the budget makes room for them, and hands them to the reader
/// in order. Stops when the reader goes away or a part fails for good (after sending the error).
async fn download(object: Arc<ObjectVersion>, size: u64, part_bytes: u64, tx: ChunkSender) {
    // The parts being fetched, oldest first; at most budget / part size of them.
    let (parts_tx, mut parts) = mpsc::unbounded_channel::<JoinHandle<Result<Part, StorageError>>>();
    let scheduler = {
        let tx = tx.clone();
        async move {
            let mut start = 0;
            while start < size {
                let end = (start + part_bytes).min(size);
                if !tx.reserve((end - start) as usize).await {
                    break;
                }
                let part = tokio::spawn(fetch_part(object.clone(), start, end));
                if let Err(unsent) = parts_tx.send(part) {
                    unsent.0.abort();
                    break;
                }
                start = end;
            }
        }
    };
    let deliverer = async move {
        'parts: while let Some(part) = parts.recv().await {
            let chunks = match part.await {
                Ok(chunks) => chunks,
                Err(e) => Err(StorageError::service("fetching a part of the object", e)),
            };
            match chunks {
                Ok(chunks) => {
                    for chunk in chunks {
                        if !tx.send_reserved(Ok(chunk)).await {
                            break 'parts;
                        }
                    }
                }
                Err(e) => {
                    tx.send_reserved(Err(e)).await;
                    break;
                }
            }
        }
        // The reader went away or a part failed: the parts still being fetched are not needed.
        parts.close();
        while let Ok(part) = parts.try_recv() {
            part.abort();
        }
    };
    tokio::join!(scheduler, deliverer);
}

/// A part of the object as received, in chunks of the SDK's size: small buffers that the
/// allocator reuses, where one buffer per part would be a fresh multi-MiB allocation each time.
type Part = Vec<Bytes>;

/// One part, bytes `start..end` of the object, whole.
async fn fetch_part(
    object: Arc<ObjectVersion>,
    start: u64,
    end: u64,
) -> Result<Part, StorageError> {
    let len = (end - start) as usize;
    let mut attempt = 1;
    loop {
        let out = object
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .range(format!("bytes={start}-{}", end - 1))
            .set_if_match(object.etag.clone())
            .send()
            .await
            .map_err(|e| {
                StorageError::service("GetObject", aws_sdk_s3::error::DisplayErrorContext(e))
            })?;
        let mut body = out.body;
        let mut chunks = Part::new();
        let mut received = 0;
        let broke_off = loop {
            match body.next().await {
                None => break None,
                Some(Ok(chunk)) if received + chunk.len() <= len => {
                    received += chunk.len();
                    // A copy of its own: the SDK's chunk may share (and keep alive) a larger
                    // receive buffer, which would make the byte budget a lie.
                    chunks.push(Bytes::copy_from_slice(&chunk));
                }
                // A server that ignores the range would send the whole object into this part.
                Some(Ok(_)) => {
                    return Err(StorageError::service(
                        "GetObject",
                        format!("bytes {start}-{}: more than the range asked for", end - 1),
                    ))
                }
                Some(Err(e)) => break Some(e.to_string()),
            }
        };
        let why = match broke_off {
            None if received == len => return Ok(chunks),
            None => format!("ended after {received} of {len} bytes"),
            Some(e) => e,
        };
        if attempt == PART_ATTEMPTS {
            return Err(StorageError::service(
                "reading the object body",
                format!("bytes {start}-{}: {why} ({attempt} attempts)", end - 1),
            ));
        }
        tracing::warn!(start, end, attempt, %why, "a part of the object broke off; fetching it again");
        attempt += 1;
    }
}
