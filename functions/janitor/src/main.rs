//! Lambda entry point of `janitor` (an EventBridge schedule invokes it; the payload is unused).

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let aws = storage::aws::sdk_config(|k| std::env::var(k).ok()).await;
    // The database login only: the pipeline holds no API key.
    let settings =
        common::Settings::load_or_exit("janitor", &storage::secrets::SecretsManager::new(&aws))
            .await;
    let bucket = settings
        .bucket_name
        .clone()
        .context("BUCKET_NAME is required")?;
    let pool = db::connect(&settings.database)
        .await
        .context("building the database pool")?;
    let dlq = settings
        .dlq_url
        .clone()
        .map(|url| Arc::new(storage::sqs::SqsQueue::new(&aws, url)) as Arc<dyn storage::Queue>);
    let state = janitor::State {
        pool,
        store: Arc::new(storage::s3::S3Store::new(&aws, bucket)),
        dlq,
        config: janitor::Config::default(),
    };
    let state = &state;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = janitor::run_once(state).await?;
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
