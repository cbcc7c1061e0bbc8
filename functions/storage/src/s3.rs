//! S3 adapter of [`ObjectStore`].

use crate::{Download, ObjectStore, ObjectStream, PresignedRequest, StorageError};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::time::Duration;

/// Longest presigned URL S3 accepts (SigV4: 7 days).
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
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
        }
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
        Ok(PresignedRequest {
            url: req.uri().to_string(),
            method: req.method().to_string(),
            headers: req
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
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
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_no_such_key() => StorageError::NotFound(key.to_string()),
                _ => StorageError::service("GetObject", aws_sdk_s3::error::DisplayErrorContext(e)),
            })?;
        let size_bytes = out.content_length().unwrap_or(0).max(0) as u64;
        let mut body = out.body;
        let (tx, stream) = ObjectStream::channel(size_bytes, budget_bytes);
        tokio::spawn(async move {
            loop {
                let item = match body.next().await {
                    None => break,
                    // A copy of its own: the SDK's chunk may share (and keep alive) a larger
                    // receive buffer, which would make the byte budget a lie.
                    Some(Ok(chunk)) => Ok(Bytes::copy_from_slice(&chunk)),
                    Some(Err(e)) => Err(StorageError::service("reading the object body", e)),
                };
                let failed = item.is_err();
                // The reader went away (analysis stopped): stop downloading.
                if !tx.send(item).await || failed {
                    break;
                }
            }
        });
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
}
