//! Report tests on the real captures in the shared captures folder: each analysis fires where
//! the file shows it and stays quiet where it should.

use std::path::PathBuf;

use engine::{analyze, Config, Options, Report};

mod security;

/// The report of one shared capture, with default thresholds.
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
        .expect("a readable capture")
}
