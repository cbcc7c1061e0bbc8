//! burst, temporal, icmp, jitter, service_classification and ip_fragmentation on real captures
//! (facts checked with tshark).

use super::capture_report;

#[test]
fn traceroute_shows_ttl_exceeded_from_each_hop_in_path_order() {
    let i = capture_report("cs_icmp_traceroute.pcapng").icmp.unwrap();
    // tshark -Y "icmp.type==11": 24 frames from 8 routers, 3 probes each.
    assert_eq!(i.ttl_exceeded_count, 24);
    assert_eq!(i.ttl_exceeded_routers, 8);
    let hops: Vec<&str> = i.ttl_exceeded_hops.iter().map(|h| h.ip.as_str()).collect();
    assert_eq!(
        &hops[..3],
        ["192.168.100.1", "12.180.241.1", "12.153.21.202"]
    );
    assert!(i.ttl_exceeded_hops.iter().all(|h| h.count == 3));
    assert_eq!(i.ttl_exceeded[0].original_dst.as_deref(), Some("4.2.2.1"));
    assert_eq!(i.echo_requests, 27);
    assert_eq!(i.pmtu_issues_count, 0);
}

#[test]
fn ipv4_fragments_of_a_large_ping_are_reassembled() {
    let x = capture_report("cs_ip_frag_source.pcapng")
        .ip_fragmentation
        .unwrap();
    // Two 3508-byte ICMP datagrams (request and reply) in three fragments each.
    assert_eq!((x.total_fragments, x.ipv4_fragments), (6, 6));
    assert_eq!(x.fragmented_packets, 2);
    assert_eq!(x.reassembled_datagrams, 2);
    assert_eq!(x.largest_datagram_bytes, 3508);
    assert_eq!(
        (
            x.reassembly_timeouts,
            x.overlapping_fragments,
            x.tiny_fragments
        ),
        (0, 0, 0)
    );
    assert_eq!(x.details[0].protocol, "ICMP");
    assert_eq!(
        x.details[0].display_filter,
        "ip.src == 10.10.0.3 && ip.dst == 192.168.0.128 && ip.id == 0x7474"
    );
}

#[test]
fn ipv6_fragments_are_counted_and_their_pings_seen_as_icmpv6() {
    let r = capture_report("cs_ipv6_fragments.pcapng");
    let x = r.ip_fragmentation.unwrap();
    assert_eq!((x.total_fragments, x.ipv6_fragments), (20, 20));
    assert_eq!((x.fragmented_packets, x.reassembled_datagrams), (10, 10));
    assert_eq!(x.flows_with_fragmentation, 2);
    let i = r.icmp.unwrap();
    assert_eq!(
        (i.icmpv6_messages, i.echo_requests, i.echo_replies),
        (12, 5, 5)
    );
}

#[test]
fn a_lone_handshake_is_quiet_for_every_traffic_analysis() {
    let r = capture_report("cs_tcp_handshake.pcapng");
    assert_eq!(r.burst.unwrap().summary.bursts_detected, 0);
    let t = r.temporal.unwrap();
    assert_eq!(
        (t.summary.peaks_detected, t.summary.valleys_detected),
        (0, 0)
    );
    assert!(t.periodic_patterns.is_empty());
    assert_eq!(r.icmp.unwrap().total_icmp_messages, 0);
    assert_eq!(r.ip_fragmentation.unwrap().total_fragments, 0);
    assert_eq!(r.jitter.unwrap().high_jitter_count, 0);
    let s = r.service_classification.unwrap();
    assert_eq!(s.service_classifications["HTTP"], 2);
}

#[test]
fn a_rat_beaconing_every_ten_seconds_is_periodic_and_its_downloads_are_bursts() {
    let r = capture_report("cs_ratinfected.pcapng");
    let t = r.temporal.unwrap();
    // tshark: 172.16.0.114 sends data at 0, 10, 20, ... 70 s.
    let p = t
        .periodic_patterns
        .iter()
        .find(|p| p.source_ip == "172.16.0.114")
        .expect("beacon found");
    assert_eq!(p.interval_seconds, 10);
    let b = r.burst.unwrap();
    assert!(b.summary.bursts_detected >= 1);
    assert_eq!(b.bursts[0].top_sources[0].ip, "172.16.0.114");
    assert_eq!(b.interval_stats.traffic_regularity, "very irregular");
}

#[test]
fn a_syn_scan_touches_many_ports_that_stay_unclassified() {
    let r = capture_report("cs_synscan.pcapng");
    let s = r.service_classification.unwrap();
    assert_eq!(s.total_flows, 2002);
    assert!(s.classification_summary.classification_rate < 5.0);
    assert_eq!(s.service_classifications["SSH"], 2);
    // One SYN per port: no flow has three packets, so no jitter sample.
    assert_eq!(r.jitter.unwrap().flows_analyzed, 0);
    assert_eq!(r.icmp.unwrap().total_icmp_messages, 0);
}

#[test]
fn ntp_is_recognised_by_its_port() {
    let s = capture_report("pp_ntp.pcap")
        .service_classification
        .unwrap();
    assert_eq!(s.service_classifications["NTP"], s.total_flows);
    assert_eq!(s.classification_summary.classified_by_port, s.total_flows);
}
