//! The security detectors and the health score on packets built here.

use engine::analyzers::health_score::{score, HealthInputs};
use engine::sample::{dns, udp, PcapWriter, Tcp, MS};
use engine::{analyze, Config, Options, Report};

use crate::{report, report_with, T0};

const ATTACKER: &str = "10.0.0.5";
const VICTIM: &str = "10.0.0.9";
const OUTSIDE: &str = "198.51.100.7";

fn report_config(frames: &[(i64, Vec<u8>)], config: &Config) -> Report {
    let mut w = PcapWriter::default();
    for (ms, f) in frames {
        w.frame(T0 + ms * MS, f);
    }
    analyze(&w.bytes[..], config, &Options::default()).expect("valid capture")
}

fn syn(ms: i64, src: &str, sport: u16, dst: &str, dport: u16) -> (i64, Vec<u8>) {
    (
        ms,
        Tcp::new(src, sport, dst, dport)
            .seq(1000 + u32::from(sport))
            .syn()
            .frame(),
    )
}

/// A TCP segment from `src:sport` whose payload is `text`.
fn tcp_text(
    ms: i64,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    seq: u32,
    text: &[u8],
) -> (i64, Vec<u8>) {
    let mut f = Tcp::new(src, sport, dst, dport)
        .seq(seq)
        .ack(1)
        .psh()
        .payload(text.len())
        .frame();
    let start = f.len() - text.len();
    f[start..].copy_from_slice(text);
    (ms, f)
}

#[test]
fn twenty_unanswered_syns_to_twenty_ports_are_a_critical_vertical_scan() {
    let f: Vec<_> = (0..20)
        .map(|i| syn(i * 10, ATTACKER, 40000 + i as u16, VICTIM, 1 + i as u16))
        .collect();
    let ps = report(&f).port_scan_detection.unwrap();
    assert_eq!(ps.total_scans_detected, 1);
    let e = &ps.scan_events[0];
    assert_eq!(e.scan_type, "vertical");
    assert_eq!(
        (
            e.unique_ports,
            e.unique_targets,
            e.total_attempts,
            e.failed_attempts
        ),
        (20, 1, 20, 20)
    );
    // 20 ports → medium, all failed → high, 105 attempts/s → critical.
    assert_eq!(e.severity.as_str(), "critical");
    assert_eq!(e.duration, 0.19);
    assert_eq!(e.first_packet, 1);
}

#[test]
fn one_port_probed_on_many_hosts_is_a_horizontal_scan() {
    let f: Vec<_> = (0..20)
        .map(|i| {
            let host = format!("10.0.1.{}", i + 1);
            syn(i * 10, ATTACKER, 40000 + i as u16, &host, 445)
        })
        .collect();
    let ps = report(&f).port_scan_detection.unwrap();
    assert_eq!(ps.total_scans_detected, 1);
    let e = &ps.scan_events[0];
    assert_eq!(e.scan_type, "horizontal");
    assert_eq!((e.unique_ports, e.unique_targets), (1, 20));
}

#[test]
fn a_scan_lists_the_ports_that_answered_with_a_syn_ack() {
    let mut f: Vec<_> = (0..20)
        .map(|i| syn(i * 10, ATTACKER, 40000 + i as u16, VICTIM, 1 + i as u16))
        .collect();
    // Port 7 (the 7th SYN) answers, twice (a retransmitted SYN/ACK).
    for ms in [65, 1065] {
        f.push((
            ms,
            Tcp::new(VICTIM, 7, ATTACKER, 40006)
                .seq(99)
                .ack(1000 + 40006 + 1)
                .syn()
                .frame(),
        ));
    }
    f.sort_by_key(|(ms, _)| *ms);
    let r = report(&f);
    let e = &r.port_scan_detection.as_ref().unwrap().scan_events[0];
    assert_eq!(e.open_ports, vec![7]);
    assert_eq!(e.open_services, vec![format!("{VICTIM}:7")]);
    let finding = r
        .findings
        .iter()
        .find(|f| f.analysis == "port_scan_detection")
        .expect("a finding");
    assert_eq!(finding.cause, Some(engine::finding::Cause::PortScan));
    assert!(finding.summary.contains("open: 7"), "{}", finding.summary);
    assert_eq!(finding.frames[..2], [1, 8]);
    assert_eq!(
        finding.hosts[..2],
        [ATTACKER.to_string(), VICTIM.to_string()]
    );
    assert_eq!(
        finding.display_filter,
        format!("ip.src == {ATTACKER} && tcp.flags.syn == 1 && tcp.flags.ack == 0")
    );
}

