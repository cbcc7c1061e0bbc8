//! Lambda entry point of `auth-api`: settings, logs and pool once, then the runtime loop.

use anyhow::Context;
use auth_api::State;
use lambda_http::{service_fn, Request};
use std::convert::Infallible;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = common::Settings::load_or_exit("auth-api");
    let state = State::new(settings)
        .await
        .context("building the database pool")?;
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(auth_api::handle(state, req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
