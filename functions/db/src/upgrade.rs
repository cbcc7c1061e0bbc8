//! Schema migrations and the first-start admin ("brise-glace", break-glass) account.

use crate::users::{self, NewUser, Role};
use crate::{DbError, Pool};
use common::settings::DatabaseCredentials;
use security::password;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The line operators grep for in the logs (kept from v5).
pub const ADMIN_BANNER: &str = "ADMIN BRISE-GLACE ACCOUNT CREATED";

/// Name of the first admin account, as v5.
pub const BRISE_GLACE_USERNAME: &str = "admin";

/// Postgres advisory lock key held while migrating, so two concurrent `migrate` runs (two
/// deploys, or a Lambda retry) apply each migration once. ASCII "pcap".
const MIGRATION_LOCK_KEY: i64 = 0x7063_6170;

/// The admin account created on first start.
#[derive(Clone)]
pub struct BriseGlace {
    pub username: String,
    /// The generated password, or `None` when it came from `ADMIN_PASSWORD` (then it is not
    /// printed: the operator already has it and it must not end up in logs).
    pub generated_password: Option<String>,
}

impl std::fmt::Debug for BriseGlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BriseGlace")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl BriseGlace {
    /// The text to print once, v5's format.
    pub fn banner(&self) -> String {
        let rule = "=".repeat(80);
        let password = self
            .generated_password
            .clone()
            .unwrap_or_else(|| "(the value of ADMIN_PASSWORD)".to_string());
        format!(
            "{ADMIN_BANNER}\n{rule}\nUsername: {}\nPassword: {password}\nCHANGE THIS PASSWORD IMMEDIATELY AFTER FIRST LOGIN!\n{rule}",
            self.username
        )
    }
}

/// Applies the pending migrations (embedded from `migrations/`), under an advisory lock.
#[tracing::instrument(skip_all)]
pub async fn migrate(pool: &Pool) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    with_migration_lock(&mut client, None, None)
        .await
        .map(|_| ())
}

/// What an upgrade tells the operator on a terminal: the created admin's banner (shown once),
/// or that there was nothing to do.
pub fn outcome(created: Option<BriseGlace>) -> String {
    match created {
        Some(admin) => admin.banner(),
        None => "database is up to date".into(),
    }
}

/// `pcap_analyzer db upgrade` and the `migrate` function: applies the migrations, then creates
/// the brise-glace admin when no admin exists. Returns the account created, if any; print its
/// [`BriseGlace::banner`] once.
///
/// The password is `admin_password` (from `ADMIN_PASSWORD`, checked against the policy) or 24
/// random characters; a generated one must be changed at first login.
#[tracing::instrument(skip_all)]
pub async fn upgrade(
    pool: &Pool,
    admin_password: Option<&str>,
) -> Result<Option<BriseGlace>, DbError> {
    upgrade_as_owner(pool, admin_password, None).await
}

/// [`upgrade`] run as the owner of the tables (`migrate`, the dev server), which then creates
/// or updates `app_role`, the login the functions serve with, with DML rights only
/// ([`crate::ensure_app_role`]).
#[tracing::instrument(skip_all)]
pub async fn upgrade_as_owner(
    pool: &Pool,
    admin_password: Option<&str>,
    app_role: Option<&DatabaseCredentials>,
) -> Result<Option<BriseGlace>, DbError> {
    let mut client = pool.get().await?;
    with_migration_lock(&mut client, Some(admin_password), app_role).await
}

/// Runs the migrations, the application role's grants when `app_role` is given, and the admin
/// creation when `admin` is `Some`, holding the lock so two concurrent runs neither apply a
/// migration twice nor create two admins.
async fn with_migration_lock(
    client: &mut crate::Client,
    admin: Option<Option<&str>>,
    app_role: Option<&DatabaseCredentials>,
) -> Result<Option<BriseGlace>, DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = async {
        let pg: &mut tokio_postgres::Client = client;
        let report = embedded::migrations::runner()
            .set_grouped(false)
            .run_async(pg)
            .await?;
        for m in report.applied_migrations() {
            tracing::info!(migration = %m, "applied");
        }
        if let Some(role) = app_role {
            crate::roles::ensure_app_role(client, role).await?;
        }
        match admin {
            Some(password) => ensure_admin(client, password).await,
            None => Ok(None),
        }
    }
    .await;
    // Session-level lock: release it even on failure, since the connection goes back to the pool.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let created = result?;
    unlock?;
    Ok(created)
}

async fn ensure_admin(
    client: &crate::Client,
    admin_password: Option<&str>,
) -> Result<Option<BriseGlace>, DbError> {
    if users::admin_exists(client).await? {
        return Ok(None);
    }
    let (plain, generated) = match admin_password {
        Some(p) => {
            password::check_policy(p, BRISE_GLACE_USERNAME, "")
                .map_err(|v| DbError::Config(format!("ADMIN_PASSWORD is refused: {v}")))?;
            (p.to_string(), false)
        }
        None => (
            password::generate_password(password::GENERATED_PASSWORD_CHARS),
            true,
        ),
    };
    let to_hash = plain.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&to_hash))
        .await
        .map_err(|e| DbError::Data(format!("hashing task failed: {e}")))??;

    let new = NewUser {
        username: BRISE_GLACE_USERNAME.into(),
        email: "admin@localhost".into(),
        hashed_password: hash,
        role: Role::Admin,
        is_approved: true,
        approved_by: None,
        password_must_change: generated,
    };
    match users::insert(client, &new).await {
        Ok(user) => {
            tracing::warn!(target: "audit", user_id = %user.id, "brise-glace admin created");
            Ok(Some(BriseGlace {
                username: user.username,
                generated_password: generated.then_some(plain),
            }))
        }
        // A non-admin account already uses the name or address: refuse rather than take it over.
        Err(DbError::Duplicate(field)) => Err(DbError::Data(format!(
            "no admin exists but another account has the brise-glace admin's {field}; promote an admin by hand"
        ))),
        Err(e) => Err(e),
    }
}