#[test]
fn many_sources_probing_a_few_ports_each_of_one_host_are_a_low_inbound_scan() {
    // 12 Internet hosts each try 3 of 6 backdoor ports, minutes apart, never answered.
    let ports = [2745u16, 3127, 4899, 5554, 6129, 9898];
    let mut f = Vec::new();
    for h in 0..12u16 {
        let src = format!("198.51.100.{}", h + 1);
        for k in 0..3u16 {
            let port = ports[usize::from((h + k) % 6)];
            f.push(syn(
                i64::from(h) * 300_000 + i64::from(k) * 100,
                &src,
                3000 + k,
                VICTIM,
                port,
            ));
        }
    }
    let r = report(&f);
    let ps = r.port_scan_detection.as_ref().unwrap();
    assert_eq!(ps.total_scans_detected, 1);
    let e = &ps.scan_events[0];
    assert_eq!(
        (e.scan_type.as_str(), e.severity.as_str(), e.unique_ports),
        ("inbound_distributed", "low", 6)
    );
    assert_eq!(e.target_ips, vec![VICTIM]);
    let finding = r
        .findings
        .iter()
        .find(|f| f.analysis == "port_scan_detection")
        .expect("a finding");
    assert_eq!(finding.hosts, vec![VICTIM]);
}

#[test]
fn ports_probed_in_two_separate_minutes_are_not_added_together() {
    let mut f: Vec<_> = (0..8)
        .map(|i| syn(i * 10, ATTACKER, 40000 + i as u16, VICTIM, 1 + i as u16))
        .collect();
    f.extend((0..8).map(|i| {
        syn(
            70_000 + i * 10,
            ATTACKER,
            41000 + i as u16,
            VICTIM,
            100 + i as u16,
        )
    }));
    assert_eq!(
        report(&f).port_scan_detection.unwrap().total_scans_detected,
        0
    );
}

#[test]
fn a_client_whose_connections_are_answered_is_not_a_horizontal_scan() {
    let mut f = Vec::new();
    for i in 0..12u16 {
        let server = format!("203.0.113.{}", i + 1);
        f.push(syn(i64::from(i) * 10, ATTACKER, 40000 + i, &server, 443));
        f.push((
            i64::from(i) * 10 + 5,
            Tcp::new(&server, 443, ATTACKER, 40000 + i)
                .seq(7)
                .ack(1001 + u32::from(40000 + i))
                .syn()
                .frame(),
        ));
    }
    assert_eq!(
        report(&f).port_scan_detection.unwrap().total_scans_detected,
        0
    );
}

#[test]
fn a_scan_of_localhost_is_ignored_unless_localhost_is_included() {
    let f: Vec<_> = (0..20)
        .map(|i| {
            syn(
                i * 10,
                "127.0.0.1",
                40000 + i as u16,
                "127.0.0.1",
                1 + i as u16,
            )
        })
        .collect();
    assert_eq!(
        report(&f).port_scan_detection.unwrap().total_scans_detected,
        0
    );
    let with = Options {
        include_localhost: true,
        ..Options::default()
    };
    assert_eq!(
        report_with(&f, &with)
            .port_scan_detection
            .unwrap()
            .total_scans_detected,
        1
    );
}

#[test]
fn twelve_unanswered_ssh_syns_are_critical_connection_level_brute_force() {
    let f: Vec<_> = (0..12)
        .map(|i| syn(i * 100, ATTACKER, 40000 + i as u16, VICTIM, 22))
        .collect();
    let bf = report(&f).brute_force_detection.unwrap();
    assert_eq!(bf.total_attacks_detected, 1);
    let e = &bf.brute_force_events[0];
    assert_eq!(
        (e.service.as_str(), e.evidence.as_str()),
        ("SSH", "connection_failures")
    );
    assert_eq!(
        (e.total_attempts, e.failed_attempts, e.success_rate),
        (12, 12, 0.0)
    );
    // 12 attempts → low; failure 1.0 → medium; 10.9/s → high; SSH → critical.
    assert_eq!(e.severity.as_str(), "critical");
    assert_eq!(
        e.display_filter,
        "ip.addr == 10.0.0.5 && ip.addr == 10.0.0.9 && tcp.port == 22"
    );
}

#[test]
fn ten_ftp_530_replies_are_brute_force_even_when_every_connection_succeeds() {
    let mut f = Vec::new();
    for i in 0..10u16 {
        let t = i64::from(i) * 200;
        f.push(syn(t, ATTACKER, 40000 + i, VICTIM, 21));
        f.push((
            t + 1,
            Tcp::new(VICTIM, 21, ATTACKER, 40000 + i)
                .seq(5)
                .ack(1001 + u32::from(40000 + i))
                .syn()
                .frame(),
        ));
        f.push(tcp_text(
            t + 50,
            VICTIM,
            21,
            ATTACKER,
            40000 + i,
            6,
            b"530 Login incorrect.\r\n",
        ));
    }
    let bf = report(&f).brute_force_detection.unwrap();
    assert_eq!(bf.total_attacks_detected, 1);
    let e = &bf.brute_force_events[0];
    assert_eq!(e.evidence, "authentication_failures");
    assert_eq!(
        (e.auth_failures, e.syn_attempts, e.syn_answered),
        (10, 10, 10)
    );
    assert_eq!(e.first_packet, 1);
    assert_eq!(e.last_packet, 30);
    assert_eq!(e.failure_frames, vec![3, 6, 9, 12, 15]);
}

