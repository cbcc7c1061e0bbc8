//! Log setup: one JSON object per line by default (CloudWatch-friendly), text for humans.
//!
//! Whatever the level, the database driver logs at `info` at most: at `debug` tokio-postgres
//! prints every statement with its parameters, which hold argon2 hashes and e-mail addresses.

use crate::settings::LogFormat;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Targets held to `info` at every level, because their `debug` output carries secrets.
pub const QUIET_TARGETS: &[&str] = &["tokio_postgres=info", "postgres_protocol=info"];

/// The filter for `level` (or `RUST_LOG` when set), with [`QUIET_TARGETS`] on top.
pub fn filter(level: &str) -> EnvFilter {
    // RUST_LOG wins when set, so a developer can zoom in on one module.
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    for quiet in QUIET_TARGETS {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// which keeps tests and `local-gateway` simple.
pub fn init(level: &str, format: LogFormat) {
    init_with_writer(level, format, std::io::stderr);
}

/// [`init`] writing to `writer` (a test reads what a run logged).
pub fn init_with_writer<W>(level: &str, format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
