//! Typed settings, parsed once at cold start from the environment (DESIGN.md "Configuration").
//!
//! Every error names the variable at fault, so a misconfigured deployment says what to fix.
//!
//! Secret values never sit in a deployed function's environment, where anyone allowed
//! `lambda:GetFunctionConfiguration` reads them: the environment names a Secrets Manager ARN
//! (`SECRET_KEY_SECRET_ARN`, `DATABASE_SECRET_ARN`, ...) and the cold start reads the value once
//! through a [`SecretSource`]. Outside production the plain variables (`SECRET_KEY`,
//! credentials in `DATABASE_URL`) still work, for the dev server and the tests.
//!
//! Each function asks only for what it uses: every one loads [`Settings`] (the database
//! credentials it connects with, limits, logs); the API functions add [`ApiKeys`], the JWT and
//! CSRF keys; the analyzer and the janitor never see them.

use async_trait::async_trait;
use rand::Rng;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Shortest secret accepted in production: 32 characters (v5 required the same; 64 hex
/// characters, i.e. 256 bits, is what `localstack/up` and the deploy docs generate).
pub const MIN_SECRET_LEN: usize = 32;

/// Largest declared upload without `MAX_UPLOAD_SIZE_MB`, in MiB (v5's limit; the maximum
/// `openapi.yaml` states for `size_bytes`).
pub const DEFAULT_MAX_UPLOAD_SIZE_MB: u64 = 500;
/// Largest `MAX_UPLOAD_SIZE_MB`: 50 GiB, what a multipart upload takes in parts small enough
/// to list in one answer (one S3 PUT stops at 5 GB).
pub const MAX_UPLOAD_SIZE_MB_LIMIT: u64 = 50 * 1024;
/// Uploads above this size, in MiB, are multipart (`MULTIPART_THRESHOLD_MB`).
pub const DEFAULT_MULTIPART_THRESHOLD_MB: u64 = 100;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{var} is required but not set")]
    Missing { var: &'static str },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("{var} is too weak for production: {reason}")]
    WeakSecret { var: &'static str, reason: String },
    /// The secret `var` names could not be read or is not in the expected form. The reason
    /// never holds the value.
    #[error("{var} ({arn}) cannot be used: {reason}")]
    Secret {
        var: &'static str,
        arn: String,
        reason: String,
    },
}

impl SettingsError {
    /// The environment variable the error is about.
    pub fn var(&self) -> &'static str {
        match self {
            SettingsError::Missing { var }
            | SettingsError::Invalid { var, .. }
            | SettingsError::WeakSecret { var, .. }
            | SettingsError::Secret { var, .. } => var,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// `DATABASE_SSL_MODE`, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP (local development only).
    Disable,
    /// Encrypted, server certificate not checked.
    Require,
    /// Encrypted, certificate chain and host name checked.
    VerifyFull,
}

/// A secret string whose `Debug` never shows the value, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads one secret by ARN: Secrets Manager in the functions (`storage::secrets`), a map in
/// unit tests.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's string value; the error says why it could not be read, never a value.
    async fn secret_string(&self, arn: &str) -> Result<String, String>;
}

/// The source of tools without Secrets Manager: every ARN is refused.
pub struct NoSecretSource;

#[async_trait]
impl SecretSource for NoSecretSource {
    async fn secret_string(&self, _arn: &str) -> Result<String, String> {
        Err("no Secrets Manager client here; give the plain variable instead".into())
    }
}

/// A Postgres login: the `username` and `password` of a database secret (the JSON shape RDS
/// and Secrets Manager's rotation use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseCredentials {
    pub username: String,
    pub password: Secret,
}

/// Longest Postgres identifier (NAMEDATALEN - 1).
const MAX_ROLE_NAME_LEN: usize = 63;

impl DatabaseCredentials {
    /// Checks the user name is a plain lower-case identifier, so it can be quoted into
    /// `CREATE ROLE` without surprises.
    fn parse(
        var: &'static str,
        source: &str,
        username: String,
        password: String,
    ) -> Result<Self, SettingsError> {
        let plain = username.len() <= MAX_ROLE_NAME_LEN
            && username.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && username
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let invalid = |reason: &str| SettingsError::Secret {
            var,
            arn: source.to_string(),
            reason: reason.into(),
        };
        if !plain {
            return Err(invalid(
                "the username must be a lower-case identifier ([a-z_][a-z0-9_]*, 63 at most)",
            ));
        }
        if password.is_empty() {
            return Err(invalid("the password is empty"));
        }
        Ok(DatabaseCredentials {
            username,
            password: Secret(password),
        })
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Host, port, database and options; in production it carries no credentials.
    pub url: Secret,
    /// The login to use instead of the URL's user and password (from `DATABASE_SECRET_ARN`).
    pub credentials: Option<DatabaseCredentials>,
    pub ssl_mode: SslMode,
    /// PEM file with extra CA certificates (e.g. the RDS bundle) for `verify-full`.
    pub ssl_root_cert: Option<String>,
    pub min_size: usize,
    pub max_size: usize,
}

impl DatabaseSettings {
    /// The same database, logged in as `credentials` (the dev server and the tests serve as
    /// the application role after migrating as the owner).
    pub fn as_role(&self, credentials: &DatabaseCredentials) -> DatabaseSettings {
        DatabaseSettings {
            credentials: Some(credentials.clone()),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failed logins allowed per account in the window; the next attempt gets 429.
    pub max_failures_per_account: u32,
    /// Failed logins allowed per client IP in the window (several accounts from one place).
    pub max_failures_per_ip: u32,
    pub window_seconds: u32,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub database: DatabaseSettings,
    pub max_upload_size_mb: u64,
    /// Uploads above this many MiB go up as S3 multipart uploads (`MULTIPART_THRESHOLD_MB`).
    pub multipart_threshold_mb: u64,
    pub report_ttl_hours: u32,
    pub log_level: String,
    pub log_format: LogFormat,
    /// Exact origins allowed by CORS; never `*` or `null`.
    pub allowed_origins: Vec<String>,
    pub app_port: u16,
    pub bucket_name: Option<String>,
    pub queue_url: Option<String>,
    /// Dead-letter queue of the analysis queue; the janitor fails the tasks that reach it.
    pub dlq_url: Option<String>,
    pub aws_endpoint_url: Option<String>,
    /// The brise-glace admin's first password (`ADMIN_PASSWORD_SECRET_ARN`; migrate only).
    pub admin_password: Option<Secret>,
    /// The application's database login that migrate creates or updates, with DML rights only
    /// (`APP_DATABASE_SECRET_ARN`, or `APP_DATABASE_USER` and `APP_DATABASE_PASSWORD` locally).
    pub app_role: Option<DatabaseCredentials>,
    pub upload_rate_limit_requests: u32,
    pub upload_rate_limit_window_seconds: u32,
    pub login_limits: LoginLimits,
    pub register_limit_per_ip_per_hour: u32,
}

/// Variables naming the Secrets Manager secret of a value (its ARN).
pub const DATABASE_SECRET_ARN: &str = "DATABASE_SECRET_ARN";
pub const APP_DATABASE_SECRET_ARN: &str = "APP_DATABASE_SECRET_ARN";
pub const ADMIN_PASSWORD_SECRET_ARN: &str = "ADMIN_PASSWORD_SECRET_ARN";
pub const SECRET_KEY_SECRET_ARN: &str = "SECRET_KEY_SECRET_ARN";
pub const CSRF_SECRET_KEY_SECRET_ARN: &str = "CSRF_SECRET_KEY_SECRET_ARN";

/// Secret values read from Secrets Manager: (ARN, value) by the variable that named the ARN.
#[derive(Default)]
struct Fetched(HashMap<&'static str, (String, String)>);

impl Fetched {
    /// Reads the secret of each of `arn_vars` that is set, once.
    async fn read(
        get: &impl Fn(&str) -> Option<String>,
        source: &dyn SecretSource,
        arn_vars: &[&'static str],
    ) -> Result<Self, SettingsError> {
        let mut out = HashMap::new();
        for &var in arn_vars {
            let Some(arn) = get(var) else { continue };
            let value = match source.secret_string(&arn).await {
                Ok(v) if v.trim().is_empty() => Err("the secret is empty".to_string()),
                other => other,
            }
            .map_err(|reason| SettingsError::Secret {
                var,
                arn: arn.clone(),
                reason,
            })?;
            out.insert(var, (arn, value));
        }
        Ok(Fetched(out))
    }

    /// The value of `var`: from the secret `arn_var` names, else, outside production, the
    /// plain variable.
    fn value(
        &self,
        get: &impl Fn(&str) -> Option<String>,
        var: &'static str,
        arn_var: &'static str,
        production: bool,
    ) -> Result<Option<String>, SettingsError> {
        if let Some((_, value)) = self.0.get(arn_var) {
            return Ok(Some(value.clone()));
        }
        if let Some(arn) = get(arn_var) {
            return Err(no_secrets_manager(arn_var, arn));
        }
        match get(var) {
            Some(_) if production => Err(plain_secret_refused(var, arn_var)),
            value => Ok(value),
        }
    }

    /// The login of a database secret (`{"username": ..., "password": ...}`) `arn_var` names.
    fn credentials(
        &self,
        get: &impl Fn(&str) -> Option<String>,
        arn_var: &'static str,
    ) -> Result<Option<DatabaseCredentials>, SettingsError> {
        #[derive(serde::Deserialize)]
        struct Login {
            username: String,
            password: String,
        }
        let Some((arn, json)) = self.0.get(arn_var) else {
            return match get(arn_var) {
                Some(arn) => Err(no_secrets_manager(arn_var, arn)),
                None => Ok(None),
            };
        };
        // The parser's own message may quote the text: say only what was expected.
        let login: Login = serde_json::from_str(json).map_err(|_| SettingsError::Secret {
            var: arn_var,
            arn: arn.clone(),
            reason: "not JSON with string fields username and password".into(),
        })?;
        DatabaseCredentials::parse(arn_var, arn, login.username, login.password).map(Some)
    }
}

fn plain_secret_refused(var: &'static str, arn_var: &'static str) -> SettingsError {
    SettingsError::Invalid {
        var,
        reason: format!(
            "a secret value in the environment is refused in production; give {arn_var}"
        ),
    }
}

fn no_secrets_manager(var: &'static str, arn: String) -> SettingsError {
    SettingsError::Secret {
        var,
        arn,
        reason: "this tool reads no Secrets Manager secrets; give the plain variable".into(),
    }
}

/// Says what is wrong on stderr, naming the variable to fix, and exits with 78 (`EX_CONFIG`).
fn exit_on_error<T>(binary: &str, result: Result<T, SettingsError>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("{binary}: configuration error: {e}");
        std::process::exit(78);
    })
}

/// `lookup` with values trimmed and empty ones taken as unset.
fn trimmed(lookup: impl Fn(&str) -> Option<String>) -> impl Fn(&str) -> Option<String> {
    move |k: &str| {
        lookup(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

fn environment(get: &impl Fn(&str) -> Option<String>) -> Result<Environment, SettingsError> {
    // Unset is production: a function deployed without the variable must never get
    // development's generated keys and unencrypted database connections.
    match get("ENVIRONMENT").as_deref() {
        Some("development") | Some("dev") | Some("local") | Some("test") => {
            Ok(Environment::Development)
        }
        None | Some("production") | Some("prod") => Ok(Environment::Production),
        Some(other) => Err(SettingsError::Invalid {
            var: "ENVIRONMENT",
            reason: format!("'{other}' is neither development nor production"),
        }),
    }
}

impl Settings {
    /// The settings of a binary's cold start: read once from the environment and the secrets
    /// it names, logs set up from them. A bad value is said on stderr, naming the variable to
    /// fix, and the process exits with 78 (`EX_CONFIG`) before anything else runs.
    pub async fn load_or_exit(binary: &str, secrets: &dyn SecretSource) -> Self {
        let settings = exit_on_error(binary, Self::load(|k| std::env::var(k).ok(), secrets).await);
        crate::telemetry::init(&settings.log_level, settings.log_format);
        settings
    }

    /// Reads settings through `lookup` and the secrets its `*_SECRET_ARN` variables name
    /// (the database login, and migrate's admin password and application role).
    pub async fn load(
        lookup: impl Fn(&str) -> Option<String>,
        secrets: &dyn SecretSource,
    ) -> Result<Self, SettingsError> {
        let get = trimmed(lookup);
        let environment = environment(&get)?;
        // Before any call to Secrets Manager: a production start without its login, or with a
        // secret value in its environment, fails at once.
        if environment == Environment::Production {
            if get("DATABASE_URL").is_some_and(|url| url_has_password(&url)) {
                return Err(url_password_refused());
            }
            for (var, arn_var) in [
                ("ADMIN_PASSWORD", ADMIN_PASSWORD_SECRET_ARN),
                ("APP_DATABASE_PASSWORD", APP_DATABASE_SECRET_ARN),
            ] {
                if get(var).is_some() {
                    return Err(plain_secret_refused(var, arn_var));
                }
            }
            if get(DATABASE_SECRET_ARN).is_none() {
                return Err(SettingsError::Missing {
                    var: DATABASE_SECRET_ARN,
                });
            }
        }
        let fetched = Fetched::read(
            &get,
            secrets,
            &[
                DATABASE_SECRET_ARN,
                APP_DATABASE_SECRET_ARN,
                ADMIN_PASSWORD_SECRET_ARN,
            ],
        )
        .await?;
        Self::parse(&get, environment, &fetched)
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup` alone, so tests and tools can pass a map; a
    /// `*_SECRET_ARN` is an error here (use [`Settings::load`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = trimmed(lookup);
        let environment = environment(&get)?;
        Self::parse(&get, environment, &Fetched::default())
    }

    fn parse(
        get: &impl Fn(&str) -> Option<String>,
        environment: Environment,
        fetched: &Fetched,
    ) -> Result<Self, SettingsError> {
        let production = environment == Environment::Production;

        let url = get("DATABASE_URL").ok_or(SettingsError::Missing {
            var: "DATABASE_URL",
        })?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(SettingsError::Invalid {
                var: "DATABASE_URL",
                reason: "must be a postgres:// URL".into(),
            });
        }
        let credentials = fetched.credentials(get, DATABASE_SECRET_ARN)?;
        if production {
            if url_has_password(&url) {
                return Err(url_password_refused());
            }
            if credentials.is_none() {
                return Err(SettingsError::Missing {
                    var: DATABASE_SECRET_ARN,
                });
            }
        }
        let app_role = match fetched.credentials(get, APP_DATABASE_SECRET_ARN)? {
            Some(role) => Some(role),
            None => match (
                get("APP_DATABASE_USER"),
                fetched.value(
                    get,
                    "APP_DATABASE_PASSWORD",
                    APP_DATABASE_SECRET_ARN,
                    production,
                )?,
            ) {
                (Some(user), Some(password)) => Some(DatabaseCredentials::parse(
                    "APP_DATABASE_USER",
                    "the environment",
                    user,
                    password,
                )?),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(SettingsError::Missing {
                        var: "APP_DATABASE_PASSWORD",
                    })
                }
                (None, Some(_)) => {
                    return Err(SettingsError::Missing {
                        var: "APP_DATABASE_USER",
                    })
                }
            },
        };
        if let (Some(role), Some(owner)) = (&app_role, &credentials) {
            if role.username == owner.username {
                return Err(SettingsError::Invalid {
                    var: APP_DATABASE_SECRET_ARN,
                    reason: "the application role must not be the database owner".into(),
                });
            }
        }
        let admin_password = fetched
            .value(get, "ADMIN_PASSWORD", ADMIN_PASSWORD_SECRET_ARN, production)?
            .map(Secret);

        let ssl_mode = match get("DATABASE_SSL_MODE").as_deref() {
            // Production talks to RDS over the network: verify the server unless told otherwise.
            None if production => SslMode::VerifyFull,
            None | Some("disable") => SslMode::Disable,
            Some("require") => SslMode::Require,
            Some("verify-full") => SslMode::VerifyFull,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    var: "DATABASE_SSL_MODE",
                    reason: format!("'{other}' is not one of disable, require, verify-full"),
                })
            }
        };
        let min_size: usize = number(get, "DATABASE_MIN_SIZE", 1, 0, 100)?;
        // A Lambda serves one request at a time, and RDS Proxy multiplexes behind it, so a small
        // pool is enough; locally, 4 gave the best p99 on 2 cores (more connections only queue
        // in Postgres).
        let max_size: usize = number(get, "DATABASE_MAX_SIZE", 4, 1, 500)?;
        if min_size > max_size {
            return Err(SettingsError::Invalid {
                var: "DATABASE_MIN_SIZE",
                reason: format!("{min_size} is larger than DATABASE_MAX_SIZE ({max_size})"),
            });
        }

        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    var: "LOG_FORMAT",
                    reason: format!("'{other}' is neither json nor text"),
                })
            }
        };

        let allowed_origins = match get("ALLOWED_ORIGINS") {
            Some(list) => parse_origins(&list)?,
            None if production => Vec::new(),
            None => vec![
                "http://localhost:8000".into(),
                "http://127.0.0.1:8000".into(),
            ],
        };

        Ok(Settings {
            environment,
            database: DatabaseSettings {
                url: Secret(url),
                credentials,
                ssl_mode,
                ssl_root_cert: get("DATABASE_SSL_ROOT_CERT"),
                min_size,
                max_size,
            },
            max_upload_size_mb: number(
                get,
                "MAX_UPLOAD_SIZE_MB",
                DEFAULT_MAX_UPLOAD_SIZE_MB,
                1,
                MAX_UPLOAD_SIZE_MB_LIMIT,
            )?,
            multipart_threshold_mb: number(
                get,
                "MULTIPART_THRESHOLD_MB",
                DEFAULT_MULTIPART_THRESHOLD_MB,
                1,
                MAX_UPLOAD_SIZE_MB_LIMIT,
            )?,
            report_ttl_hours: number(get, "REPORT_TTL_HOURS", 24, 1, 24 * 365)?,
            log_level: get("LOG_LEVEL")
                .unwrap_or_else(|| "info".into())
                .to_lowercase(),
            log_format,
            allowed_origins,
            app_port: number(get, "APP_PORT", 8000, 1, 65535)?,
            bucket_name: get("BUCKET_NAME"),
            queue_url: get("QUEUE_URL"),
            dlq_url: get("DLQ_URL"),
            aws_endpoint_url: get("AWS_ENDPOINT_URL"),
            admin_password,
            app_role,
            upload_rate_limit_requests: number(get, "UPLOAD_RATE_LIMIT_REQUESTS", 5, 1, 100_000)?,
            upload_rate_limit_window_seconds: number(
                get,
                "UPLOAD_RATE_LIMIT_WINDOW_SECONDS",
                60,
                1,
                86_400,
            )?,
            login_limits: LoginLimits {
                max_failures_per_account: number(get, "LOGIN_MAX_FAILURES", 5, 1, 1000)?,
                max_failures_per_ip: number(get, "LOGIN_IP_MAX_FAILURES", 20, 1, 100_000)?,
                window_seconds: number(get, "LOGIN_WINDOW_SECONDS", 900, 1, 86_400)?,
            },
            register_limit_per_ip_per_hour: number(
                get,
                "REGISTER_RATE_LIMIT_PER_HOUR",
                10,
                1,
                100_000,
            )?,
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}

fn url_password_refused() -> SettingsError {
    SettingsError::Invalid {
        var: "DATABASE_URL",
        reason: format!(
            "carries a password; in production the login comes from {DATABASE_SECRET_ARN}"
        ),
    }
}

/// `postgres://user:password@host/...` holds a password; `postgres://user@host` does not.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The keys only the API functions hold: JWT signing and CSRF tokens.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    pub secret_key: Secret,
    pub csrf_secret_key: Secret,
}

impl ApiKeys {
    /// The keys of an API function's cold start, or exit 78 naming the variable at fault.
    pub async fn load_or_exit(
        binary: &str,
        environment: Environment,
        secrets: &dyn SecretSource,
    ) -> Self {
        exit_on_error(
            binary,
            Self::load(|k| std::env::var(k).ok(), environment, secrets).await,
        )
    }

    /// `SECRET_KEY` and `CSRF_SECRET_KEY` from the secrets `SECRET_KEY_SECRET_ARN` and
    /// `CSRF_SECRET_KEY_SECRET_ARN` name (or, outside production, the plain variables).
    pub async fn load(
        lookup: impl Fn(&str) -> Option<String>,
        environment: Environment,
        secrets: &dyn SecretSource,
    ) -> Result<Self, SettingsError> {
        let get = trimmed(lookup);
        let production = environment == Environment::Production;
        // Before any call to Secrets Manager, as in `Settings::load`.
        if production {
            for (var, arn_var) in [
                ("SECRET_KEY", SECRET_KEY_SECRET_ARN),
                ("CSRF_SECRET_KEY", CSRF_SECRET_KEY_SECRET_ARN),
            ] {
                if get(var).is_some() {
                    return Err(plain_secret_refused(var, arn_var));
                }
                if get(arn_var).is_none() {
                    return Err(SettingsError::Missing { var: arn_var });
                }
            }
        }
        let fetched = Fetched::read(
            &get,
            secrets,
            &[SECRET_KEY_SECRET_ARN, CSRF_SECRET_KEY_SECRET_ARN],
        )
        .await?;
        Self::parse(&get, production, &fetched)
    }

    /// The keys from plain variables only (tests, development tools).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        environment: Environment,
    ) -> Result<Self, SettingsError> {
        let get = trimmed(lookup);
        Self::parse(
            &get,
            environment == Environment::Production,
            &Fetched::default(),
        )
    }

    fn parse(
        get: &impl Fn(&str) -> Option<String>,
        production: bool,
        fetched: &Fetched,
    ) -> Result<Self, SettingsError> {
        let key = |var, arn_var| {
            let value = fetched.value(get, var, arn_var, production)?;
            secret(value, var, arn_var, production)
        };
        let secret_key = key("SECRET_KEY", SECRET_KEY_SECRET_ARN)?;
        let csrf_secret_key = key("CSRF_SECRET_KEY", CSRF_SECRET_KEY_SECRET_ARN)?;
        if production && secret_key == csrf_secret_key {
            return Err(SettingsError::WeakSecret {
                var: "CSRF_SECRET_KEY",
                reason: "must differ from SECRET_KEY".into(),
            });
        }
        Ok(ApiKeys {
            secret_key,
            csrf_secret_key,
        })
    }
}

/// A key `var` as given (checked for strength in production), or, in development without
/// one, a random key for this process.
fn secret(
    value: Option<String>,
    var: &'static str,
    arn_var: &'static str,
    production: bool,
) -> Result<Secret, SettingsError> {
    match value {
        Some(v) if production => {
            if v.chars().count() < MIN_SECRET_LEN {
                return Err(SettingsError::WeakSecret {
                    var,
                    reason: format!("at least {MIN_SECRET_LEN} characters are needed"),
                });
            }
            // A long run of one character or a short repeated pattern is not a key.
            let mut distinct: Vec<char> = v.chars().collect();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() < 10 {
                return Err(SettingsError::WeakSecret {
                    var,
                    reason:
                        "too few distinct characters; generate it randomly (e.g. 64 hex characters)"
                            .into(),
                });
            }
            Ok(Secret(v))
        }
        Some(v) => Ok(Secret(v)),
        None if production => Err(SettingsError::Missing { var: arn_var }),
        // Development without a key: a random one for this process. Tokens then do not survive
        // a restart, which is fine locally (localstack/up writes stable keys anyway).
        None => Ok(Secret(random_hex(32))),
    }
}

fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, SettingsError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    let value: T = raw.parse().map_err(|_| SettingsError::Invalid {
        var,
        reason: format!("'{raw}' is not a number"),
    })?;
    if value < min || value > max {
        return Err(SettingsError::Invalid {
            var,
            reason: format!("{value} is outside {min}..={max}"),
        });
    }
    Ok(value)
}

fn parse_origins(list: &str) -> Result<Vec<String>, SettingsError> {
    let mut out = Vec::new();
    for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        // A wildcard or `null` with credentials would let any site read users' data (ASVS 14.5.3).
        if origin == "*" || origin.eq_ignore_ascii_case("null") {
            return Err(SettingsError::Invalid {
                var: "ALLOWED_ORIGINS",
                reason: format!("'{origin}' is not allowed; list exact origins"),
            });
        }
        if !(origin.starts_with("https://") || origin.starts_with("http://"))
            || origin.ends_with('/')
        {
            return Err(SettingsError::Invalid {
                var: "ALLOWED_ORIGINS",
                reason: format!("'{origin}' is not an origin like https://example.com"),
            });
        }
        out.push(origin.to_string());
    }
    Ok(out)
}

/// `bytes` random bytes as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from `pairs`, development unless they say otherwise.
    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("ENVIRONMENT".into())
            .or_insert_with(|| "development".into());
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    /// An in-memory Secrets Manager: ARN to value.
    struct Secrets(HashMap<String, String>);

    #[async_trait]
    impl SecretSource for Secrets {
        async fn secret_string(&self, arn: &str) -> Result<String, String> {
            self.0
                .get(arn)
                .cloned()
                .ok_or_else(|| "ResourceNotFoundException".to_string())
        }
    }

    const DB_ARN: &str = "arn:aws:secretsmanager:us-east-1:1:secret:db";
    const JWT_ARN: &str = "arn:aws:secretsmanager:us-east-1:1:secret:jwt";
    const CSRF_ARN: &str = "arn:aws:secretsmanager:us-east-1:1:secret:csrf";
    const LOGIN: &str = r#"{"username":"pcap_app","password":"db-password-1"}"#;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        Secrets(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// A deployed function's environment: production, a URL without credentials, the ARN of
    /// its login.
    const DEPLOYED: [(&str, &str); 3] = [
        ("ENVIRONMENT", "production"),
        (
            "DATABASE_URL",
            "postgres://proxy.example:5432/pcap_analyzer",
        ),
        (DATABASE_SECRET_ARN, DB_ARN),
    ];

    async fn production_keys(
        env: &[(&str, &str)],
        values: &[(&str, &str)],
    ) -> Result<ApiKeys, SettingsError> {
        ApiKeys::load(lookup(env), Environment::Production, &secrets(values)).await
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/d");
    const STRONG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
    const STRONG2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210";

    #[tokio::test]
    async fn deployed_settings_read_the_database_login_from_its_secret() {
        let s = Settings::load(lookup(&DEPLOYED), &secrets(&[(DB_ARN, LOGIN)]))
            .await
            .unwrap();
        let login = s.database.credentials.expect("credentials");
        assert_eq!(login.username, "pcap_app");
        assert_eq!(login.password.expose(), "db-password-1");
        assert_eq!(s.database.ssl_mode, SslMode::VerifyFull);
    }

    #[tokio::test]
    async fn the_pipeline_functions_start_in_production_without_api_keys() {
        // The analyzer and the janitor load Settings only: no SECRET_KEY of any kind.
        let s = Settings::load(lookup(&DEPLOYED), &secrets(&[(DB_ARN, LOGIN)])).await;
        assert!(s.unwrap().is_production());
    }

    #[tokio::test]
    async fn a_missing_database_secret_is_an_error_naming_its_variable_and_arn() {
        let err = Settings::load(lookup(&DEPLOYED), &secrets(&[]))
            .await
            .unwrap_err();
        assert_eq!(err.var(), DATABASE_SECRET_ARN);
        assert!(err.to_string().contains(DB_ARN), "{err}");
    }

    #[tokio::test]
    async fn a_database_secret_that_is_not_a_login_is_refused_without_quoting_it() {
        for bad in [
            r#"{"username":"pcap_app"}"#,
            "not json at all s3cr3t",
            r#"{"username":"Robert'); DROP","password":"x"}"#,
        ] {
            let err = Settings::load(lookup(&DEPLOYED), &secrets(&[(DB_ARN, bad)]))
                .await
                .unwrap_err();
            assert_eq!(err.var(), DATABASE_SECRET_ARN, "{bad}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
    }

    #[tokio::test]
    async fn production_refuses_secret_values_in_the_environment() {
        let with = |extra: (&'static str, &'static str)| {
            let mut env = DEPLOYED.to_vec();
            env.push(extra);
            env
        };
        let values = [(DB_ARN, LOGIN)];
        let err = Settings::load(
            lookup(&with(("DATABASE_URL", "postgres://u:pw@proxy.example/d"))),
            &secrets(&values),
        )
        .await
        .unwrap_err();
        assert_eq!(err.var(), "DATABASE_URL");
        let err = Settings::load(
            lookup(&with(("ADMIN_PASSWORD", "Plain-Password-123"))),
            &secrets(&values),
        )
        .await
        .unwrap_err();
        assert_eq!(err.var(), "ADMIN_PASSWORD");
        let err = production_keys(
            &[
                ("SECRET_KEY", STRONG),
                (CSRF_SECRET_KEY_SECRET_ARN, CSRF_ARN),
            ],
            &[(CSRF_ARN, STRONG2)],
        )
        .await
        .unwrap_err();
        assert_eq!(err.var(), "SECRET_KEY");
    }

    #[tokio::test]
    async fn production_keys_come_from_their_secrets() {
        let env = [
            (SECRET_KEY_SECRET_ARN, JWT_ARN),
            (CSRF_SECRET_KEY_SECRET_ARN, CSRF_ARN),
        ];
        let keys = production_keys(&env, &[(JWT_ARN, STRONG), (CSRF_ARN, STRONG2)])
            .await
            .unwrap();
        assert_eq!(keys.secret_key.expose(), STRONG);
        assert_eq!(keys.csrf_secret_key.expose(), STRONG2);
    }

    #[tokio::test]
    async fn production_without_secret_key_fails_naming_the_variable() {
        let err = production_keys(
            &[(CSRF_SECRET_KEY_SECRET_ARN, CSRF_ARN)],
            &[(CSRF_ARN, STRONG2)],
        )
        .await
        .unwrap_err();
        assert_eq!(err.var(), SECRET_KEY_SECRET_ARN);
        assert!(err.to_string().contains("SECRET_KEY"));
    }

    #[tokio::test]
    async fn production_with_short_csrf_key_fails_naming_the_variable() {
        let env = [
            (SECRET_KEY_SECRET_ARN, JWT_ARN),
            (CSRF_SECRET_KEY_SECRET_ARN, CSRF_ARN),
        ];
        let err = production_keys(&env, &[(JWT_ARN, STRONG), (CSRF_ARN, "short")])
            .await
            .unwrap_err();
        assert_eq!(err.var(), "CSRF_SECRET_KEY");
    }

    #[tokio::test]
    async fn production_refuses_the_same_key_twice() {
        let env = [
            (SECRET_KEY_SECRET_ARN, JWT_ARN),
            (CSRF_SECRET_KEY_SECRET_ARN, CSRF_ARN),
        ];
        let err = production_keys(&env, &[(JWT_ARN, STRONG), (CSRF_ARN, STRONG)])
            .await
            .unwrap_err();
        assert_eq!(err.var(), "CSRF_SECRET_KEY");
    }

    #[test]
    fn an_unset_environment_is_production() {
        let err = Settings::from_lookup(lookup(&[DB])).unwrap_err();
        assert_eq!(
            err.var(),
            "DATABASE_URL",
            "a password in the URL is refused"
        );
        let err = Settings::from_lookup(lookup(&[(
            "DATABASE_URL",
            "postgres://proxy.example/pcap_analyzer",
        )]))
        .unwrap_err();
        assert_eq!(err.var(), DATABASE_SECRET_ARN);
    }

    #[test]
    fn development_without_secrets_gets_random_ones() {
        let keys = ApiKeys::from_lookup(lookup(&[]), Environment::Development).unwrap();
        assert_eq!(keys.secret_key.expose().len(), 64);
        assert_ne!(keys.secret_key, keys.csrf_secret_key);
    }

    #[test]
    fn development_takes_the_app_role_from_plain_variables() {
        let s = settings(&[
            DB,
            ("APP_DATABASE_USER", "pcap_app"),
            ("APP_DATABASE_PASSWORD", "app-password"),
        ])
        .unwrap();
        assert_eq!(s.app_role.unwrap().username, "pcap_app");
        let err = settings(&[DB, ("APP_DATABASE_USER", "pcap_app")]).unwrap_err();
        assert_eq!(err.var(), "APP_DATABASE_PASSWORD");
        let err = settings(&[
            DB,
            ("APP_DATABASE_USER", "App\"; DROP ROLE x"),
            ("APP_DATABASE_PASSWORD", "p"),
        ])
        .unwrap_err();
        assert_eq!(err.var(), "APP_DATABASE_USER");
    }

    #[tokio::test]
    async fn the_app_role_must_not_be_the_owner() {
        let app_arn = "arn:aws:secretsmanager:us-east-1:1:secret:app";
        let mut env = DEPLOYED.to_vec();
        env.push((APP_DATABASE_SECRET_ARN, app_arn));
        let owner = r#"{"username":"pcap","password":"owner-password"}"#;
        let err = Settings::load(lookup(&env), &secrets(&[(DB_ARN, owner), (app_arn, owner)]))
            .await
            .unwrap_err();
        assert_eq!(err.var(), APP_DATABASE_SECRET_ARN);
        let s = Settings::load(lookup(&env), &secrets(&[(DB_ARN, owner), (app_arn, LOGIN)]))
            .await
            .unwrap();
        assert_eq!(s.app_role.unwrap().username, "pcap_app");
    }

    #[test]
    fn an_arn_without_secrets_manager_is_an_error_naming_it() {
        let err = settings(&[DB, (ADMIN_PASSWORD_SECRET_ARN, "arn:x")]).unwrap_err();
        assert_eq!(err.var(), ADMIN_PASSWORD_SECRET_ARN);
    }

    #[test]
    fn passwords_in_urls_are_recognised() {
        assert!(url_has_password("postgres://u:p@h:5432/d"));
        assert!(!url_has_password("postgres://u@h:5432/d"));
        assert!(!url_has_password("postgres://h:5432/d"));
        assert!(!url_has_password("postgres://h/d?options=a:b@c"));
    }

    #[test]
    fn wildcard_origin_is_refused() {
        let err = settings(&[DB, ("ALLOWED_ORIGINS", "https://a.example, *")]).unwrap_err();
        assert_eq!(err.var(), "ALLOWED_ORIGINS");
    }

    #[test]
    fn bad_numbers_name_their_variable() {
        assert_eq!(
            settings(&[DB, ("DATABASE_MAX_SIZE", "lots")])
                .unwrap_err()
                .var(),
            "DATABASE_MAX_SIZE"
        );
        assert_eq!(
            settings(&[DB, ("DATABASE_MIN_SIZE", "20"), ("DATABASE_MAX_SIZE", "5")])
                .unwrap_err()
                .var(),
            "DATABASE_MIN_SIZE"
        );
    }

    #[tokio::test]
    async fn debug_output_hides_secrets() {
        let s = Settings::load(lookup(&DEPLOYED), &secrets(&[(DB_ARN, LOGIN)]))
            .await
            .unwrap();
        assert!(!format!("{s:?}").contains("db-password-1"));
        let keys =
            ApiKeys::from_lookup(lookup(&[("SECRET_KEY", STRONG)]), Environment::Development)
                .unwrap();
        assert!(!format!("{keys:?}").contains(STRONG));
    }
}