#[test]
fn refused_pop3_and_imap_logins_are_brute_force() {
    for (port, reply) in [
        (110u16, &b"-ERR [AUTH] Authentication failed.\r\n"[..]),
        (
            143,
            &b"a1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"[..],
        ),
    ] {
        let f: Vec<_> = (0..12u16)
            .map(|i| {
                tcp_text(
                    i64::from(i) * 200,
                    VICTIM,
                    port,
                    ATTACKER,
                    40000 + i,
                    6,
                    reply,
                )
            })
            .collect();
        let bf = report(&f).brute_force_detection.unwrap();
        assert_eq!(bf.total_attacks_detected, 1, "{port}");
        let e = &bf.brute_force_events[0];
        assert_eq!(
            (e.evidence.as_str(), e.auth_failures, e.target_port),
            ("authentication_failures", 12, port)
        );
    }
}

/// `n` SSH sessions from the attacker, one a second: SYN, SYN/ACK, client FIN.
fn ssh_sessions(n: u16) -> Vec<(i64, Vec<u8>)> {
    let mut f = Vec::new();
    for i in 0..n {
        let t = i64::from(i) * 1000;
        let port = 41000 + i;
        f.push(syn(t, ATTACKER, port, VICTIM, 22));
        f.push((
            t + 1,
            Tcp::new(VICTIM, 22, ATTACKER, port)
                .seq(5)
                .ack(1001 + u32::from(port))
                .syn()
                .frame(),
        ));
        f.push((
            t + 600,
            Tcp::new(ATTACKER, port, VICTIM, 22)
                .seq(1001 + u32::from(port))
                .ack(6)
                .fin()
                .frame(),
        ));
    }
    f
}

#[test]
fn twelve_ssh_sessions_opened_and_closed_one_after_the_other_are_brute_force() {
    let r = report(&ssh_sessions(12));
    let bf = r.brute_force_detection.as_ref().unwrap();
    assert_eq!(bf.total_attacks_detected, 1);
    let e = &bf.brute_force_events[0];
    assert_eq!(e.evidence, "repeated_sessions");
    assert_eq!((e.syn_attempts, e.syn_answered), (12, 12));
    // 12 attempts: low, SSH +1.
    assert_eq!(e.severity.as_str(), "medium");
    assert!(r
        .findings
        .iter()
        .any(|f| f.cause == Some(engine::finding::Cause::BruteForce)));
}

#[test]
fn a_few_ssh_sessions_are_not_brute_force() {
    let bf = report(&ssh_sessions(4)).brute_force_detection.unwrap();
    assert_eq!(bf.total_attacks_detected, 0);
}

/// Ten refused FTP logins, the first at `t0` ms.
fn ftp_guesses(t0: i64) -> Vec<(i64, Vec<u8>)> {
    let mut f = Vec::new();
    for i in 0..10u16 {
        let t = t0 + i64::from(i) * 200;
        f.push(syn(t, ATTACKER, 40000 + i, VICTIM, 21));
        f.push((
            t + 1,
            Tcp::new(VICTIM, 21, ATTACKER, 40000 + i)
                .seq(5)
                .ack(1001 + u32::from(40000 + i))
                .syn()
                .frame(),
        ));
        f.push(tcp_text(
            t + 50,
            VICTIM,
            21,
            ATTACKER,
            40000 + i,
            6,
            b"530 Login incorrect.\r\n",
        ));
    }
    f
}

#[test]
fn a_capture_holding_the_same_guesses_twice_is_still_brute_force_and_not_ddos() {
    // The second copy starts 5 s earlier than the first ended: time jumps back.
    let mut f = ftp_guesses(10_000);
    f.extend(ftp_guesses(5_000));
    let mut w = PcapWriter::default();
    for (ms, frame) in &f {
        w.frame(T0 + ms * MS, frame);
    }
    let r = analyze(&w.bytes[..], &Config::default(), &Options::default()).expect("valid");
    let bf = r.brute_force_detection.as_ref().unwrap();
    assert_eq!(bf.total_attacks_detected, 1);
    assert!(bf.brute_force_events[0].severity >= engine::finding::Severity::High);
    assert_eq!(r.ddos_detection.as_ref().unwrap().total_attacks_detected, 0);
    let causes: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.severity >= engine::finding::Severity::Medium)
        .filter_map(|f| f.cause)
        .filter(|c| c.is_security())
        .collect();
    assert_eq!(causes, vec![engine::finding::Cause::BruteForce]);
}

