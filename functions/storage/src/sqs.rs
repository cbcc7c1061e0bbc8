//! SQS adapter of [`Queue`].

use crate::{Queue, QueueDepth, QueueMessage, StorageError};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use std::time::Duration;

/// SQS limits: 10 messages per receive, 20 s of long polling, 12 h of visibility.
const MAX_BATCH: u32 = 10;
const MAX_WAIT: Duration = Duration::from_secs(20);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    arn: String,
}

impl SqsQueue {
    pub fn new(config: &SdkConfig, url: impl Into<String>) -> Self {
        let url = url.into();
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        SqsQueue {
            client: Client::new(config),
            arn: arn_of_url(&url, &region),
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `https://sqs.<region>.amazonaws.com/<account>/<name>` (or LocalStack's
/// `http://host:port/<account>/<name>`) → `arn:aws:sqs:<region>:<account>:<name>`.
pub fn arn_of_url(url: &str, region: &str) -> String {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

#[async_trait]
impl Queue for SqsQueue {
    #[tracing::instrument(skip(self))]
    async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<QueueMessage>, StorageError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| StorageError::service("ReceiveMessage", DisplayErrorContext(e)))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attr = |name: MessageSystemAttributeName| {
                    m.attributes().and_then(|a| a.get(&name)).cloned()
                };
                QueueMessage {
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                    sent_timestamp_ms: attr(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|v| v.parse().ok()),
                    message_id: m.message_id.clone().unwrap_or_default(),
                    receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
                    body: m.body.clone().unwrap_or_default(),
                }
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn delete(&self, receipt_handle: &str) -> Result<(), StorageError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| StorageError::service("DeleteMessage", DisplayErrorContext(e)))?;
        Ok(())
    }

    #[tracing::instrument(skip(self, receipt_handle))]
    async fn retry_after(&self, receipt_handle: &str, after: Duration) -> Result<(), StorageError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(after.min(MAX_VISIBILITY).as_secs() as i32)
            .send()
            .await
            .map_err(|e| {
                StorageError::service("ChangeMessageVisibility", DisplayErrorContext(e))
            })?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn send_later(&self, body: &str, after: Duration) -> Result<(), StorageError> {
        // SQS's ceiling for a message's delay.
        let seconds = after.as_secs().clamp(0, 900) as i32;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| StorageError::service("SendMessage", DisplayErrorContext(e)))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn send(&self, body: &str) -> Result<(), StorageError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| StorageError::service("SendMessage", DisplayErrorContext(e)))?;
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn depth(&self) -> Result<QueueDepth, StorageError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| StorageError::service("GetQueueAttributes", DisplayErrorContext(e)))?;
        let get = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    fn arn(&self) -> String {
        self.arn.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arn_is_derived_from_aws_and_localstack_urls() {
        assert_eq!(
            arn_of_url(
                "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs",
                "eu-west-1"
            ),
            "arn:aws:sqs:eu-west-1:123456789012:jobs"
        );
        assert_eq!(
            arn_of_url("http://127.0.0.1:4566/000000000000/q", "us-east-1"),
            "arn:aws:sqs:us-east-1:000000000000:q"
        );
    }
}
