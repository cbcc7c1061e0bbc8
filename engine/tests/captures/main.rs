//! Report tests on the real captures in `../shared/captures`: each analysis fires where the file
//! shows it and stays quiet where it should.

use std::path::PathBuf;

use engine::{analyze, Config, Options, Report};

mod traffic;

fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures")
}

/// The report of one capture, analysed with the default configuration.
pub(crate) fn capture_report(name: &str) -> Report {
    let path = captures_dir().join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let options = Options {
        file_name: name.to_string(),
        ..Options::default()
    };
    analyze(std::io::BufReader::new(file), &Config::default(), &options)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}