#[test]
fn a_thousand_syns_a_second_from_many_sources_unanswered_are_a_critical_syn_flood() {
    let f: Vec<_> = (0..1500)
        .map(|i| {
            syn(
                i,
                &format!("203.0.113.{}", i % 200 + 1),
                1024 + (i % 60000) as u16,
                VICTIM,
                80,
            )
        })
        .collect();
    let d = report(&f).ddos_detection.unwrap();
    assert_eq!(d.total_attacks_detected, 1);
    let e = &d.ddos_events[0];
    assert_eq!(
        (e.attack_type.as_str(), e.total_packets),
        ("syn_flood", 1500)
    );
    assert_eq!(e.severity.as_str(), "critical");
    assert!(
        e.source_count > 150 && e.source_count < 250,
        "{}",
        e.source_count
    );
    assert_eq!(e.synack_ratio, Some(0.0));
}

#[test]
fn six_hundred_udp_datagrams_in_a_second_are_a_udp_flood_and_fifty_are_not() {
    let flood: Vec<_> = (0..600)
        .map(|i| (i * 1000 / 600, udp(OUTSIDE, 5000, VICTIM, 9999, &[0; 64])))
        .collect();
    let d = report(&flood).ddos_detection.unwrap();
    assert_eq!(d.ddos_events[0].attack_type, "udp_flood");
    assert_eq!(d.ddos_events[0].severity.as_str(), "low");
    let calm: Vec<_> = (0..50)
        .map(|i| (i * 20, udp(OUTSIDE, 5000, VICTIM, 9999, &[0; 64])))
        .collect();
    assert_eq!(
        report(&calm).ddos_detection.unwrap().total_attacks_detected,
        0
    );
}

/// 3000 datagrams in a second from 30 peers to the victim; with `replies`, the victim answers
/// every fifth one (a peer-to-peer exchange).
fn udp_from_peers(replies: bool) -> Vec<(i64, Vec<u8>)> {
    let mut f = Vec::new();
    for i in 0..3000i64 {
        let peer = format!("203.0.113.{}", i % 30 + 1);
        f.push((i / 3, udp(&peer, 6881, VICTIM, 6881, &[0; 64])));
        if replies && i % 5 == 0 {
            f.push((i / 3, udp(VICTIM, 6881, &peer, 6881, &[0; 64])));
        }
    }
    f
}

#[test]
fn a_udp_flood_from_thirty_peers_is_high_but_a_two_way_peer_exchange_is_at_most_low() {
    let d = report(&udp_from_peers(false)).ddos_detection.unwrap();
    assert_eq!(d.ddos_events[0].severity.as_str(), "high");
    let r = report(&udp_from_peers(true));
    let d = r.ddos_detection.as_ref().unwrap();
    assert!(d.ddos_events.iter().all(|e| e.severity.as_str() == "low"));
    assert!(r
        .findings
        .iter()
        .filter(|f| f.cause == Some(engine::finding::Cause::Ddos))
        .all(|f| f.severity == engine::finding::Severity::Low));
}

#[test]
fn long_plain_names_at_a_high_rate_without_encoded_data_are_at_most_low_tunneling() {
    // DNS-SD style service browsing: long, readable names, five a second, A records.
    let f: Vec<_> = (0..10)
        .map(|i| {
            let name = format!(
                "printer-{i}-on-the-second-floor-near-the-kitchen._ipp._tcp.office.example"
            );
            (
                i * 200,
                udp(
                    ATTACKER,
                    5000 + i as u16,
                    VICTIM,
                    53,
                    &dns(i as u16, false, 0, &name, 1),
                ),
            )
        })
        .collect();
    let t = report(&f).dns_tunneling_detection.unwrap();
    assert_eq!(t.total_tunneling_detected, 1);
    let e = &t.tunneling_events[0];
    assert_eq!(e.indicators, vec!["long_queries", "high_query_rate"]);
    // Score 40 would be medium; nothing says the names carry data.
    assert_eq!((e.score, e.severity.as_str()), (40, "low"));
}

#[test]
fn hex_encoded_txt_queries_to_one_domain_are_dns_tunneling() {
    let f: Vec<_> = (0..10)
        .map(|i| {
            let name = format!(
                "{:040x}.tunnel.example",
                0x1234_5678_9abc_def0_u128.wrapping_mul(i as u128 + 7)
            );
            (
                i * 1000,
                udp(
                    ATTACKER,
                    5000 + i as u16,
                    VICTIM,
                    53,
                    &dns(i as u16, false, 0, &name, 16),
                ),
            )
        })
        .collect();
    let t = report(&f).dns_tunneling_detection.unwrap();
    assert_eq!(t.total_tunneling_detected, 1);
    let e = &t.tunneling_events[0];
    assert_eq!((e.domain.as_str(), e.query_count), ("tunnel.example", 10));
    assert_eq!(
        e.indicators,
        vec![
            "long_queries",
            "high_query_rate",
            "encoded_labels",
            "txt_null_records"
        ]
    );
    assert_eq!((e.score, e.severity.as_str()), (75, "high"));
    assert_eq!(e.avg_query_length, 55.0);
}

