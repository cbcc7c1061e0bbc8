//! The event side of AWS, locally: SQS → analyzer (as Lambda's event source mapping does) and
//! the janitor's schedule.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use storage::{Queue, QueueMessage};
use tokio::sync::Semaphore;

/// Long-polling wait of each receive (SQS allows up to 20 s).
const RECEIVE_WAIT: Duration = Duration::from_secs(10);
/// Pause after the queue could not be reached, so a stopped LocalStack is not hammered.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_secs(2);
/// First retry delay of a failed message, doubled per receive up to [`RETRY_MAX`]. Lambda would
/// wait for the whole visibility timeout; locally a shorter back-off keeps the loop quick.
const RETRY_BASE: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The `SqsEvent` Lambda would deliver for these messages (BatchSize 1 gives one record).
pub fn sqs_event(messages: &[QueueMessage], queue_arn: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            let mut attributes = HashMap::from([(
                "ApproximateReceiveCount".to_string(),
                m.receive_count.to_string(),
            )]);
            if let Some(sent) = m.sent_timestamp_ms {
                attributes.insert("SentTimestamp".into(), sent.to_string());
            }
            record.attributes = attributes;
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(queue_arn.to_string());
            record
        })
        .collect();
    event
}

/// Back-off before the `receive_count`-th delivery is retried.
pub fn retry_delay(receive_count: u32) -> Duration {
    let factor = 1u32 << receive_count.saturating_sub(1).min(10);
    (RETRY_BASE * factor).min(RETRY_MAX)
}

/// Polls `queue` forever, running up to `concurrency` analyses at once (each its own "Lambda
/// invocation" with one message). Succeeded messages are deleted, failed ones retried later.
pub async fn poll_queue(queue: Arc<dyn Queue>, analyzer: Arc<analyzer::State>, concurrency: usize) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let arn = queue.arn();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let messages = match queue.receive(1, RECEIVE_WAIT).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "queue receive failed");
                tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let queue = queue.clone();
        let analyzer = analyzer.clone();
        let arn = arn.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let response = analyzer::handle(&analyzer, sqs_event(&messages, &arn)).await;
            for m in &messages {
                let failed = response
                    .batch_item_failures
                    .iter()
                    .any(|f| f.item_identifier == m.message_id);
                let result = if failed {
                    queue
                        .retry_after(&m.receipt_handle, retry_delay(m.receive_count))
                        .await
                } else {
                    queue.delete(&m.receipt_handle).await
                };
                if let Err(e) = result {
                    tracing::warn!(message_id = %m.message_id, error = %e, "message not settled");
                }
            }
        });
    }
}

/// Runs the janitor every `every`, as the EventBridge schedule does in AWS.
pub async fn run_janitor(state: Arc<janitor::State>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = janitor::run_once(&state).await {
            tracing::warn!(error = %e, "janitor run failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_messages_back_off_exponentially_up_to_five_minutes() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(10));
        assert_eq!(retry_delay(30), Duration::from_secs(300));
    }

    #[test]
    fn queue_messages_become_the_records_lambda_would_deliver() {
        let event = sqs_event(
            &[QueueMessage {
                message_id: "m1".into(),
                receipt_handle: "r1".into(),
                body: "{}".into(),
                receive_count: 2,
                sent_timestamp_ms: Some(7),
            }],
            "arn:aws:sqs:us-east-1:000000000000:q",
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["Records"][0]["messageId"], "m1");
        assert_eq!(
            json["Records"][0]["attributes"]["ApproximateReceiveCount"],
            "2"
        );
        assert_eq!(
            json["Records"][0]["eventSourceARN"],
            "arn:aws:sqs:us-east-1:000000000000:q"
        );
    }
}
