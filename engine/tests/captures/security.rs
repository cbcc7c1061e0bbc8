//! The security detectors and the health score on real captures.

use crate::capture_report;

#[test]
fn the_nmap_syn_scan_is_a_critical_vertical_scan_from_the_internal_scanner() {
    let r = capture_report("cs_synscan.pcapng");
    let ps = r.port_scan_detection.unwrap();
    assert_eq!(ps.total_scans_detected, 1);
    let e = &ps.scan_events[0];
    assert_eq!(
        (e.source_ip.as_str(), e.scan_type.as_str()),
        ("172.16.0.8", "vertical")
    );
    assert_eq!(e.unique_ports, 1000);
    assert_eq!(e.unique_targets, 1);
    assert_eq!(e.severity.as_str(), "critical");
    assert!(e.failed_attempts * 100 > e.total_attempts * 99);
    assert_eq!(e.first_packet, 1);
    // SYN/ACKs from 53, 80 and 22 (frames 11, 17, 46).
    assert_eq!(e.open_ports, vec![22, 53, 80]);
    let f = r
        .findings
        .iter()
        .find(|f| f.cause == Some(engine::finding::Cause::PortScan))
        .expect("a port-scan finding");
    assert!(f.summary.contains("open: 22, 53, 80"), "{}", f.summary);
    assert_eq!(&f.frames[..4], &[1, 11, 17, 46]);
    assert_eq!(
        f.display_filter,
        "ip.src == 172.16.0.8 && tcp.flags.syn == 1 && tcp.flags.ack == 0"
    );
}

#[test]
fn a_syn_scan_is_not_also_reported_as_a_syn_flood() {
    let r = capture_report("cs_synscan.pcapng");
    assert_eq!(r.ddos_detection.unwrap().total_attacks_detected, 0);
    assert_eq!(r.brute_force_detection.unwrap().total_attacks_detected, 0);
}

#[test]
fn the_ftp_password_guesser_is_brute_force_by_its_530_replies() {
    let r = capture_report("cs_ppa1e_ftp-crack.pcap");
    let bf = r.brute_force_detection.unwrap();
    assert_eq!(bf.total_attacks_detected, 1);
    let e = &bf.brute_force_events[0];
    assert_eq!(
        (e.source_ip.as_str(), e.target_ip.as_str(), e.target_port),
        ("10.234.125.254", "10.121.70.151", 21)
    );
    assert_eq!(e.evidence, "authentication_failures");
    // tshark: 705 frames with ftp.response.code == 530, none with 230.
    assert_eq!((e.auth_failures, e.auth_successes), (705, 0));
    assert_eq!(e.severity.as_str(), "critical");
    assert_eq!(r.port_scan_detection.unwrap().total_scans_detected, 0);
}

#[test]
fn a_normal_web_page_load_raises_no_security_finding() {
    for name in [
        "cs_http_espn.pcapng",
        "cs_tcp_handshake.pcapng",
        "cs_dns_lab.pcapng",
    ] {
        let r = capture_report(name);
        assert_eq!(
            r.port_scan_detection.unwrap().total_scans_detected,
            0,
            "{name}"
        );
        assert_eq!(
            r.brute_force_detection.unwrap().total_attacks_detected,
            0,
            "{name}"
        );
        assert_eq!(
            r.ddos_detection.unwrap().total_attacks_detected,
            0,
            "{name}"
        );
        assert_eq!(
            r.dns_tunneling_detection.unwrap().total_tunneling_detected,
            0,
            "{name}"
        );
        assert_eq!(
            r.data_exfiltration_detection
                .unwrap()
                .total_exfiltration_detected,
            0,
            "{name}"
        );
        assert_eq!(
            r.c2_beaconing_detection.unwrap().total_beacons_detected,
            0,
            "{name}"
        );
        assert_eq!(
            r.lateral_movement_detection
                .unwrap()
                .total_movements_detected,
            0,
            "{name}"
        );
    }
}

#[test]
fn a_clean_page_load_is_qos_class_0_and_the_ftp_attack_capture_scores_poor() {
    // The page load has no loss or DNS failure; only its internet RTT costs a little.
    let clean = capture_report("cs_http_espn.pcapng").health_score.unwrap();
    assert!(clean.overall_score >= 95.0, "{}", clean.overall_score);
    assert_eq!(clean.qos_class, 0);
    let bad = capture_report("cs_ppa1e_ftp-crack.pcap")
        .health_score
        .unwrap();
    assert!(bad.overall_score < 65.0, "{}", bad.overall_score);
    // With the brute force a finding, the diagnosis gives the advice, the attack first.
    assert!(
        bad.recommendations[0].starts_with("Password guessing from 10.234.125.254"),
        "{:?}",
        bad.recommendations
    );
}

/// The security causes at medium or above in a capture's findings.
fn security_causes(name: &str) -> Vec<engine::finding::Cause> {
    let mut c: Vec<_> = capture_report(name)
        .findings
        .iter()
        .filter(|f| f.severity >= engine::finding::Severity::Medium)
        .filter_map(|f| f.cause)
        .filter(|c| c.is_security())
        .collect();
    c.sort();
    c.dedup();
    c
}

#[test]
fn each_attack_capture_names_its_attack_and_no_other_security_cause() {
    use engine::finding::Cause;
    for (name, cause) in [
        ("cs_synscan.pcapng", Cause::PortScan),
        ("cs_arppoison.pcapng", Cause::ArpSpoofing),
        ("cs_ratinfected.pcapng", Cause::C2Beaconing),
        ("cs_ppa1e_ftp-crack.pcap", Cause::BruteForce),
    ] {
        assert_eq!(security_causes(name), vec![cause], "{name}");
    }
}

#[test]
fn ordinary_traffic_raises_no_security_cause_at_medium() {
    for name in [
        "cs_ppa1e_torrential-slowness.pcap",
        "cs_dns_axfr.pcapng",
        "cs_mail_receiver_server_3.pcapng",
        "cs_ppa2e_facebook_login.pcap",
        "cs_icmpv6_neighbor_solicitation.pcapng",
        "cs_ppa1e_printerproblem.pcap",
        "cs_ppa1e_evilprogram.pcap",
    ] {
        assert_eq!(security_causes(name), vec![], "{name}");
    }
}

#[test]
fn the_rat_beacons_inside_its_session_and_the_arp_poisoner_takes_over_the_gateway_traffic() {
    let r = capture_report("cs_ratinfected.pcapng");
    let c = r.c2_beaconing_detection.unwrap();
    let e = &c.beaconing_events[0];
    assert_eq!(
        (
            e.source_ip.as_str(),
            e.destination_ip.as_str(),
            e.destination_port,
            e.beacon_type.as_str()
        ),
        ("172.16.0.114", "172.16.0.111", 4433, "in_session")
    );
    assert_eq!((e.beacon_count, e.mean_size_bytes), (13, 9.0));
    assert_eq!(e.beacon_frames[..3], [13, 15, 17]);
    let a = capture_report("cs_arppoison.pcapng")
        .arp_spoofing_detection
        .unwrap();
    let e = &a.spoofing_events[0];
    assert_eq!(e.mac, "00:25:b3:bf:91:ee");
    assert_eq!(e.claimed_ips, vec!["172.16.0.1", "172.16.0.105"]);
    assert_eq!(e.previous_macs, vec!["00:26:0b:31:07:33"]);
    assert_eq!(e.first_packet, 54);
    assert_eq!(e.severity.as_str(), "high");
}
