//! Development server: `local-gateway` serves every HTTP function on 127.0.0.1:$APP_PORT.
//!
//! Settings come from the environment; when `DATABASE_URL` is not set, `localstack/local.env`
//! (written by `localstack/up`) in the current directory fills the gaps. On start it applies
//! the migrations as the owner (`DATABASE_URL`), creates or updates the application role
//! (`APP_DATABASE_USER`, DML rights only) and serves as that role, as the deployed functions
//! do; it prints the brise-glace banner when it creates the first admin.
//!
//! With `BUCKET_NAME` and `QUEUE_URL` (LocalStack) it also runs the pipeline: it polls the
//! queue and hands each message to the analyzer, and runs the janitor every
//! `JANITOR_INTERVAL_SECONDS` (60).
//!
//! The browser UI is served from `web/` in the current directory (or `WEB_DIR`) on every path
//! outside `/api/`, so `http://localhost:8000` is the whole product.

use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Analyses run at once by the local queue poller (the machine's cores, not Lambda's scale).
const LOCAL_ANALYZER_CONCURRENCY: usize = 2;
/// Where the UI's static files are, relative to the repository root the server runs from.
const DEFAULT_WEB_DIR: &str = "web";
/// Object store origin when no `AWS_ENDPOINT_URL` points at LocalStack: S3's own hosts.
const AWS_S3_ORIGIN: &str = "https://*.amazonaws.com";
/// Default period of the janitor locally (EventBridge runs it every few minutes in AWS).
const DEFAULT_JANITOR_INTERVAL_SECS: u64 = 60;

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
    let lookup = |k: &str| std::env::var(k).ok().or_else(|| file.get(k).cloned());
    let aws = storage::aws::sdk_config(lookup).await;
    let secrets = storage::secrets::SecretsManager::new(&aws);
    let loaded = match common::Settings::load(lookup, &secrets).await {
        Ok(s) => common::ApiKeys::load(lookup, s.environment, &secrets)
            .await
            .map(|keys| (s, keys)),
        Err(e) => Err(e),
    };
    let (settings, keys) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("local-gateway: configuration error: {e}");
            std::process::exit(78);
        }
    };
    common::telemetry::init(&settings.log_level, settings.log_format);
    let addr = SocketAddr::from(([127, 0, 0, 1], settings.app_port));
    let bucket = settings
        .bucket_name
        .clone()
        .context("BUCKET_NAME is not set: run localstack/up (it writes localstack/local.env)")?;
    let queue_url = settings.queue_url.clone();
    let dlq_url = settings.dlq_url.clone();
    let janitor_every = Duration::from_secs(
        lookup("JANITOR_INTERVAL_SECONDS")
            .map(|v| {
                v.parse()
                    .context("JANITOR_INTERVAL_SECONDS must be a number of seconds")
            })
            .transpose()?
            .unwrap_or(DEFAULT_JANITOR_INTERVAL_SECS)
            .max(1),
    );
    let web_dir =
        std::path::PathBuf::from(lookup("WEB_DIR").unwrap_or_else(|| DEFAULT_WEB_DIR.into()));
    let s3_origin = match lookup("AWS_ENDPOINT_URL") {
        Some(url) => local_gateway::web::origin_of(&url)
            .with_context(|| format!("AWS_ENDPOINT_URL is not an http(s) URL: {url}"))?,
        None => AWS_S3_ORIGIN.to_string(),
    };
    let web = if web_dir.join("index.html").is_file() {
        Some(Arc::new(
            local_gateway::WebRoot::new(web_dir, &s3_origin)
                .context("building the UI's Content-Security-Policy")?,
        ))
    } else {
        tracing::warn!(dir = %web_dir.display(), "no index.html there: serving the API only (set WEB_DIR)");
        None
    };
    let store: Arc<dyn storage::ObjectStore> = Arc::new(storage::s3::S3Store::new(&aws, bucket));
    let analyzer_config = analyzer::Config::from_settings(&settings);

    let owner = db::connect(&settings.database)
        .await
        .context("building the owner's database pool")?;
    let admin_password = settings.admin_password.as_ref().map(|s| s.expose());
    match db::upgrade_as_owner(&owner, admin_password, settings.app_role.as_ref()).await {
        Ok(Some(admin)) => println!("{}", admin.banner()),
        Ok(None) => {}
        // A dev server must still start (and answer /api/health with 503) when Postgres is down.
        Err(e) => tracing::warn!(error = %e, "database upgrade skipped"),
    }
    drop(owner);
    let serving = match &settings.app_role {
        Some(role) => settings.database.as_role(role),
        None => settings.database.clone(),
    };
    let pool = db::connect(&serving)
        .await
        .context("building the database pool")?;
    let auth = auth_api::State::with_pool(settings, &keys, pool.clone());
    let queue: Arc<dyn storage::Queue> = match &queue_url {
        Some(url) => Arc::new(storage::sqs::SqsQueue::new(&aws, url.clone())),
        None => anyhow::bail!("QUEUE_URL is not set: run localstack/up"),
    };
    let state = tasks_api::State::new(auth, store.clone(), queue.clone());

    let analyzer = Arc::new(
        analyzer::State::new(pool.clone(), store.clone(), analyzer_config)
            .with_requeue(queue.clone()),
    );
    tokio::spawn(local_gateway::pipeline::poll_queue(
        queue,
        analyzer,
        LOCAL_ANALYZER_CONCURRENCY,
    ));
    let janitor = Arc::new(janitor::State {
        pool,
        store,
        dlq: dlq_url
            .map(|url| Arc::new(storage::sqs::SqsQueue::new(&aws, url)) as Arc<dyn storage::Queue>),
        config: janitor::Config::default(),
    });
    tokio::spawn(local_gateway::pipeline::run_janitor(janitor, janitor_every));

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (APP_PORT)"))?;
    println!("local-gateway listening on http://{addr}");
    tokio::select! {
        r = local_gateway::serve_with_web(listener, Arc::new(state), web) => r.context("server stopped")?,
        _ = tokio::signal::ctrl_c() => println!("local-gateway: stopping"),
    }
    Ok(())
}
