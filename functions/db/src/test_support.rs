//! Throw-away databases for integration tests (zero2prod's `spawn_app` idea): each test gets a
//! database of its own on the real Postgres started by `localstack/up`, with the real migrations.
//!
//! The server comes from `DATABASE_URL`, else from `localstack/local.env`. When it cannot be
//! reached the test fails with a message saying so; it is never skipped.
//!
//! As deployed, the migrations run as the owner (`pool`) and the functions under test serve
//! as the application role with DML rights only (`app_pool`, [`TestDatabase::settings`]).

use crate::{DbError, Pool};
use common::settings::{ApiKeys, DatabaseCredentials, Environment, Secret};
use common::Settings;
use std::collections::HashMap;
use std::path::PathBuf;

/// Prefix of every test database, so `functions/test.sh` can drop them all.
pub const TEST_DB_PREFIX: &str = "test_";

/// `localstack/local.env` of this checkout.
pub fn local_env_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../localstack/local.env")
}

/// The settings `localstack/up` wrote, overridden by the process environment.
pub fn local_env() -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(local_env_path()) {
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                map.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    for key in [
        "DATABASE_URL",
        "PG_BIN",
        "PGDATA",
        "APP_DATABASE_USER",
        "APP_DATABASE_PASSWORD",
    ] {
        if let Ok(v) = std::env::var(key) {
            map.insert(key.to_string(), v);
        }
    }
    map
}

/// URL of the development database (the server the test databases are created on).
pub fn base_database_url() -> String {
    local_env().get("DATABASE_URL").cloned().unwrap_or_else(|| {
        panic!(
            "DATABASE_URL is not set and {} does not exist: run localstack/up first",
            local_env_path().display()
        )
    })
}

/// The application role of the local stack (`localstack/up` writes its password); it is
/// created, or its password set, by the first test database of a run.
pub fn app_role() -> DatabaseCredentials {
    let env = local_env();
    DatabaseCredentials {
        username: env
            .get("APP_DATABASE_USER")
            .cloned()
            .unwrap_or_else(|| "pcap_app".into()),
        password: Secret::new(
            env.get("APP_DATABASE_PASSWORD")
                .cloned()
                .unwrap_or_else(|| "pcap-app-local-dev".into()),
        ),
    }
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The owner's pool: migrations, and tests arranging rows.
    pub pool: Pool,
    /// The application role's pool (DML only), what the functions under test serve with.
    pub app_pool: Pool,
}

impl TestDatabase {
    /// Settings for a function under test pointing at this database as the application role.
    pub fn settings(&self, overrides: &[(&str, &str)]) -> Settings {
        let mut map: HashMap<String, String> = HashMap::from([
            ("ENVIRONMENT".into(), "development".into()),
            ("DATABASE_URL".into(), self.url.clone()),
            ("DATABASE_MIN_SIZE".into(), "0".into()),
            ("DATABASE_MAX_SIZE".into(), "4".into()),
            ("ALLOWED_ORIGINS".into(), "http://localhost:8000".into()),
            ("LOG_FORMAT".into(), "text".into()),
        ]);
        for (k, v) in overrides {
            map.insert(k.to_string(), v.to_string());
        }
        let mut settings =
            Settings::from_lookup(|k| map.get(k).cloned()).expect("test settings are valid");
        settings.database = settings.database.as_role(&app_role());
        settings
    }

    /// Stable keys for the API functions under test.
    pub fn api_keys(&self) -> ApiKeys {
        let keys = HashMap::from([
            (
                "SECRET_KEY",
                "test-secret-key-0123456789abcdef0123456789abcdef",
            ),
            (
                "CSRF_SECRET_KEY",
                "test-csrf-key-fedcba9876543210fedcba9876543210",
            ),
        ]);
        ApiKeys::from_lookup(
            |k| keys.get(k).map(|v| v.to_string()),
            Environment::Development,
        )
        .expect("test keys are valid")
    }
}

fn with_database(url: &str, name: &str) -> String {
    // URLs here are `postgres://user:pass@host:port/db[?query]`.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

async fn create_database() -> (String, String) {
    let base = base_database_url();
    let (client, connection) = match tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot reach Postgres at {} ({e}); start the local services with localstack/up",
            redacted(&base)
        ),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let name = format!("{TEST_DB_PREFIX}{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let url = with_database(&base, &name);
    (name, url)
}

async fn pool_for(url: &str, login: Option<&DatabaseCredentials>) -> Pool {
    let map = HashMap::from([
        ("ENVIRONMENT".to_string(), "development".to_string()),
        ("DATABASE_URL".to_string(), url.to_string()),
        ("DATABASE_MIN_SIZE".to_string(), "0".to_string()),
        ("DATABASE_MAX_SIZE".to_string(), "4".to_string()),
    ]);
    let settings = Settings::from_lookup(|k| map.get(k).cloned()).expect("settings");
    let database = match login {
        Some(login) => settings.database.as_role(login),
        None => settings.database,
    };
    crate::connect(&database).await.expect("pool")
}

/// A new, empty database (no migrations applied).
pub async fn fresh_database_unmigrated() -> TestDatabase {
    let (name, url) = create_database().await;
    let pool = pool_for(&url, None).await;
    let app_pool = pool_for(&url, Some(&app_role())).await;
    TestDatabase {
        name,
        url,
        pool,
        app_pool,
    }
}

/// A new database with every migration applied and the application role's grants, as
/// `migrate` leaves it.
pub async fn fresh_database() -> TestDatabase {
    let db = fresh_database_unmigrated().await;
    crate::migrate(&db.pool)
        .await
        .unwrap_or_else(|e: DbError| panic!("migrations failed on {}: {e}", db.name));
    let client = db.pool.get().await.expect("owner connection");
    crate::ensure_app_role(&client, &app_role())
        .await
        .unwrap_or_else(|e| panic!("application role grants failed on {}: {e}", db.name));
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_swapped_in_the_url() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:55432/pcap_analyzer", "t1"),
            "postgres://u:p@127.0.0.1:55432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/d?sslmode=disable", "t"),
            "postgres://u:p@h/t?sslmode=disable"
        );
        assert_eq!(redacted("postgres://u:secret@h/d"), "postgres://***@h/d");
    }
}
