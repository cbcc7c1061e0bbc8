//! Database access of pcap-analyzer: the pool ([`connect`]), the embedded forward-only
//! migrations ([`migrate`], [`upgrade`]), the application role with DML rights only
//! ([`upgrade_as_owner`], [`ensure_app_role`]) and the repositories, the only place with SQL.
//!
//! ```no_run
//! # async fn f(settings: common::Settings) -> Result<(), db::DbError> {
//! let pool = db::connect(&settings.database).await?;
//! if let Some(admin) = db::upgrade(&pool, settings.admin_password.as_ref().map(|s| s.expose())).await? {
//!     println!("{}", admin.banner());
//! }
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

pub mod import;
mod pool;
pub mod rate_limits;
mod roles;
pub mod tasks;
mod upgrade;
pub mod users;

#[cfg(feature = "test-support")]
pub mod test_support;

pub use deadpool_postgres::{GenericClient, Object as Client, Pool};
pub use pool::connect;
pub use roles::ensure_app_role;
pub use upgrade::outcome as upgrade_outcome;
pub use upgrade::{migrate, upgrade, upgrade_as_owner, BriseGlace, ADMIN_BANNER};

use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    /// A unique constraint refused the row; the field is `username`, `email` or the constraint.
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("unexpected data: {0}")]
    Data(String),
    #[error("password hashing: {0}")]
    Security(#[from] security::SecurityError),
    #[error("timed out")]
    Timeout,
}

impl DbError {
    /// `true` when the database could not be reached at all (health answers 503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) | DbError::Timeout => true,
            DbError::Query(e) => e.is_closed() || e.as_db_error().is_none(),
            _ => false,
        }
    }
}

/// Maps a unique violation to [`DbError::Duplicate`] naming the field.
pub(crate) fn map_unique(e: tokio_postgres::Error) -> DbError {
    if let Some(db) = e.as_db_error() {
        if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
            let field = match db.constraint() {
                Some("idx_users_username") => "username",
                Some("idx_users_email") => "email",
                Some(other) => other,
                None => "row",
            };
            return DbError::Duplicate(field.to_string());
        }
    }
    DbError::Query(e)
}

/// How long the health check waits for the database.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks the database answers `SELECT 1` within [`PING_TIMEOUT`].
#[tracing::instrument(skip_all)]
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let check = async {
        let client = pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok::<_, DbError>(())
    };
    tokio::time::timeout(PING_TIMEOUT, check)
        .await
        .map_err(|_| DbError::Timeout)?
}
