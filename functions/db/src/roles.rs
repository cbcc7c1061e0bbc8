//! The application's database role: it reads and writes rows and nothing else. Migrations run
//! as the owner (the RDS master user) and end by creating or updating this role, so the API,
//! the analyzer and the janitor, which connect as it, cannot create, alter, drop or truncate
//! a table, whatever a bug or an injection would try (OWASP ASVS 1.14.x, least privilege).
//!
//! Not a refinery migration: the role's name and password come from the settings (the
//! application secret) and are applied on every run, so a rotated password takes effect.

use crate::{Client, DbError};
use common::settings::DatabaseCredentials;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// Role changes are cluster-wide: two databases migrated at once (the tests) may touch the same
/// role together, and Postgres refuses the second writer ("tuple concurrently updated").
const ROLE_WRITE_ATTEMPTS: u32 = 5;
const ROLE_WRITE_RETRY: Duration = Duration::from_millis(50);

/// The owner's table of applied migrations: the application has no business there.
const MIGRATION_HISTORY_TABLE: &str = "refinery_schema_history";

/// `"name"`, doubled quotes inside (names are checked as `[a-z_][a-z0-9_]*` by the settings).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates `role` when absent, sets its password, and grants it DML on every table of the
/// `public` schema (now and, through default privileges, every table the owner creates later),
/// USAGE on the sequences, and nothing more. Run as the owner of the tables.
#[tracing::instrument(skip_all, fields(role = %role.username))]
pub async fn ensure_app_role(client: &Client, role: &DatabaseCredentials) -> Result<(), DbError> {
    let owner: String = client.query_one("SELECT current_user", &[]).await?.get(0);
    if owner == role.username {
        return Err(DbError::Config(format!(
            "the application role {} is the user running the migrations; give it a login of its own",
            role.username
        )));
    }
    let name = quote_ident(&role.username);
    // A SCRAM verifier, not the password: nothing in the statement (or a statement log)
    // reveals it. Its characters are base64 and `$:`, safe inside a literal.
    let verifier = postgres_protocol::password::scram_sha_256(role.password.expose().as_bytes());
    write_role(client, &role.username, &name, &verifier).await?;

    let flags: (bool, bool, bool) = client
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1",
            &[&role.username],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))?;
    if flags != (false, false, false) {
        return Err(DbError::Config(format!(
            "the application role {} is a superuser or may create roles or databases",
            role.username
        )));
    }

    client
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {name};
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {name};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public
                 GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {name};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {name};"
        ))
        .await?;
    if client
        .query_opt("SELECT to_regclass($1)::text", &[&MIGRATION_HISTORY_TABLE])
        .await?
        .and_then(|r| r.get::<_, Option<String>>(0))
        .is_some()
    {
        client
            .batch_execute(&format!(
                "REVOKE ALL ON {MIGRATION_HISTORY_TABLE} FROM {name}"
            ))
            .await?;
    }
    tracing::info!("application role has DML rights only");
    Ok(())
}

async fn write_role(
    client: &Client,
    username: &str,
    name: &str,
    verifier: &str,
) -> Result<(), DbError> {
    let mut attempt = 1;
    loop {
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&username])
            .await?
            .is_some();
        let verb = if exists { "ALTER" } else { "CREATE" };
        let sql =
            format!("{verb} ROLE {name} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD '{verifier}'");
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < ROLE_WRITE_ATTEMPTS && concurrent_role_write(&e) => {
                attempt += 1;
                tokio::time::sleep(ROLE_WRITE_RETRY).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Another session created or updated the role at the same moment.
fn concurrent_role_write(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::DUPLICATE_OBJECT
            || db.code() == &SqlState::UNIQUE_VIOLATION
            || db.message().contains("concurrently updated")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("pcap_app"), "\"pcap_app\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
