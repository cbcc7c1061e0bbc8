//! Typed settings, parsed once at cold start from the environment (DESIGN.md "Configuration").
//!
//! Every error names the variable at fault, so a misconfigured deployment says what to fix.

use rand::Rng;
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
}

impl SettingsError {
    /// The environment variable the error is about.
    pub fn var(&self) -> &'static str {
        match self {
            SettingsError::Missing { var }
            | SettingsError::Invalid { var, .. }
            | SettingsError::WeakSecret { var, .. } => var,
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

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub ssl_mode: SslMode,
    /// PEM file with extra CA certificates (e.g. the RDS bundle) for `verify-full`.
    pub ssl_root_cert: Option<String>,
    pub min_size: usize,
    pub max_size: usize,
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
    pub secret_key: Secret,
    pub csrf_secret_key: Secret,
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
    pub admin_password: Option<Secret>,
    pub upload_rate_limit_requests: u32,
    pub upload_rate_limit_window_seconds: u32,
    pub login_limits: LoginLimits,
    pub register_limit_per_ip_per_hour: u32,
}

impl Settings {
    /// Reads the process environment.
    /// The settings of a binary's cold start: read once from the environment, logs set up from
    /// them. A bad value is said on stderr, naming the variable to fix, and the process exits
    /// with 78 (`EX_CONFIG`) before anything else runs.
    pub fn load_or_exit(binary: &str) -> Self {
        match Self::from_env() {
            Ok(settings) => {
                crate::telemetry::init(&settings.log_level, settings.log_format);
                settings
            }
            Err(e) => {
                eprintln!("{binary}: configuration error: {e}");
                std::process::exit(78);
            }
        }
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        // Unset is production: a function deployed without the variable must never get
        // development's generated keys and unencrypted database connections.
        let environment = match get("ENVIRONMENT").as_deref() {
            Some("development") | Some("dev") | Some("local") | Some("test") => {
                Environment::Development
            }
            None | Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    var: "ENVIRONMENT",
                    reason: format!("'{other}' is neither development nor production"),
                })
            }
        };
        let production = environment == Environment::Production;

        // Secrets first: a production start without them must fail before anything else.
        let secret_key = secret(&get, "SECRET_KEY", production)?;
        let csrf_secret_key = secret(&get, "CSRF_SECRET_KEY", production)?;
        if production && secret_key == csrf_secret_key {
            return Err(SettingsError::WeakSecret {
                var: "CSRF_SECRET_KEY",
                reason: "must differ from SECRET_KEY".into(),
            });
        }

        let url = get("DATABASE_URL").ok_or(SettingsError::Missing {
            var: "DATABASE_URL",
        })?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(SettingsError::Invalid {
                var: "DATABASE_URL",
                reason: "must be a postgres:// URL".into(),
            });
        }
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
        let min_size: usize = number(&get, "DATABASE_MIN_SIZE", 1, 0, 100)?;
        // A Lambda serves one request at a time, and RDS Proxy multiplexes behind it, so a small
        // pool is enough; locally, 4 gave the best p99 on 2 cores (more connections only queue
        // in Postgres).
        let max_size: usize = number(&get, "DATABASE_MAX_SIZE", 4, 1, 500)?;
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
                ssl_mode,
                ssl_root_cert: get("DATABASE_SSL_ROOT_CERT"),
                min_size,
                max_size,
            },
            secret_key,
            csrf_secret_key,
            max_upload_size_mb: number(
                &get,
                "MAX_UPLOAD_SIZE_MB",
                DEFAULT_MAX_UPLOAD_SIZE_MB,
                1,
                MAX_UPLOAD_SIZE_MB_LIMIT,
            )?,
            multipart_threshold_mb: number(
                &get,
                "MULTIPART_THRESHOLD_MB",
                DEFAULT_MULTIPART_THRESHOLD_MB,
                1,
                MAX_UPLOAD_SIZE_MB_LIMIT,
            )?,
            report_ttl_hours: number(&get, "REPORT_TTL_HOURS", 24, 1, 24 * 365)?,
            log_level: get("LOG_LEVEL")
                .unwrap_or_else(|| "info".into())
                .to_lowercase(),
            log_format,
            allowed_origins,
            app_port: number(&get, "APP_PORT", 8000, 1, 65535)?,
            bucket_name: get("BUCKET_NAME"),
            queue_url: get("QUEUE_URL"),
            dlq_url: get("DLQ_URL"),
            aws_endpoint_url: get("AWS_ENDPOINT_URL"),
            admin_password: get("ADMIN_PASSWORD").map(Secret),
            upload_rate_limit_requests: number(&get, "UPLOAD_RATE_LIMIT_REQUESTS", 5, 1, 100_000)?,
            upload_rate_limit_window_seconds: number(
                &get,
                "UPLOAD_RATE_LIMIT_WINDOW_SECONDS",
                60,
                1,
                86_400,
            )?,
            login_limits: LoginLimits {
                max_failures_per_account: number(&get, "LOGIN_MAX_FAILURES", 5, 1, 1000)?,
                max_failures_per_ip: number(&get, "LOGIN_IP_MAX_FAILURES", 20, 1, 100_000)?,
                window_seconds: number(&get, "LOGIN_WINDOW_SECONDS", 900, 1, 86_400)?,
            },
            register_limit_per_ip_per_hour: number(
                &get,
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

fn secret(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    production: bool,
) -> Result<Secret, SettingsError> {
    match get(var) {
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
        None if production => Err(SettingsError::Missing { var }),
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
    use std::collections::HashMap;

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

    fn unset_environment(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|k| map.get(k).map(|v| v.to_string()))
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/d");
    const STRONG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
    const STRONG2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn production_without_secret_key_fails_naming_the_variable() {
        let err = settings(&[
            DB,
            ("ENVIRONMENT", "production"),
            ("CSRF_SECRET_KEY", STRONG2),
        ])
        .unwrap_err();
        assert_eq!(err.var(), "SECRET_KEY");
        assert!(err.to_string().contains("SECRET_KEY"));
    }

    #[test]
    fn production_with_short_csrf_key_fails_naming_the_variable() {
        let err = settings(&[
            DB,
            ("ENVIRONMENT", "production"),
            ("SECRET_KEY", STRONG),
            ("CSRF_SECRET_KEY", "short"),
        ])
        .unwrap_err();
        assert_eq!(err.var(), "CSRF_SECRET_KEY");
    }

    #[test]
    fn production_refuses_the_same_key_twice() {
        let err = settings(&[
            DB,
            ("ENVIRONMENT", "production"),
            ("SECRET_KEY", STRONG),
            ("CSRF_SECRET_KEY", STRONG),
        ])
        .unwrap_err();
        assert_eq!(err.var(), "CSRF_SECRET_KEY");
    }

    const DEV: (&str, &str) = ("ENVIRONMENT", "development");

    #[test]
    fn an_unset_environment_is_production() {
        let err = unset_environment(&[DB]).unwrap_err();
        assert_eq!(err.var(), "SECRET_KEY");
        let s =
            unset_environment(&[DB, ("SECRET_KEY", STRONG), ("CSRF_SECRET_KEY", STRONG2)]).unwrap();
        assert!(s.is_production());
        assert_eq!(s.database.ssl_mode, SslMode::VerifyFull);
    }

    #[test]
    fn development_without_secrets_gets_random_ones() {
        let s = settings(&[DB, DEV]).unwrap();
        assert_eq!(s.secret_key.expose().len(), 64);
        assert_ne!(s.secret_key, s.csrf_secret_key);
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

    #[test]
    fn debug_output_hides_secrets() {
        let s = settings(&[DB, ("SECRET_KEY", STRONG)]).unwrap();
        assert!(!format!("{s:?}").contains(STRONG));
    }
}
