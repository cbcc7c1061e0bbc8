//! Benchmark: the full analysis against a reader-only floor (pcap-parser records + etherparse
//! decode + a flow map, no analyses), each in its own process so peak RSS is measured apart.
//!
//! ```text
//! python3 ../shared/tools/genbig.py --out /tmp/big.pcap
//! cargo build --profile bench -p pcap_analyzer --bin pcap_bench
//! target/release/pcap_bench [--rounds N] /tmp/big.pcap
//! ```
//! Every mode runs N times (3 by default), interleaved; the table gives each mode's best.
//! With `<file>.truth.json` beside the capture, the report is also checked against it.

use std::process::Command;

use std::time::Instant;

use engine::capture::CaptureReader;
use engine::decode::decode;
use engine::flow::{fast_map, FastMap, FlowKey};

/// CPU seconds (user + system) used by this process so far, from /proc (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn open(path: &str) -> std::io::BufReader<std::fs::File> {
    std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).expect("capture"))
}

fn floor(path: &str) -> u64 {
    let mut flows: FastMap<FlowKey, u64> = fast_map();
    let summary = CaptureReader::new(open(path))
        .expect("capture")
        .for_each_frame(|frame, _| {
            let pkt = decode(frame);
            if let Some((key, _)) = FlowKey::of_packet(&pkt) {
                *flows.entry(key).or_insert(0) += 1;
            }
        })
        .expect("read");
    eprintln!("floor: {} flows", flows.len());
    summary.frames
}

fn full(path: &str, analyses: &[&str], single_thread: bool) -> (u64, engine::Report) {
    let options = engine::Options {
        file_name: path.to_string(),
        analyses: analyses.iter().map(|a| a.to_string()).collect(),
        single_thread,
        ..Default::default()
    };
    let report =
        engine::analyze(open(path), &engine::Config::default(), &options).expect("analysis");
    (report.metadata.total_packets, report)
}

/// CPU seconds of each named thread of this process, watched every 20 ms until `done` (a
/// thread's last reading is taken just before it ends, so this is at most 20 ms short).
fn watch_threads(done: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<(String, f64)> {
    let mut seen: std::collections::BTreeMap<String, (String, f64)> = Default::default();
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        for task in std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = task.path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let Some(rest) = stat.rsplit_once(')').map(|r| r.1) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
            let cpu = (ticks(11) + ticks(12)) / 100.0;
            let tid = task.file_name().to_string_lossy().into_owned();
            seen.insert(tid, (name.trim().to_string(), cpu));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    seen.into_values()
        .filter(|(n, _)| n != "cpu-watch")
        .collect()
}

fn child(mode: &str, path: &str) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::Builder::new()
            .name("cpu-watch".into())
            .spawn(move || watch_threads(done))
            .expect("watch thread")
    };
    let start = Instant::now();
    let packets = match mode {
        "floor" => floor(path),
        "core" => full(path, &engine::analyzers::CORE, false).0,
        "full1" => full(path, &[], true).0,
        // The full analysis building the stream index, as the service runs it.
        "indexed" => {
            let options = engine::Options {
                file_name: path.to_string(),
                file_size: std::fs::metadata(path).ok().map(|m| m.len()),
                ..Default::default()
            };
            let (report, index) =
                engine::analyze_indexed(open(path), &engine::Config::default(), &options, |_| {})
                    .expect("analysis");
            let size = options.file_size.unwrap_or(0).max(1);
            match index.abandoned() {
                Some(why) => eprintln!("  index: none ({why})"),
                None => eprintln!(
                    "  index: {} bytes, {:.3} % of the capture",
                    index.as_bytes().len(),
                    index.as_bytes().len() as f64 * 100.0 / size as f64
                ),
            }
            report.metadata.total_packets
        }
        // `only:a,b,c`: just those analyses (two threads), to measure one part alone.
        m if m.starts_with("only:") => full(path, &m[5..].split(',').collect::<Vec<_>>(), false).0,
        _ => {
            let (n, report) = full(path, &[], false);
            std::fs::write(format!("{path}.report.json"), report.to_json()).expect("write report");
            n
        }
    };
    let wall = start.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let threads = watcher.join().unwrap_or_default();
    for (name, cpu) in threads.iter().filter(|(_, cpu)| *cpu > 0.0) {
        eprintln!("  thread {name}: {cpu:.2} s CPU");
    }
    println!(
        "{} {} {:.1} {:.2}",
        packets,
        wall,
        peak_rss_mb(),
        cpu_seconds()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child" {
        return child(&args[2], &args[3]);
    }
    let (path, rounds) = match args.as_slice() {
        [_, path] => (path, 3),
        [_, flag, n, path] if flag == "--rounds" => (path, n.parse().expect("--rounds N")),
        _ => panic!("usage: pcap_bench [--rounds N] CAPTURE"),
    };
    let size_mb = std::fs::metadata(path)
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    let exe = std::env::current_exe().expect("own path");
    let runs = [
        ("floor", "reader floor (read + decode + flow map)"),
        ("core", "core analyses (`--analyses core`)"),
        ("full", "full analysis, every analysis (default)"),
        ("full1", "full analysis on one thread"),
    ];
    // Rounds of every mode in turn, so a noisy spell of the machine hits all of them alike; each
    // mode keeps its best wall time, best CPU time and highest peak RSS.
    let mut best = [(f64::MAX, f64::MAX, 0.0f64, 0.0f64); 4];
    for round in 1..=rounds {
        for (i, (mode, _)) in runs.iter().enumerate() {
            let out = Command::new(&exe)
                .args(["--child", mode, path])
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("child run");
            let text = String::from_utf8_lossy(&out.stdout);
            let v: Vec<f64> = text
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let (packets, wall, rss, cpu) = (v[0], v[1], v[2], v[3]);
            eprintln!("round {round}: {mode} {wall:.2} s wall, {cpu:.2} s CPU, {rss:.0} MB");
            let b = &mut best[i];
            *b = (b.0.min(wall), b.1.min(cpu), b.2.max(rss), packets);
        }
    }
    println!(
        "best of {rounds} interleaved rounds\n\n\
         | run | wall s | CPU s | packets/s | MB/s | peak RSS MB |\n|---|---|---|---|---|---|"
    );
    for ((_, label), (wall, cpu, rss, packets)) in runs.iter().zip(best) {
        println!(
            "| {label} | {wall:.2} | {cpu:.2} | {:.0} | {:.0} | {rss:.0} |",
            packets / wall,
            size_mb / wall
        );
    }
    let (walls, cpus): (Vec<f64>, Vec<f64>) = best.iter().map(|b| (b.0, b.1)).unzip();
    println!(
        "\nwall-time ratios to the floor (target <= 2.0): core {:.2}, full {:.2} (one thread {:.2})",
        walls[1] / walls[0],
        walls[2] / walls[0],
        walls[3] / walls[0]
    );
    println!(
        "CPU-time ratios to the floor: core {:.2}, full {:.2} (one thread {:.2})",
        cpus[1] / cpus[0],
        cpus[2] / cpus[0],
        cpus[3] / cpus[0]
    );
    check_truth(path);
}

