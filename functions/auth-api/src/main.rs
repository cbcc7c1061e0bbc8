//! Lambda entry point of `auth-api`: settings, keys (read from Secrets Manager), logs and pool
//! once, then the runtime loop.

use anyhow::Context;
use auth_api::State;
use lambda_http::{service_fn, Request};
use std::convert::Infallible;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let aws = storage::aws::sdk_config(|k| std::env::var(k).ok()).await;
    let secrets = storage::secrets::SecretsManager::new(&aws);
    let settings = common::Settings::load_or_exit("auth-api", &secrets).await;
    let keys = common::ApiKeys::load_or_exit("auth-api", settings.environment, &secrets).await;
    let state = State::new(settings, &keys)
        .await
        .context("building the database pool")?;
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(auth_api::handle(state, req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
