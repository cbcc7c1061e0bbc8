//! `migrate`: applies the database migrations and, on first start, creates the brise-glace
//! admin, printing its password once. Run after each deploy: by hand (`cargo run -p migrate`,
//! or `pcap_analyzer db upgrade`), or as the Lambda function that `infra/deploy` invokes.

use anyhow::Context;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = common::Settings::load_or_exit("migrate");
    let pool = db::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    let admin_password = settings.admin_password.as_ref().map(|s| s.expose());

    // Set by the Lambda service: serve invocations instead of running once.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let (pool, admin_password) = (&pool, admin_password);
        return lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
            upgrade_once(pool, admin_password).await
        }))
        .await
        .map_err(|e| anyhow::anyhow!(e));
    }

    let created = db::upgrade(&pool, admin_password)
        .await
        .context("database upgrade failed")?;
    println!("{}", db::upgrade_outcome(created));
    Ok(())
}

/// One invocation: the answer goes back to the invoker (infra/deploy), not to the logs, so a
/// generated admin password is shown once to the operator and never stored in CloudWatch.
async fn upgrade_once(
    pool: &db::Pool,
    admin_password: Option<&str>,
) -> Result<Value, lambda_runtime::Error> {
    // A failure fails the invocation (FunctionError), which stops infra/deploy.
    Ok(match db::upgrade(pool, admin_password).await? {
        Some(admin) => json!({
            "status": "admin created",
            "username": admin.username,
            "banner": admin.banner(),
        }),
        None => json!({"status": "database is up to date"}),
    })
}