#[test]
fn ordinary_and_whitelisted_queries_are_not_tunneling() {
    let mut f = Vec::new();
    for i in 0..30 {
        let name = if i % 2 == 0 {
            "www.example.com".to_string()
        } else {
            format!("{:040x}.google.com", i)
        };
        f.push((
            i * 100,
            udp(
                ATTACKER,
                5000,
                VICTIM,
                53,
                &dns(i as u16, false, 0, &name, 1),
            ),
        ));
    }
    let t = report(&f).dns_tunneling_detection.unwrap();
    assert_eq!(t.total_tunneling_detected, 0);
    assert_eq!(t.whitelisted_queries, 15);
}

#[test]
fn a_twelve_megabyte_file_upload_over_tcp_is_at_most_low_exfiltration() {
    // 8400 segments of 1448 bytes to an HTTPS server in a minute, an ACK back every second one:
    // the upload/download ratio is above 20, as for any TCP upload.
    let mut f = Vec::new();
    for i in 0..8400u32 {
        let ms = i64::from(i) * 60_000 / 8400;
        f.push((
            ms,
            Tcp::new(ATTACKER, 50000, OUTSIDE, 443)
                .seq(1 + i * 1448)
                .ack(1)
                .payload(1448)
                .frame(),
        ));
        if i % 2 == 1 {
            f.push((
                ms,
                Tcp::new(OUTSIDE, 443, ATTACKER, 50000)
                    .seq(1)
                    .ack(1 + (i + 1) * 1448)
                    .frame(),
            ));
        }
    }
    let r = report(&f);
    let x = r.data_exfiltration_detection.as_ref().unwrap();
    assert_eq!(x.total_exfiltration_detected, 1);
    let e = &x.exfiltration_events[0];
    assert_eq!(e.exfil_type, "suspicious_ratio");
    assert!(e.upload_download_ratio.unwrap() > 20.0);
    assert_eq!(e.severity.as_str(), "low");
    assert!(r
        .findings
        .iter()
        .filter(|f| f.cause == Some(engine::finding::Cause::DataExfiltration))
        .all(|f| f.severity == engine::finding::Severity::Low));
}