fn check_truth(path: &str) {
    let Ok(truth) = std::fs::read_to_string(format!("{path}.truth.json")) else {
        return;
    };
    let truth: serde_json::Value = serde_json::from_str(&truth).expect("truth json");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{path}.report.json")).expect("report"),
    )
    .expect("json");
    let pd = &report["protocol_distribution"];
    let checks = [
        ("packets", &report["metadata"]["total_packets"]),
        ("tcp_pkts", &pd["layer4_distribution"]["TCP"]),
        ("udp_pkts", &pd["layer4_distribution"]["UDP"]),
        ("icmp_pkts", &pd["layer4_distribution"]["ICMP"]),
        ("ipv4_pkts", &pd["layer3_distribution"]["IPv4"]),
        ("ipv6_pkts", &pd["layer3_distribution"]["IPv6"]),
        ("vlan_pkts", &pd["vlan_packets"]),
        ("tcp_flows", &report["conversations"]["tcp_streams"]),
        ("syn", &report["tcp_handshake"]["syn_packets"]),
        ("synack", &report["tcp_handshake"]["synack_packets"]),
        ("dns_queries", &report["dns"]["total_queries"]),
        ("dns_responses", &report["dns"]["total_responses"]),
        (
            "dns_nxdomain",
            &report["dns"]["error_types_breakdown"]["NXDOMAIN"],
        ),
    ];
    println!("\n| truth field | ground truth | report |\n|---|---|---|");
    let mut ok = true;
    for (k, ours) in checks {
        let t = &truth[k];
        ok &= t == ours;
        println!("| {k} | {t} | {ours} |");
    }
    println!(
        "\nreport {} the ground truth",
        if ok { "matches" } else { "DIFFERS from" }
    );
    // The generator labels what it meant to send; tshark classifies what the capture shows
    // (on this file `tshark -Y tcp.analysis.retransmission` flags 1991, 1012 of them fast).
    let retrans = report["retransmission"]["total_retransmissions"]
        .as_u64()
        .unwrap_or(0);
    let expected =
        truth["data_retrans"].as_u64().unwrap_or(0) + truth["syn_retrans"].as_u64().unwrap_or(0);
    println!(
        "retransmissions: report {retrans} (fast {}), generator's labels {expected} (fast {})",
        report["retransmission"]["fast_retrans_count"], truth["fast_retrans"]
    );
}
