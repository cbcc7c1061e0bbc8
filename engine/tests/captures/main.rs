//! Reports on the real captures in `../shared/captures`: each analysis fires where the capture
//! shows the problem and stays quiet where it does not.

use std::path::PathBuf;

use engine::{analyze, Config, Options, Report};

mod render;
mod security;
mod tcp_analyses;
mod traffic;

/// The shared captures, next to the repository.
pub(crate) fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures")
}

/// The report of one shared capture, with the default thresholds.
pub(crate) fn capture_report(name: &str) -> Report {
    let path = captures_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let options = Options {
        file_name: name.to_string(),
        ..Options::default()
    };
    analyze(&bytes[..], &Config::default(), &options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Same as [`capture_report`].
pub(crate) fn report_of(name: &str) -> Report {
    capture_report(name)
}
