//! TCP analysis frame by frame against tshark 4.0 on our recorded scenarios (real Linux TCP
//! through a lossy, reordering, rate-limited link: `tests/scenarios`). Each `NAME.frames.tsv`
//! holds tshark's `tcp.analysis.*` flags for every TCP frame (`scripts/scenarios/tshark-frames`
//! makes them); this test runs the engine's own pipeline (decode, flow table, TCP tracker) over
//! the capture and compares every flag of every frame. Totals alone would hide offsetting
//! errors. Prints the agreement per flag and every difference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::capture::CaptureReader;
use engine::decode::decode;
use engine::flow::{FlowKey, FlowTable};
use engine::tcp::{flags, TcpTracker};

/// The columns of the fixtures, with our flag for each.
const COLUMNS: [(&str, u32); 11] = [
    ("retransmission", flags::RETRANSMISSION),
    ("fast_retransmission", flags::FAST_RETRANSMISSION),
    ("spurious_retransmission", flags::SPURIOUS_RETRANSMISSION),
    ("out_of_order", flags::OUT_OF_ORDER),
    ("lost_segment", flags::LOST_SEGMENT),
    ("ack_lost_segment", flags::ACK_LOST_SEGMENT),
    ("duplicate_ack", flags::DUP_ACK),
    ("window_full", flags::WINDOW_FULL),
    ("zero_window", flags::ZERO_WINDOW),
    ("window_update", flags::WINDOW_UPDATE),
    ("keep_alive", flags::KEEP_ALIVE),
];

/// Differences allowed, with the reason: (capture, frame, flag).
const EXCEPTIONS: &[(&str, u64, &str, &str)] = &[];

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// tshark's flags for each TCP frame: frame → flags.
fn fixture(path: &Path) -> BTreeMap<u64, u32> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    assert_eq!(header[0], "frame");
    assert_eq!(header[1..], names[..], "{}", path.display());
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let frame: u64 = f[0].parse().expect("frame number");
            let bits = COLUMNS
                .iter()
                .zip(&f[1..])
                .filter(|(_, v)| **v == "1")
                .fold(0, |b, ((_, flag), _)| b | flag);
            (frame, bits)
        })
        .collect()
}

/// Our flags for each TCP frame, by the engine's own tracker.
fn ours(path: &Path) -> BTreeMap<u64, u32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = CaptureReader::new(&bytes[..]).expect("a capture");
    let (mut flows, mut tcp, mut out) =
        (FlowTable::default(), TcpTracker::default(), BTreeMap::new());
    reader
        .for_each_frame(|frame, _| {
            let pkt = decode(frame);
            let Some((key, dir)) = FlowKey::of_packet(&pkt) else {
                return;
            };
            let touch = flows.touch(key, dir, pkt.ts_ns, pkt.number, pkt.wire_len);
            if pkt.tcp().is_some() {
                let ta = tcp.analyze(&pkt, touch.slot, dir);
                out.insert(pkt.number, ta.flags);
            }
        })
        .expect("read");
    out
}

#[test]
fn every_tcp_analysis_flag_of_every_frame_equals_tsharks_on_our_scenarios() {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(scenarios())
        .expect("scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".frames.tsv"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 15, "{} fixtures", fixtures.len());
    let mut per_flag: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut differences = Vec::new();
    let mut frames = 0;
    for fx in &fixtures {
        let name = fx
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".frames.tsv", "");
        let theirs = fixture(fx);
        let mine = ours(&scenarios().join(format!("{name}.pcap")));
        for (frame, want) in &theirs {
            frames += 1;
            let got = mine.get(frame).copied().unwrap_or(0);
            for (flag_name, flag) in COLUMNS {
                let (t, o) = (want & flag != 0, got & flag != 0);
                let e = per_flag.entry(flag_name).or_default();
                e.0 += u64::from(t);
                if t == o {
                    e.1 += u64::from(t);
                    continue;
                }
                if EXCEPTIONS
                    .iter()
                    .any(|x| x.0 == name && x.1 == *frame && x.2 == flag_name)
                {
                    continue;
                }
                differences.push(format!(
                    "{name} frame {frame}: {flag_name} tshark {t} ours {o}"
                ));
            }
        }
    }
    println!("{frames} TCP frames in {} captures", fixtures.len());
    for (flag, (theirs, both)) in &per_flag {
        println!("  {flag:<24} tshark {theirs:>6}  equal {both:>6}");
    }
    for d in &differences {
        println!("difference: {d}");
    }
    assert!(differences.is_empty(), "{} differences", differences.len());
}
