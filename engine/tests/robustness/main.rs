//! Hostile input: every capture in `../shared/captures`, prefixes of several of them cut at many
//! offsets, and hundreds of bit-flipped variants must give a report or a clean error, never a panic.

use std::path::PathBuf;

use engine::{analyze, Config, Options};

fn captures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("../shared/captures must exist next to the repository")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("tsv" | "md")))
        .collect();
    files.sort();
    assert!(
        files.len() >= 80,
        "expected the 82 shared captures, found {}",
        files.len()
    );
    files
}

fn run(bytes: &[u8]) -> Result<engine::Report, engine::Error> {
    analyze(bytes, &Config::default(), &Options::default())
}

/// A small deterministic generator (splitmix64) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn every_shared_capture_gives_a_report_or_a_clean_error() {
    for path in captures() {
        let bytes = std::fs::read(&path).unwrap();
        match run(&bytes) {
            Ok(report) => assert!(report.metadata.total_packets < 10_000_000),
            Err(e) => assert!(!e.to_string().is_empty(), "{}", path.display()),
        }
    }
}

#[test]
fn captures_cut_at_any_offset_give_a_report_with_a_warning_or_a_clean_error() {
    let picks = [
        "cs_http_espn.pcapng",
        "cs_dns_tcp.pcapng",
        "td_vxlan.pcap",
        "pp_test001-be.pcapng",
        "cs_ppa1e_dns.cap",
        "td_ipv6-routing-header.pcap",
    ];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures");
    for name in picks {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let full = run(&bytes)
            .expect("the whole file is valid")
            .metadata
            .total_packets;
        let step = (bytes.len() / 97).max(1);
        for cut in (0..bytes.len()).step_by(step).chain([bytes.len() - 1]) {
            match run(&bytes[..cut]) {
                Ok(r) => {
                    assert!(r.metadata.total_packets <= full, "{name} cut at {cut}");
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}

#[test]
fn a_capture_cut_mid_packet_reports_what_was_read_and_warns() {
    let capture = engine::sample::sample_capture();
    let report = run(&capture[..capture.len() - 10]).unwrap();
    assert_eq!(
        report.metadata.total_packets,
        engine::sample::SAMPLE_PACKETS - 1
    );
    assert!(
        report
            .metadata
            .warnings
            .iter()
            .any(|w| w.contains("cut short")),
        "{:?}",
        report.metadata.warnings
    );
}

#[test]
fn bit_flipped_captures_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures");
    let mut rng = Rng(42);
    let picks = [
        "cs_tcp_retransmissions.pcapng",
        "td_dns-badcookie.pcap",
        "pt_le_difficult_test202.pcapng",
        "td_LINKTYPE_RAW_ipv6.pcap",
        "cs_icmp_traceroute.pcapng",
        "td_802.1ad_QinQ.pcap",
    ];
    let mut variants = 0;
    for name in picks {
        let original = std::fs::read(dir.join(name)).unwrap();
        for _ in 0..60 {
            let mut bytes = original.clone();
            for _ in 0..(1 + rng.next() % 8) {
                let i = (rng.next() as usize) % bytes.len();
                bytes[i] ^= 1 << (rng.next() % 8);
            }
            let _ = run(&bytes);
            variants += 1;
        }
    }
    assert_eq!(variants, 360);
}

#[test]
fn text_is_not_a_capture_and_the_error_says_why() {
    let err = run(b"this is a text file, not a capture\n").unwrap_err();
    assert!(err.to_string().contains("not a capture"), "{err}");
    assert!(run(b"").is_err());
}

#[test]
fn an_empty_capture_gives_a_valid_report_with_zero_packets() {
    let header_only = &engine::sample::sample_capture()[..24];
    let report = run(header_only).unwrap();
    assert_eq!(report.metadata.total_packets, 0);
    assert!(report.to_json().contains("\"total_packets\": 0"));
}

#[test]
fn gzip_compressed_captures_are_read_transparently() {
    use std::io::Write;
    let capture = engine::sample::sample_capture();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&capture).unwrap();
    let report = run(&gz.finish().unwrap()).unwrap();
    assert_eq!(
        report.metadata.total_packets,
        engine::sample::SAMPLE_PACKETS
    );
}

#[test]
fn the_shipped_sample_is_exactly_what_the_generator_writes() {
    let shipped =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/sample.pcap"))
            .unwrap();
    assert_eq!(
        shipped,
        engine::sample::sample_capture(),
        "regenerate with: cargo run -p engine --example make_sample"
    );
}

/// A reader that returns at most 7 bytes per call, like a slow socket or an S3 body.
struct Trickle<'a>(&'a [u8]);
impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_stream_that_returns_a_few_bytes_per_read_gives_the_same_report() {
    let capture = engine::sample::sample_capture();
    let whole = run(&capture).unwrap();
    let trickled = analyze(Trickle(&capture), &Config::default(), &Options::default()).unwrap();
    assert_eq!(
        trickled.metadata.total_packets,
        whole.metadata.total_packets
    );
    assert_eq!(trickled.metadata.warnings, whole.metadata.warnings);
}

/// On every capture, the report with `changed` options equals the report with the defaults
/// (both runs failing alike counts as equal).
fn same_report_on_every_capture(changed: Options) {
    for path in captures() {
        let bytes = std::fs::read(&path).unwrap();
        let json = |options: &Options| {
            analyze(&bytes[..], &Config::default(), options).map(|mut r| {
                r.metadata.analysis_seconds = 0.0;
                r.to_json()
            })
        };
        match (json(&changed), json(&Options::default())) {
            (Ok(a), Ok(b)) => assert!(a == b, "{} differs", path.display()),
            (Err(_), Err(_)) => {}
            _ => panic!("{}: the two runs disagree on failing", path.display()),
        }
    }
}

#[test]
fn the_report_is_the_same_on_one_thread_and_on_two() {
    // The split of the analyses between the threads must not show.
    same_report_on_every_capture(Options {
        single_thread: true,
        ..Options::default()
    });
}

#[test]
fn the_report_is_the_same_when_every_analysis_gets_every_packet_in_full() {
    // The engine hands each analysis only the kinds of packets it declares and, for TCP and UDP
    // other than DNS, only the first bytes of their payloads: that must give the report the
    // analyses make when they see everything.
    same_report_on_every_capture(Options {
        unfiltered: true,
        ..Options::default()
    });
}

#[test]
fn the_report_is_the_same_from_run_to_run_when_flows_are_evicted() {
    use engine::sample::{udp, PcapWriter, Tcp};
    // 40 000 short flows over 400 s (TCP with data and without an end, UDP requests), far past
    // the flow table's soft limit and idle horizons: flows leave the table all along, and every
    // analysis gets them in order, whatever the hash seeds of the run.
    let mut w = PcapWriter::default();
    let second = 1_000_000_000i64;
    for i in 0..40_000u32 {
        let ts = 1_700_000_000 * second + i64::from(i) * second / 100;
        let client = format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        let port = 1024 + (i % 50_000) as u16;
        if i % 2 == 0 {
            let server = format!("192.0.2.{}", i % 7);
            w.frame(ts, &Tcp::new(&client, port, &server, 80).syn().frame());
            let data = Tcp::new(&client, port, &server, 80)
                .seq(1)
                .ack(1)
                .psh()
                .payload(100);
            w.frame(ts + 1_000_000, &data.frame());
        } else {
            let server = format!("198.51.100.{}", i % 5);
            w.frame(ts, &udp(&client, port, &server, 5000, b"request"));
        }
    }
    let json = || {
        let mut r = analyze(&w.bytes[..], &Config::default(), &Options::default()).unwrap();
        r.metadata.analysis_seconds = 0.0;
        r.to_json()
    };
    let first = json();
    assert!(first.contains("\"flows_evicted\""));
    let report: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(report["metadata"]["flows_evicted"].as_u64().unwrap() > 10_000);
    for _ in 0..2 {
        assert!(json() == first, "a second run gave another report");
    }
}

/// A pcap header, then `mib` MiB of zeros, gzip-compressed as members of 1 MiB each.
fn zeros_after_a_header(mib: usize) -> Vec<u8> {
    use std::io::Write;
    let header = engine::sample::PcapWriter::default().bytes;
    let mut first = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    first.write_all(&header).unwrap();
    let mut out = first.finish().unwrap();
    let mut zeros = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    zeros.write_all(&vec![0u8; 1 << 20]).unwrap();
    out.extend(zeros.finish().unwrap().repeat(mib));
    out
}

#[test]
fn a_gzip_bomb_of_zeros_stops_at_the_first_hundred_thousand_empty_records_with_a_warning() {
    // 2 GiB of zeros in about 2 MB: v5 read it as 134 million empty packets.
    let bomb = zeros_after_a_header(2048);
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    let r = run(&bomb).expect("a report of what was read");
    assert!(
        r.metadata.total_packets < 200_000,
        "{}",
        r.metadata.total_packets
    );
    assert_warns(&r, "empty records in a row");
}

#[test]
fn records_longer_than_the_snap_length_are_analysed_with_a_warning() {
    let mut w = engine::sample::PcapWriter::default();
    // Snap length 100 bytes (offset 16 of the global header), then a 300-byte frame.
    w.bytes[16..20].copy_from_slice(&100u32.to_le_bytes());
    let frame = engine::sample::udp("10.0.0.1", 5000, "10.0.0.2", 6000, &[7u8; 258]);
    w.frame(1_700_000_000_000_000_000, &frame);
    let r = run(&w.bytes).expect("a report");
    assert_eq!(r.metadata.total_packets, 1);
    assert_warns(&r, "more bytes than the snap length of 100");
}

#[test]
fn past_its_budget_an_analysis_stops_with_a_clear_error_on_one_thread_or_two() {
    let capture = engine::sample::sample_capture();
    for single_thread in [false, true] {
        let packets = |max| Options {
            single_thread,
            budget: engine::Budget {
                max_packets: Some(max),
                ..engine::Budget::default()
            },
            ..Options::default()
        };
        let e = analyze(&capture[..], &Config::default(), &packets(10)).unwrap_err();
        assert!(matches!(e, engine::Error::OverBudget(_)), "{e}");
        assert!(
            e.to_string()
                .contains("more than 10 packets (stopped at frame 11)"),
            "{e}"
        );
        let bytes = Options {
            single_thread,
            budget: engine::Budget {
                max_bytes: Some(1000),
                ..engine::Budget::default()
            },
            ..Options::default()
        };
        let e = analyze(&capture[..], &Config::default(), &bytes).unwrap_err();
        assert!(e.to_string().contains("MiB read"), "{e}");
        let time = Options {
            single_thread,
            budget: engine::Budget {
                max_duration: Some(std::time::Duration::ZERO),
                ..engine::Budget::default()
            },
            ..Options::default()
        };
        let mut long = engine::sample::PcapWriter::default();
        for i in 0..5000i64 {
            let f = engine::sample::udp("10.0.0.1", 5000, "10.0.0.2", 6000, b"x");
            long.frame(1_700_000_000_000_000_000 + i * 1_000_000, &f);
        }
        let e = analyze(&long.bytes[..], &Config::default(), &time).unwrap_err();
        assert!(
            e.to_string()
                .contains("more than 0 s of analysis (stopped at frame 4096"),
            "{e}"
        );
        // Within its budget, the same report as without one.
        let enough = analyze(&capture[..], &Config::default(), &packets(1_000_000)).unwrap();
        assert!(enough.metadata.total_packets > 10);
    }
}

fn assert_warns(r: &engine::Report, text: &str) {
    assert!(
        r.metadata.warnings.iter().any(|w| w.contains(text)),
        "no warning with {text:?} in {:?}",
        r.metadata.warnings
    );
}