#[test]
fn an_ipv6_upload_over_the_threshold_is_a_large_upload() {
    let config = Config {
        thresholds: engine::config::Thresholds {
            exfil_large_upload_mb: 1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let f: Vec<_> = (0..1000)
        .map(|i| (i, udp("fd00::5", 5000, "2001:db8::7", 443, &[0; 1000])))
        .collect();
    let x = report_config(&f, &config)
        .data_exfiltration_detection
        .unwrap();
    assert_eq!(x.total_exfiltration_detected, 1);
    let e = &x.exfiltration_events[0];
    assert_eq!(
        (e.exfil_type.as_str(), e.source_ip.as_str()),
        ("large_upload", "fd00::5")
    );
    // 1000 frames of 14 + 40 + 8 + 1000 bytes.
    assert_eq!(e.bytes_uploaded, 1_062_000);
    assert_eq!(e.peak_window_bytes, 1_062_000);
    assert_eq!(e.upload_download_ratio, None);
}

#[test]
fn uploads_spread_beyond_the_window_are_not_one_large_upload() {
    let config = Config {
        thresholds: engine::config::Thresholds {
            exfil_large_upload_mb: 1.0,
            exfil_window: 10.0,
            ..Default::default()
        },
        ..Default::default()
    };
    // 600 KB, then 600 KB a minute later: never 1 MB within 10 s.
    let f: Vec<_> = (0..1200)
        .map(|i| {
            (
                if i < 600 { i } else { 60_000 + i },
                udp(ATTACKER, 5000, OUTSIDE, 443, &[0; 958]),
            )
        })
        .collect();
    let x = report_config(&f, &config)
        .data_exfiltration_detection
        .unwrap();
    assert_eq!(x.total_exfiltration_detected, 0);
    assert_eq!(x.total_bytes_uploaded, 1_200_000);
}

#[test]
fn twelve_identical_beacons_every_seven_seconds_to_the_internet_are_c2_beaconing() {
    let f: Vec<_> = (0..12)
        .map(|i| (i * 7000, udp(ATTACKER, 40000, OUTSIDE, 8443, &[0; 100])))
        .collect();
    let c = report(&f).c2_beaconing_detection.unwrap();
    assert_eq!(c.total_beacons_detected, 1);
    let e = &c.beaconing_events[0];
    assert_eq!(
        (e.beacon_count, e.mean_interval, e.interval_cv, e.size_cv),
        (12, 7.0, 0.0, 0.0)
    );
    // interval CV +40, size CV +30, external +10.
    assert_eq!((e.score, e.severity.as_str()), (80, "high"));
}

/// A TCP session from `ATTACKER:50000` to `VICTIM:4433`: a 100-byte greeting, then a 9-byte
/// check-in every 10 s, each ACKed by the server (and answered with data when `answered`).
fn check_ins(count: i64, answered: bool) -> Vec<(i64, Vec<u8>)> {
    let mut f = vec![(
        0,
        tcp_text(0, ATTACKER, 50000, VICTIM, 4433, 1, &[b'h'; 100]).1,
    )];
    let mut server_seq = 1;
    for i in 1..=count {
        let ms = i * 10_000;
        let seq = 101 + 9 * (i as u32 - 1);
        f.push(tcp_text(
            ms,
            ATTACKER,
            50000,
            VICTIM,
            4433,
            seq,
            b"BEACON?!!",
        ));
        if answered {
            f.push(tcp_text(
                ms + 40,
                VICTIM,
                4433,
                ATTACKER,
                50000,
                server_seq,
                b"PONG",
            ));
            server_seq += 4;
        } else {
            f.push((
                ms + 40,
                Tcp::new(VICTIM, 4433, ATTACKER, 50000)
                    .seq(server_seq)
                    .ack(seq + 9)
                    .frame(),
            ));
        }
    }
    f
}

#[test]
fn small_check_ins_every_ten_seconds_inside_one_session_are_c2_beaconing() {
    let r = report(&check_ins(12, false));
    let c = r.c2_beaconing_detection.as_ref().unwrap();
    assert_eq!(c.total_beacons_detected, 1);
    let e = &c.beaconing_events[0];
    assert_eq!(e.beacon_type, "in_session");
    assert_eq!(
        (
            e.source_ip.as_str(),
            e.destination_ip.as_str(),
            e.destination_port
        ),
        (ATTACKER, VICTIM, 4433)
    );
    assert_eq!(
        (e.beacon_count, e.mean_interval, e.mean_size_bytes),
        (12, 10.0, 9.0)
    );
    // interval CV +40, size CV +30, both very regular +10; internal.
    assert_eq!((e.score, e.severity.as_str()), (80, "high"));
    let finding = r
        .findings
        .iter()
        .find(|f| f.cause == Some(engine::finding::Cause::C2Beaconing))
        .expect("a finding");
    // The greeting (frame 1) is not a beacon; the check-ins are frames 2, 4, 6...
    assert_eq!(finding.frames[..3], [2, 4, 6]);
    assert!(finding.display_filter.contains("tcp.dstport == 4433"));
}

#[test]
fn check_ins_answered_by_the_server_are_a_keep_alive_exchange_not_c2() {
    let c = report(&check_ins(12, true)).c2_beaconing_detection.unwrap();
    assert_eq!((c.total_beacons_detected, c.skipped_periodic), (0, 1));
}

#[test]
fn periodic_datagrams_to_multicast_and_broadcast_are_never_c2() {
    for group in ["239.255.255.250", "224.0.0.251", "255.255.255.255"] {
        let f: Vec<_> = (0..12)
            .map(|i| (i * 7000, udp(ATTACKER, 40000, group, 7000, &[0; 100])))
            .collect();
        let c = report(&f).c2_beaconing_detection.unwrap();
        assert_eq!(c.total_beacons_detected, 0, "{group}");
    }
}

#[test]
fn ntp_and_dhcp_polls_to_an_internet_server_are_not_c2() {
    for port in [123u16, 67] {
        let f: Vec<_> = (0..12)
            .map(|i| (i * 7000, udp(ATTACKER, port, OUTSIDE, port, &[0; 48])))
            .collect();
        let c = report(&f).c2_beaconing_detection.unwrap();
        assert_eq!(c.total_beacons_detected, 0, "{port}");
    }
}

#[test]
fn keep_alives_without_payload_in_a_session_are_not_beacons() {
    let mut f = vec![tcp_text(0, ATTACKER, 50000, VICTIM, 4433, 1, &[b'h'; 100])];
    for i in 1..=12 {
        f.push((
            i * 10_000,
            Tcp::new(ATTACKER, 50000, VICTIM, 4433)
                .seq(100)
                .ack(1)
                .frame(),
        ));
    }
    let c = report(&f).c2_beaconing_detection.unwrap();
    assert_eq!(c.total_beacons_detected, 0);
}

#[test]
fn a_sixty_second_heartbeat_is_set_aside_as_v5_does() {
    let f: Vec<_> = (0..12)
        .map(|i| (i * 60_000, udp(ATTACKER, 40000, OUTSIDE, 8443, &[0; 100])))
        .collect();
    let c = report(&f).c2_beaconing_detection.unwrap();
    assert_eq!((c.total_beacons_detected, c.skipped_periodic), (0, 1));
}

#[test]
fn an_unanswered_smb_sweep_of_twenty_internal_hosts_is_a_scan_not_lateral_movement() {
    let f: Vec<_> = (0..20)
        .map(|i| {
            let host = format!("10.0.2.{}", i + 1);
            syn(i * 100, ATTACKER, 40000 + i as u16, &host, 445)
        })
        .collect();
    let r = report(&f);
    let l = r.lateral_movement_detection.as_ref().unwrap();
    assert!(l.total_movements_detected > 0);
    assert!(l
        .lateral_movement_events
        .iter()
        .all(|e| e.severity.as_str() == "low"));
    assert_eq!(
        r.port_scan_detection.as_ref().unwrap().scan_events[0].scan_type,
        "horizontal"
    );
}

#[test]
fn smb_rdp_and_winrm_to_five_internal_hosts_in_a_minute_is_lateral_movement() {
    let mut f = Vec::new();
    for (i, port) in [445u16, 3389, 5985, 445, 445].iter().enumerate() {
        f.push(syn(
            i as i64 * 10_000,
            ATTACKER,
            40000 + i as u16,
            &format!("10.0.0.{}", 20 + i),
            *port,
        ));
    }
    let l = report(&f).lateral_movement_detection.unwrap();
    assert_eq!(l.total_movements_detected, 3);
    let kinds: Vec<(&str, &str)> = l
        .lateral_movement_events
        .iter()
        .map(|e| (e.movement_type.as_str(), e.severity.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("multi_target_admin", "high"),
            ("rapid_movement", "high"),
            ("admin_protocol_spread", "medium")
        ]
    );
    assert_eq!(
        l.lateral_movement_events[0].protocols,
        vec!["SMB", "RDP", "WinRM"]
    );
}

#[test]
fn admin_connections_to_the_internet_are_not_lateral_movement() {
    let f: Vec<_> = (0..5)
        .map(|i| {
            syn(
                i * 10,
                ATTACKER,
                40000 + i as u16,
                &format!("203.0.113.{}", i + 1),
                22,
            )
        })
        .collect();
    assert_eq!(
        report(&f)
            .lateral_movement_detection
            .unwrap()
            .total_movements_detected,
        0
    );
}

#[test]
fn the_health_score_adds_v5_weighted_penalties_and_gives_the_y1541_class() {
    let h = score(&HealthInputs {
        total_packets: 1000,
        tcp_packets: Some(1000),
        retransmissions: 20,
        dns_transactions: Some(100),
        dns_failures: 10,
        median_rtt_ms: Some(100.0),
        mean_jitter_ms: Some(30.0),
        ..Default::default()
    });
    let weighted: Vec<f64> = h.metric_scores.iter().map(|m| m.weighted_penalty).collect();
    // 2 % retrans → 25 × 25 %; 2 % loss → 22 × 20 %; 100 ms → 9 × 20 %; 10 % DNS → 40 × 15 %;
    // 30 ms jitter → 13.67 × 10 %; no anomalies.
    assert_eq!(weighted, vec![6.25, 4.4, 1.8, 6.0, 1.37, 0.0]);
    assert_eq!(h.overall_score, 80.2);
    assert_eq!((h.qos_class, h.severity.as_str()), (2, "warning"));
}

#[test]
fn missing_rtt_and_jitter_sections_cost_nothing_and_say_so() {
    let r = report(&crate::handshake());
    let h = r.health_score.unwrap();
    assert_eq!(h.overall_score, 100.0);
    let rtt = h
        .metric_scores
        .iter()
        .find(|m| m.metric_name == "RTT (Latency)")
        .unwrap();
    assert_eq!(
        (rtt.penalty, rtt.threshold_status.as_str()),
        (0.0, "not_measured")
    );
}

const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const VICTIM_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const ATTACKER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x66];

/// An Ethernet/IPv4 ARP frame (RFC 826).
fn arp(op: u16, smac: [u8; 6], sip: &str, tmac: [u8; 6], tip: &str) -> Vec<u8> {
    let ip = |a: &str| a.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let mut f = Vec::new();
    f.extend_from_slice(if op == 1 { &[0xff; 6] } else { &tmac });
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&smac);
    f.extend_from_slice(&ip(sip));
    f.extend_from_slice(&tmac);
    f.extend_from_slice(&ip(tip));
    f
}

