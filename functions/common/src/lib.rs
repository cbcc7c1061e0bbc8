//! Plumbing shared by every HTTP function of pcap-analyzer.
//!
//! - [`settings`]: typed settings read once from the environment at cold start; a bad value is
//!   an error naming the variable; secrets come from Secrets Manager ARNs at cold start, and
//!   production refuses weak ones.
//! - [`http`]: the single [`http::ApiError`] mapped to a status and `{"error","message"}`, JSON
//!   responses, request parsing with size limits, security headers and the CORS allowlist.
//! - [`telemetry`]: JSON (or text) logs through `tracing`.
#![deny(unsafe_code)]

pub mod http;
pub mod settings;
pub mod telemetry;

pub use http::ApiError;
pub use settings::{ApiKeys, Environment, SecretSource, Settings, SettingsError};
