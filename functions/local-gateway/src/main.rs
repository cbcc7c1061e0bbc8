//! Development server: `local-gateway` serves every HTTP function on 127.0.0.1:$APP_PORT.
//!
//! Settings come from the environment; when `DATABASE_URL` is not set, `localstack/local.env`
//! (written by `localstack/up`) in the current directory fills the gaps. On start it applies
//! the migrations and prints the brise-glace banner when it creates the first admin.

use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

fn local_env() -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string("localstack/local.env") else {
        return HashMap::new();
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let file = if std::env::var_os("DATABASE_URL").is_none() {
        local_env()
    } else {
        HashMap::new()
    };
    let settings = match common::Settings::from_lookup(|k| {
        std::env::var(k).ok().or_else(|| file.get(k).cloned())
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("local-gateway: configuration error: {e}");
            std::process::exit(78);
        }
    };
    common::telemetry::init(&settings.log_level, settings.log_format);
    let addr = SocketAddr::from(([127, 0, 0, 1], settings.app_port));
    let state = auth_api::State::new(settings)
        .await
        .context("building the database pool")?;

    let admin_password = state
        .settings
        .admin_password
        .as_ref()
        .map(|s| s.expose().to_string());
    match db::upgrade(&state.pool, admin_password.as_deref()).await {
        Ok(Some(admin)) => println!("{}", admin.banner()),
        Ok(None) => {}
        // A dev server must still start (and answer /api/health with 503) when Postgres is down.
        Err(e) => tracing::warn!(error = %e, "database upgrade skipped"),
    }

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (APP_PORT)"))?;
    println!("local-gateway listening on http://{addr}");
    tokio::select! {
        r = local_gateway::serve(listener, Arc::new(state)) => r.context("server stopped")?,
        _ = tokio::signal::ctrl_c() => println!("local-gateway: stopping"),
    }
    Ok(())
}