/// A UDP frame with the given Ethernet source and destination.
fn udp_via(src: &str, dst: &str, smac: [u8; 6], dmac: [u8; 6]) -> Vec<u8> {
    let mut f = udp(src, 40000, dst, 8080, &[1; 20]);
    f[..6].copy_from_slice(&dmac);
    f[6..12].copy_from_slice(&smac);
    f
}

#[test]
fn a_mac_that_claims_the_gateway_address_and_then_carries_the_internet_traffic_is_high_arp_spoofing(
) {
    let mut f = Vec::new();
    for i in 0..4 {
        f.push((i * 10, udp_via(VICTIM, OUTSIDE, VICTIM_MAC, GW_MAC)));
        f.push((i * 10 + 5, udp_via(OUTSIDE, VICTIM, GW_MAC, VICTIM_MAC)));
    }
    // Frame 9: the attacker tells the victim that 10.0.0.1 is at its MAC.
    f.push((100, arp(2, ATTACKER_MAC, "10.0.0.1", VICTIM_MAC, VICTIM)));
    for i in 0..4 {
        f.push((
            200 + i * 10,
            udp_via(VICTIM, OUTSIDE, VICTIM_MAC, ATTACKER_MAC),
        ));
        f.push((
            205 + i * 10,
            udp_via(OUTSIDE, VICTIM, ATTACKER_MAC, VICTIM_MAC),
        ));
    }
    let r = report(&f);
    let a = r.arp_spoofing_detection.as_ref().unwrap();
    assert_eq!(a.total_spoofing_detected, 1);
    let e = &a.spoofing_events[0];
    assert_eq!(
        (e.event_type.as_str(), e.severity.as_str()),
        ("traffic_takeover", "high")
    );
    assert_eq!(e.mac, "02:00:00:00:00:66");
    assert_eq!(e.claimed_ips, vec!["10.0.0.1"]);
    assert_eq!(e.previous_macs, vec!["02:00:00:00:00:01"]);
    assert_eq!(e.frames_taken_over, 8);
    let finding = r
        .findings
        .iter()
        .find(|f| f.cause == Some(engine::finding::Cause::ArpSpoofing))
        .expect("a finding");
    assert_eq!(finding.frames[..2], [9, 10]);
    assert!(finding.summary.contains("10.0.0.1"), "{}", finding.summary);
}

