//! Slices against tshark: for every TCP stream of every scenario capture, and of a pcapng, a
//! two-section pcapng and a gzip copy (`tests/slice`), the cut holds exactly the frames of
//! `tshark -Y "tcp.stream == N"`, byte for byte, in a capture of the same format.
//! `NAME.streams.tsv` (frame, tcp.stream) is tshark's numbering, made by
//! `scripts/scenarios/tshark-streams`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::capture::CaptureReader;
use engine::slice;

/// A frame as the test compares it: timestamp, link type, bytes.
type Frame = (i64, u32, Vec<u8>);

/// Every frame of a capture, and the format.
fn frames(capture: &[u8]) -> (Vec<Frame>, &'static str) {
    let mut out = Vec::new();
    let summary = CaptureReader::new(capture)
        .expect("a capture")
        .for_each_frame(|f, _| out.push((f.ts_ns, f.linktype, f.data.to_vec())))
        .expect("read");
    (out, summary.format)
}

/// tshark's frames of each stream.
fn fixture(tsv: &Path) -> BTreeMap<u64, Vec<u64>> {
    let text = std::fs::read_to_string(tsv).unwrap_or_else(|e| panic!("{}: {e}", tsv.display()));
    let mut streams: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let (frame, stream) = line.split_once('\t').expect("frame, stream");
        streams
            .entry(stream.parse().expect("stream"))
            .or_default()
            .push(frame.parse().expect("frame"));
    }
    streams
}

/// The fixtures and their captures.
fn cases() -> Vec<(PathBuf, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut cases = Vec::new();
    for dir in ["scenarios", "slice"] {
        let mut captures: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                let name = p.to_string_lossy();
                [".pcap", ".pcapng", ".pcap.gz"]
                    .iter()
                    .any(|e| name.ends_with(e))
            })
            .collect();
        captures.sort();
        for capture in captures {
            let name = capture.file_name().unwrap().to_string_lossy().into_owned();
            let stem = name.split('.').next().unwrap().to_string();
            let tsv = root.join(dir).join(format!("{stem}.streams.tsv"));
            assert!(tsv.exists(), "{} has no streams fixture", capture.display());
            cases.push((capture, tsv));
        }
    }
    cases
}

#[test]
fn every_stream_cut_holds_exactly_tsharks_frames_in_the_same_format() {
    let (mut streams_cut, mut frames_cut) = (0, 0);
    for (capture, tsv) in cases() {
        let bytes = std::fs::read(&capture).unwrap();
        let (all, format) = frames(&bytes);
        let expected = fixture(&tsv);
        for (&stream, numbers) in &expected {
            let cut = slice::locate(&bytes[..], stream).expect("locate");
            let at = format!("{} stream {stream}", capture.display());
            assert_eq!(cut.frames, numbers.len() as u64, "{at}: frames");
            assert_eq!(cut.first_frame, numbers[0], "{at}: first frame");
            assert_eq!(cut.last_frame, *numbers.last().unwrap(), "{at}: last frame");
            let mut out = Vec::new();
            let written = slice::write(&cut, &mut std::io::Cursor::new(&bytes), &mut out).unwrap();
            assert_eq!(written, out.len() as u64);
            assert_eq!(written, cut.bytes(), "{at}: bytes");
            let (got, got_format) = frames(&out);
            assert_eq!(got_format, format, "{at}: format");
            let want: Vec<_> = numbers
                .iter()
                .map(|n| all[*n as usize - 1].clone())
                .collect();
            assert_eq!(got.len(), want.len(), "{at}: frames read back");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "{at}: frame {} differs", numbers[i]);
            }
            streams_cut += 1;
            frames_cut += numbers.len();
        }
        // A stream past the last one: an empty cut.
        let none = expected.keys().last().map_or(0, |s| s + 1);
        assert_eq!(slice::locate(&bytes[..], none).unwrap().frames, 0);
    }
    println!("slices: {streams_cut} streams, {frames_cut} frames, all equal to tshark's");
    assert!(streams_cut > 300, "the fixtures hold {streams_cut} streams");
}

#[test]
fn the_index_the_analysis_builds_gives_the_same_cut_as_reading_through() {
    let (mut streams, mut index_bytes, mut capture_bytes) = (0, 0, 0);
    for (capture, tsv) in cases() {
        let bytes = std::fs::read(&capture).unwrap();
        let options = engine::Options {
            file_size: Some(bytes.len() as u64),
            ..Default::default()
        };
        let (report, index) =
            engine::analyze_indexed(&bytes[..], &engine::Config::default(), &options, |_| {})
                .expect("analysis");
        assert!(index.abandoned().is_none(), "{}", capture.display());
        assert!(report.metadata.total_packets > 0);
        let index = slice::Index::from_bytes(index.as_bytes().to_vec()).expect("index");
        for &stream in fixture(&tsv).keys() {
            let at = format!("{} stream {stream}", capture.display());
            let read_through = slice::locate(&bytes[..], stream).expect("locate");
            let mut from_index = index.cut(stream).expect("in the index");
            from_index.format = read_through.format;
            assert_eq!(from_index, read_through, "{at}");
            streams += 1;
        }
        index_bytes += index.as_bytes().len();
        capture_bytes += bytes.len();
    }
    println!(
        "index: {streams} streams, {index_bytes} bytes for {capture_bytes} bytes of captures ({:.2} %)",
        index_bytes as f64 * 100.0 / capture_bytes as f64
    );
}
