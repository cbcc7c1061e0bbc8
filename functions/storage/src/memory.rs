//! In-memory fakes of the ports, for fast unit tests of handler logic only.

use crate::{
    Download, MultipartUpload, ObjectStore, ObjectStream, PresignedRequest, Queue, QueueDepth,
    QueueMessage, StorageError, StoredPart,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Chunk size the fake streams objects in, small so tests cross chunk boundaries.
const FAKE_CHUNK: usize = 1024;

#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
    /// Multipart uploads in progress by upload id: the key, its type and the parts held.
    uploads: Mutex<BTreeMap<String, PendingParts>>,
}

#[derive(Debug, Clone)]
struct PendingParts {
    key: String,
    content_type: String,
    parts: BTreeMap<u32, Vec<u8>>,
}

/// The fake's ETag of a part: its number and size (enough to tell parts apart in tests).
fn fake_etag(part_number: u32, len: usize) -> String {
    format!("\"{part_number}-{len}\"")
}

impl MemoryStore {
    /// Stores part `part_number` of an upload, as a PUT to its presigned URL would; returns
    /// its ETag.
    pub fn put_part(
        &self,
        upload_id: &str,
        part_number: u32,
        body: Vec<u8>,
    ) -> Result<String, StorageError> {
        let mut uploads = self.uploads_lock();
        let upload = uploads
            .get_mut(upload_id)
            .ok_or_else(|| StorageError::NotFound(upload_id.to_string()))?;
        let etag = fake_etag(part_number, body.len());
        upload.parts.insert(part_number, body);
        Ok(etag)
    }

    fn uploads_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PendingParts>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<(Vec<u8>, String)> {
        self.lock().get(key).cloned()
    }

    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Vec<u8>, String)>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn presign_put(
        &self,
        key: &str,
        content_length: u64,
        content_type: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        Ok(PresignedRequest {
            url: format!("memory://put/{key}?expires={}", expires_in.as_secs()),
            method: "PUT".into(),
            headers: vec![
                ("content-length".into(), content_length.to_string()),
                ("content-type".into(), content_type.into()),
            ],
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        download: &Download<'_>,
        expires_in: Duration,
    ) -> Result<String, StorageError> {
        Ok(format!(
            "memory://get/{key}?type={}&expires={}",
            download.content_type,
            expires_in.as_secs()
        ))
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StorageError> {
        self.lock()
            .insert(key.to_string(), (body, content_type.to_string()));
        Ok(())
    }

    async fn open(&self, key: &str, budget_bytes: usize) -> Result<ObjectStream, StorageError> {
        let (data, _) = self
            .get(key)
            .ok_or_else(|| StorageError::NotFound(key.to_string()))?;
        let (tx, stream) = ObjectStream::channel(data.len() as u64, budget_bytes);
        tokio::spawn(async move {
            for chunk in data.chunks(FAKE_CHUNK) {
                if !tx.send(Ok(Bytes::copy_from_slice(chunk))).await {
                    break;
                }
            }
        });
        Ok(stream)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.lock().contains_key(key))
    }

    async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        let mut uploads = self.uploads_lock();
        let upload_id = format!("upload-{}", uploads.len() + 1);
        uploads.insert(
            upload_id.clone(),
            PendingParts {
                key: key.to_string(),
                content_type: content_type.to_string(),
                parts: BTreeMap::new(),
            },
        );
        Ok(upload_id)
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        Ok(PresignedRequest {
            url: format!(
                "memory://part/{key}?uploadId={upload_id}&partNumber={part_number}&expires={}",
                expires_in.as_secs()
            ),
            method: "PUT".into(),
            headers: vec![("content-length".into(), content_length.to_string())],
        })
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, StorageError> {
        let uploads = self.uploads_lock();
        let upload = uploads
            .get(upload_id)
            .filter(|u| u.key == key)
            .ok_or_else(|| StorageError::NotFound(key.to_string()))?;
        Ok(upload
            .parts
            .iter()
            .map(|(n, body)| StoredPart {
                part_number: *n,
                size_bytes: body.len() as u64,
                etag: fake_etag(*n, body.len()),
            })
            .collect())
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<(), StorageError> {
        let upload = {
            let uploads = self.uploads_lock();
            uploads
                .get(upload_id)
                .filter(|u| u.key == key)
                .cloned()
                .ok_or_else(|| StorageError::NotFound(key.to_string()))?
        };
        let mut whole = Vec::new();
        for p in parts {
            match upload.parts.get(&p.part_number) {
                Some(body) if fake_etag(p.part_number, body.len()) == p.etag => {
                    whole.extend_from_slice(body)
                }
                _ => {
                    return Err(StorageError::Invalid(format!(
                        "InvalidPart: part {}",
                        p.part_number
                    )))
                }
            }
        }
        self.uploads_lock().remove(upload_id);
        self.lock()
            .insert(key.to_string(), (whole, upload.content_type));
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.uploads_lock().remove(upload_id);
        Ok(())
    }

    async fn list_multiparts(&self, prefix: &str) -> Result<Vec<MultipartUpload>, StorageError> {
        Ok(self
            .uploads_lock()
            .iter()
            .filter(|(_, u)| u.key.starts_with(prefix))
            .map(|(id, u)| MultipartUpload {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated: None,
            })
            .collect())
    }
}

/// A queue that hands out what was sent, once; deletes and visibility changes are recorded.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    messages: Mutex<VecDeque<String>>,
    deleted: Mutex<Vec<String>>,
    next_id: Mutex<u64>,
}

impl MemoryQueue {
    pub fn deleted(&self) -> Vec<String> {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn receive(&self, max: u32, _wait: Duration) -> Result<Vec<QueueMessage>, StorageError> {
        let mut q = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let mut id = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        while out.len() < max as usize {
            let Some(body) = q.pop_front() else { break };
            *id += 1;
            out.push(QueueMessage {
                message_id: format!("m-{id}"),
                receipt_handle: format!("r-{id}"),
                body,
                receive_count: 1,
                sent_timestamp_ms: None,
            });
        }
        Ok(out)
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), StorageError> {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(receipt_handle.to_string());
        Ok(())
    }

    async fn retry_after(&self, _: &str, _: Duration) -> Result<(), StorageError> {
        Ok(())
    }

    /// No clock here: the message is there at once.
    async fn send_later(&self, body: &str, _after: Duration) -> Result<(), StorageError> {
        self.send(body).await
    }

    async fn send(&self, body: &str) -> Result<(), StorageError> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(body.to_string());
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, StorageError> {
        Ok(QueueDepth {
            visible: self
                .messages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len() as u64,
            in_flight: 0,
        })
    }

    fn arn(&self) -> String {
        "arn:aws:sqs:us-east-1:000000000000:memory".into()
    }
}
