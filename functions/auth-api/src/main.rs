//! Lambda entry point of `auth-api`: settings, logs and pool once, then the runtime loop.

use anyhow::Context;
use auth_api::State;
use lambda_http::{service_fn, Request};
use std::convert::Infallible;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = match common::Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            // Said on stderr before anything else, naming the variable to fix.
            eprintln!("auth-api: configuration error: {e}");
            std::process::exit(78);
        }
    };
    common::telemetry::init(&settings.log_level, settings.log_format);
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
