//! Hostile captures: the report names the right causes, and memory stays bounded (peak RSS of
//! the analysing process, measured by `pcap_bench --child`, which runs the full analysis in a
//! process of its own).

use std::path::{Path, PathBuf};

use engine::sample::{udp, PcapWriter, Tcp, MS};

/// The bound of the engine issue, for any capture.
const MAX_PEAK_RSS_MB: f64 = 200.0;
const T0: i64 = 1_700_000_000 * 1_000_000_000;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pcap-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// Runs the full analysis of `path` in its own process: (packets, peak RSS MB, report).
fn analyse(path: &Path) -> (u64, f64, serde_json::Value) {
    let (packets, _, rss, report) = analyse_timed(path);
    (packets, rss, report)
}

/// [`analyse`], with the wall time in seconds second.
fn analyse_timed(path: &Path) -> (u64, f64, f64, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pcap_bench"))
        .args(["--child", "full"])
        .arg(path)
        .output()
        .expect("pcap_bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Vec<&str> = line.split_whitespace().collect();
    let report_path = format!("{}.report.json", path.display());
    let report = std::fs::read_to_string(&report_path).expect("report written");
    let _ = std::fs::remove_file(&report_path);
    let _ = std::fs::remove_file(path);
    (
        v[0].parse().expect("packets"),
        v[1].parse().expect("wall time"),
        v[2].parse().expect("peak RSS"),
        serde_json::from_str(&report).expect("report JSON"),
    )
}

fn causes(report: &serde_json::Value) -> Vec<(String, String)> {
    report["diagnosis"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            (
                c["cause"].as_str().unwrap_or("").to_string(),
                c["severity"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// `n` UDP datagrams, each from a source of its own, one millisecond apart, forwards or with
/// time running backwards.
fn many_flows(n: u32, backwards: bool) -> Vec<u8> {
    let mut w = PcapWriter::default();
    for i in 0..n {
        let src = format!("10.{}.{}.{}", i >> 16 & 0xff, i >> 8 & 0xff, i & 0xff);
        let t = if backwards {
            T0 + i64::from(n - i) * MS
        } else {
            T0 + i64::from(i) * MS
        };
        w.frame(t, &udp(&src, 40000, "192.0.2.1", 9000, b"hello"));
    }
    w.bytes
}

/// Three million UDP datagrams, each from a source of its own (a spoofed flood, or a merged
/// capture whose time runs backwards): the flow table expires by the latest time seen and the
/// distinct counts turn to a sketch past a million, so both orders stay under the bound, and
/// backwards takes no more than twice the time of forwards (ratio of one run).
#[test]
fn three_million_flows_forwards_or_backwards_stay_under_the_memory_bound() {
    let mut wall = [0.0; 2];
    for backwards in [false, true] {
        let path = temp(if backwards { "back.pcap" } else { "fwd.pcap" });
        std::fs::write(&path, many_flows(3_000_000, backwards)).expect("written");
        let (packets, seconds, rss, report) = analyse_timed(&path);
        eprintln!(
            "three million flows (backwards: {backwards}): peak RSS {rss:.0} MB, {seconds:.1} s"
        );
        assert_eq!(packets, 3_000_000);
        assert!(rss <= MAX_PEAK_RSS_MB, "peak RSS {rss} MB");
        wall[usize::from(backwards)] = seconds;
        let reversal = causes(&report)
            .into_iter()
            .find(|(c, _)| c == "time_reversal");
        assert_eq!(reversal.is_some(), backwards, "{:?}", causes(&report));
        assert_eq!(report["conversations"]["counts_estimated"], true);
        let udp = report["conversations"]["udp"].as_f64().expect("udp count");
        // The sketch's standard error is 0.8 % and its hash seed changes from run to run: 4 %
        // is five of them (2.2 % was seen once).
        assert!((udp / 3e6 - 1.0).abs() < 0.04, "{udp}");
    }
    assert!(wall[1] <= 2.0 * wall[0], "backwards {:?}", wall);
}

#[test]
fn a_capture_of_copies_is_duplicated_frames_not_loss() {
    let mut w = PcapWriter::default();
    let (c, s) = ("10.0.0.1", "10.0.0.2");
    let mut seq = 1001;
    for i in 0..2000i64 {
        let f = Tcp::new(s, 80, c, 40000)
            .seq(seq)
            .ack(101)
            .payload(1000)
            .ident(i as u16)
            .frame();
        w.frame(T0 + i * MS, &f);
        w.frame(T0 + i * MS + 100_000, &f);
        seq += 1000;
    }
    let path = temp("copies.pcap");
    std::fs::write(&path, &w.bytes).expect("written");
    let (_, rss, report) = analyse(&path);
    assert!(rss <= MAX_PEAK_RSS_MB, "peak RSS {rss} MB");
    let causes = causes(&report);
    assert_eq!(
        causes.first().map(|c| c.0.as_str()),
        Some("duplicated_frames"),
        "{causes:?}"
    );
    assert!(
        !causes.iter().any(|(c, _)| c == "packet_loss"),
        "{causes:?}"
    );
}
