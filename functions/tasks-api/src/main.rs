//! Lambda entry point of `tasks-api`: settings, keys (read from Secrets Manager), logs, pool
//! and AWS clients once, then the loop.

use anyhow::Context;
use lambda_http::{service_fn, Request};
use std::convert::Infallible;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let aws = storage::aws::sdk_config(|k| std::env::var(k).ok()).await;
    let secrets = storage::secrets::SecretsManager::new(&aws);
    let settings = common::Settings::load_or_exit("tasks-api", &secrets).await;
    let keys = common::ApiKeys::load_or_exit("tasks-api", settings.environment, &secrets).await;
    let bucket = settings
        .bucket_name
        .clone()
        .context("BUCKET_NAME is required")?;
    let queue_url = settings
        .queue_url
        .clone()
        .context("QUEUE_URL is required")?;
    let auth = auth_api::State::new(settings, &keys)
        .await
        .context("building the database pool")?;
    let state = tasks_api::State::new(
        auth,
        Arc::new(storage::s3::S3Store::new(&aws, bucket)),
        Arc::new(storage::sqs::SqsQueue::new(&aws, queue_url)),
    );
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(tasks_api::handle(state, req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
