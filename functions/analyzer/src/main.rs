//! Lambda entry point of `analyzer`: settings, logs, pool and S3 client once, then the loop.

use analyzer::State;
use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let aws = storage::aws::sdk_config(|k| std::env::var(k).ok()).await;
    // The database login only: the pipeline holds no API key.
    let settings =
        common::Settings::load_or_exit("analyzer", &storage::secrets::SecretsManager::new(&aws))
            .await;
    let bucket = settings
        .bucket_name
        .clone()
        .context("BUCKET_NAME is required")?;
    let pool = db::connect(&settings.database)
        .await
        .context("building the database pool")?;
    let queue_url = settings
        .queue_url
        .clone()
        .context("QUEUE_URL is required (tasks held back for their owner are sent again)")?;
    let state = State::new(
        pool,
        Arc::new(storage::s3::S3Store::new(&aws, bucket)),
        analyzer::Config::from_settings(&settings),
    )
    .with_requeue(Arc::new(storage::sqs::SqsQueue::new(&aws, queue_url)));
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(analyzer::handle(state, event.payload).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
