//! `migrate`: applies the database migrations and, on first start, creates the brise-glace
//! admin, printing its password once. Run after each deploy (as a Lambda or by hand).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = match common::Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("migrate: configuration error: {e}");
            std::process::exit(78);
        }
    };
    common::telemetry::init(&settings.log_level, settings.log_format);
    let pool = db::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    let admin_password = settings.admin_password.as_ref().map(|s| s.expose());
    match db::upgrade(&pool, admin_password)
        .await
        .context("database upgrade failed")?
    {
        Some(admin) => println!("{}", admin.banner()),
        None => println!("database is up to date"),
    }
    Ok(())
}