#[test]
fn a_second_router_that_only_answers_arp_requests_and_carries_traffic_is_at_most_medium() {
    let mut f = Vec::new();
    for i in 0..4 {
        f.push((i * 10, udp_via(OUTSIDE, VICTIM, GW_MAC, VICTIM_MAC)));
    }
    // The victim asks for 10.0.0.2, the second router answers.
    f.push((100, arp(1, VICTIM_MAC, VICTIM, [0; 6], "10.0.0.2")));
    f.push((101, arp(2, ATTACKER_MAC, "10.0.0.2", VICTIM_MAC, VICTIM)));
    for i in 0..4 {
        f.push((
            200 + i * 10,
            udp_via(OUTSIDE, VICTIM, ATTACKER_MAC, VICTIM_MAC),
        ));
    }
    let a = report(&f).arp_spoofing_detection.unwrap();
    let e = &a.spoofing_events[0];
    assert_eq!(
        (e.event_type.as_str(), e.severity.as_str()),
        ("traffic_takeover", "medium")
    );
}

#[test]
fn an_arp_reply_that_moves_an_address_to_another_mac_is_a_binding_change() {
    let f = vec![
        (0, arp(2, GW_MAC, "10.0.0.1", VICTIM_MAC, VICTIM)),
        (1000, arp(2, ATTACKER_MAC, "10.0.0.1", VICTIM_MAC, VICTIM)),
    ];
    let a = report(&f).arp_spoofing_detection.unwrap();
    assert_eq!(a.total_spoofing_detected, 1);
    let e = &a.spoofing_events[0];
    assert_eq!(
        (e.event_type.as_str(), e.severity.as_str()),
        ("binding_change", "medium")
    );
    assert_eq!(e.binding_changes, vec!["10.0.0.1=02:00:00:00:00:01"]);
}

#[test]
fn arp_refreshes_from_the_same_mac_and_probes_are_not_spoofing() {
    let mut f = Vec::new();
    for i in 0..30 {
        // Who has 10.0.0.1? 10.0.0.1 is at the gateway; every 20 minutes.
        f.push((
            i * 1_200_000,
            arp(1, VICTIM_MAC, VICTIM, [0; 6], "10.0.0.1"),
        ));
        f.push((
            i * 1_200_000 + 1,
            arp(2, GW_MAC, "10.0.0.1", VICTIM_MAC, VICTIM),
        ));
        f.push((
            i * 1_200_000 + 2,
            udp_via(OUTSIDE, VICTIM, GW_MAC, VICTIM_MAC),
        ));
    }
    // An RFC 5227 probe from 0.0.0.0.
    f.push((40_000_000, arp(1, ATTACKER_MAC, "0.0.0.0", [0; 6], VICTIM)));
    let a = report(&f).arp_spoofing_detection.unwrap();
    assert_eq!(a.total_spoofing_detected, 0);
    assert_eq!(a.arp_packets, 61);
}

#[test]
fn a_storm_of_gratuitous_arps_from_one_mac_is_medium_arp_spoofing() {
    let f: Vec<_> = (0..12)
        .map(|i| {
            (
                i * 1000,
                arp(2, ATTACKER_MAC, "10.0.0.1", [0xff; 6], "10.0.0.1"),
            )
        })
        .collect();
    let a = report(&f).arp_spoofing_detection.unwrap();
    let e = &a.spoofing_events[0];
    assert_eq!(
        (
            e.event_type.as_str(),
            e.severity.as_str(),
            e.gratuitous_arps
        ),
        ("gratuitous_storm", "medium", 12)
    );
}
