//! The built `pcap_analyzer` binary on the shipped sample capture: JSON on stdout alone, the
//! HTML and CSV exports, and the HTML written next to the JSON report.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/sample.pcap")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pcap-analyzer-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pcap_analyzer"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

#[test]
fn json_to_stdout_stays_alone_while_html_and_csv_are_exported() {
    let dir = temp_dir("exports");
    let html = dir.join("report.html");
    let csv = dir.join("csv");
    let sample = sample();
    let out = run(
        &[
            "analyze",
            sample.to_str().expect("utf-8 path"),
            "--no-report",
            "--json",
            "-",
            "--export-html",
            html.to_str().expect("utf-8 path"),
            "--export-csv",
            csv.to_str().expect("utf-8 path"),
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is JSON alone");
    assert_eq!(json["metadata"]["pcap_file"], "sample.pcap");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTML report:"), "{stderr}");

    let page = std::fs::read_to_string(&html).expect("HTML written");
    assert!(page.starts_with("<!doctype html>"));
    let lower = page.to_ascii_lowercase();
    assert!(
        !lower.contains("http://") && !lower.contains("https://") && !lower.contains("<script")
    );
    for name in [
        "summary.csv",
        "protocol_distribution.csv",
        "flows.csv",
        "findings.csv",
    ] {
        assert!(csv.join(name).is_file(), "{name}");
    }
    // --no-report: nothing else was written.
    assert!(!dir.join("reports").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_default_reports_are_json_and_html_side_by_side_in_the_output_dir() {
    let dir = temp_dir("default");
    let config = dir.join("config.yaml");
    std::fs::write(&config, "reports:\n  output_dir: out\n").expect("config");
    let sample = sample();
    let out = run(
        &[
            "analyze",
            sample.to_str().expect("utf-8 path"),
            "-c",
            config.to_str().expect("utf-8 path"),
            "-o",
            "mine",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("out/mine.json").is_file());
    let page = std::fs::read_to_string(dir.join("out/mine.html")).expect("HTML beside the JSON");
    assert!(page.contains("sample.pcap"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("HTML report: out/mine.html"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_console_summary_lists_the_worst_flows_in_an_aligned_table() {
    let dir = temp_dir("console");
    let sample = sample();
    let out = run(
        &[
            "analyze",
            sample.to_str().expect("utf-8 path"),
            "--no-report",
        ],
        &dir,
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(table) = text.split("\nWorst flows\n").nth(1) {
        let lines: Vec<&str> = table.lines().take_while(|l| !l.is_empty()).collect();
        assert!(lines[0].contains("stream") && lines[0].contains("display filter"));
        assert!(lines[1].trim_start().starts_with("------"));
        // Aligned: every row puts the filter column at the same place as the header.
        let at = lines[0].find("display filter").expect("header");
        for l in &lines[2..] {
            assert!(
                l.get(at..).is_some_and(|f| f.starts_with("tcp.stream")),
                "{l}"
            );
        }
    } else {
        panic!("no worst-flows table in:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn slice_cuts_one_stream_into_a_capture_that_analyses_as_that_stream_alone() {
    let dir = temp_dir("slice");
    let sample = sample();
    let out = run(&["slice", sample.to_str().unwrap(), "--stream", "1"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cut = dir.join("sample.stream1.pcap");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("frames of TCP stream 1"), "{said}");
    // The cut is a capture of one TCP stream: numbered 0 there.
    let json = run(
        &[
            "analyze",
            cut.to_str().unwrap(),
            "--no-report",
            "--json",
            "-",
            "-q",
        ],
        &dir,
    );
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(
        report["tcp_handshake"]["total_handshakes"]
            .as_u64()
            .map(|n| n <= 1),
        Some(true)
    );
    let wanted = said
        .split(" frames")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(report["metadata"]["total_packets"].to_string(), wanted);
    // No such stream: exit 1, nothing written.
    let none = run(
        &[
            "slice",
            sample.to_str().unwrap(),
            "--stream",
            "999999",
            "-o",
            "x.pcap",
        ],
        &dir,
    );
    assert_eq!(none.status.code(), Some(1));
    assert!(!dir.join("x.pcap").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
