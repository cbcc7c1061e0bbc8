//! `migrate`: applies the database migrations as the owner, creates or updates the application
//! role (DML rights only) and, on first start, creates the brise-glace admin, printing its
//! password once. Run after each deploy: by hand (`cargo run -p migrate`, or `pcap_analyzer db
//! upgrade`, which does the same), or as the Lambda function that `infra/deploy` invokes.

use anyhow::Context;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let aws = storage::aws::sdk_config(|k| std::env::var(k).ok()).await;
    // The owner's login, the admin password and the application role, from Secrets Manager.
    let settings =
        common::Settings::load_or_exit("migrate", &storage::secrets::SecretsManager::new(&aws))
            .await;
    let pool = db::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    let admin_password = settings.admin_password.as_ref().map(|s| s.expose());
    let app_role = settings.app_role.as_ref();

    // Set by the Lambda service: serve invocations instead of running once.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let (pool, admin_password) = (&pool, admin_password);
        return lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
            upgrade_once(pool, admin_password, app_role).await
        }))
        .await
        .map_err(|e| anyhow::anyhow!(e));
    }

    let created = db::upgrade_as_owner(&pool, admin_password, app_role)
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
    app_role: Option<&common::settings::DatabaseCredentials>,
) -> Result<Value, lambda_runtime::Error> {
    // A failure fails the invocation (FunctionError), which stops infra/deploy.
    Ok(
        match db::upgrade_as_owner(pool, admin_password, app_role).await? {
            Some(admin) => json!({
                "status": "admin created",
                "username": admin.username,
                "banner": admin.banner(),
            }),
            None => json!({"status": "database is up to date"}),
        },
    )
}
