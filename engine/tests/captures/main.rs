//! Reports on the real captures in `../shared/captures`: each analysis fires where the capture
//! shows the problem and stays quiet where it does not.

use std::path::PathBuf;

use engine::{analyze, Config, Options, Report};

mod tcp_analyses;

/// The report of one capture of `../shared/captures`.
pub(crate) fn capture_report(name: &str) -> Report {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/captures")
        .join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let options = Options {
        file_name: name.to_string(),
        ..Options::default()
    };
    analyze(std::io::BufReader::new(file), &Config::default(), &options)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}
