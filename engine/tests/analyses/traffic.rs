//! burst, temporal, icmp, jitter, service_classification and ip_fragmentation on packets built
//! in the test.

use engine::sample::{icmp_echo, udp, Tcp};
use engine::{Config, Options};
use etherparse::{Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header, PacketBuilder};

use super::{report, report_with_config, C, S, T0};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn v4(a: &str) -> [u8; 4] {
    a.parse::<std::net::Ipv4Addr>().expect("address").octets()
}

fn v6(a: &str) -> [u8; 16] {
    a.parse::<std::net::Ipv6Addr>().expect("address").octets()
}

/// An IPv4 header followed by the first 8 bytes of a UDP header, as an ICMP error quotes it.
fn quoted_udp(src: &str, dst: &str, dport: u16) -> Vec<u8> {
    let mut q = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0];
    q.extend_from_slice(&v4(src));
    q.extend_from_slice(&v4(dst));
    q.extend_from_slice(&[0x9c, 0x40]);
    q.extend_from_slice(&dport.to_be_bytes());
    q.extend_from_slice(&[0, 8, 0, 0]);
    q
}

fn icmpv4(src: &str, dst: &str, icmp_type: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(v4(src), v4(dst), 64)
        .icmpv4_raw(icmp_type, code, rest)
        .write(&mut out, payload)
        .expect("frame");
    out
}

fn icmpv6(src: &str, dst: &str, icmp_type: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(v6(src), v6(dst), 64)
        .icmpv6_raw(icmp_type, code, rest)
        .write(&mut out, payload)
        .expect("frame");
    out
}

/// One IPv4 fragment of a UDP datagram: `len` payload bytes at byte `offset`.
fn fragment(id: u16, offset: u16, more: bool, len: usize) -> Vec<u8> {
    let mut ip = Ipv4Header::new(len as u16, 64, IpNumber::UDP, v4(C), v4(S)).expect("header");
    ip.identification = id;
    ip.more_fragments = more;
    ip.fragment_offset = IpFragOffset::try_new(offset / 8).expect("offset");
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = Vec::new();
    Ethernet2Header {
        source: MAC_A,
        destination: MAC_B,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut out)
    .expect("ethernet");
    ip.write(&mut out).expect("ip");
    out.extend(std::iter::repeat_n(0x55u8, len));
    out
}

#[test]
fn sixty_packets_in_one_interval_are_a_burst_against_a_quiet_background() {
    let mut f = Vec::new();
    for i in 0..10 {
        f.push((i * 1000, udp(C, 5000, S, 9000, &[0; 10])));
    }
    for i in 0..60 {
        f.push((20_000 + i, udp("10.0.0.7", 5000, S, 9000, &[0; 10])));
    }
    let b = report(&f).burst.unwrap();
    assert_eq!(b.summary.total_intervals, 11);
    assert_eq!(b.summary.burst_threshold_packets, 50.0);
    assert_eq!(b.summary.bursts_detected, 1);
    assert_eq!(b.summary.packets_in_bursts, 60);
    let burst = &b.bursts[0];
    assert_eq!(
        (burst.packet_count, burst.first_packet, burst.last_packet),
        (60, 11, 70)
    );
    assert_eq!(burst.top_sources[0].ip, "10.0.0.7");
    assert_eq!(burst.top_destinations[0].packets, 60);
    assert_eq!(burst.protocol_breakdown["UDP"], 60);
    assert_eq!(b.worst_burst.unwrap().peak_packets_per_interval, 60);
    assert_eq!(b.interval_stats.max, 60);
    assert_eq!(b.interval_stats.traffic_regularity, "very irregular");
}

#[test]
fn bursts_less_than_200_ms_apart_are_merged_into_one() {
    let mut f = Vec::new();
    for i in 0..55 {
        f.push((i, udp(C, 5000, S, 9000, &[0; 10])));
    }
    for i in 0..55 {
        f.push((200 + i, udp(C, 5000, S, 9000, &[0; 10])));
    }
    for i in 0..20 {
        f.push((1000 + i * 100, udp(C, 5000, S, 9000, &[0; 10])));
    }
    let b = report(&f).burst.unwrap();
    assert_eq!(b.summary.bursts_detected, 1);
    assert_eq!(b.bursts[0].intervals, 2);
    assert_eq!(b.bursts[0].packet_count, 110);
    assert_eq!(b.bursts[0].duration_ms, 300.0);
}

#[test]
fn steady_traffic_has_no_burst_and_is_regular() {
    let f: Vec<_> = (0..100)
        .map(|i| (i * 100, udp(C, 5000, S, 9000, &[0; 10])))
        .collect();
    let b = report(&f).burst.unwrap();
    assert_eq!(b.summary.bursts_detected, 0);
    assert_eq!(b.interval_stats.cv, 0.0);
    assert_eq!(b.interval_stats.traffic_regularity, "regular");
}

#[test]
fn the_hourly_distribution_is_in_utc_and_a_ten_second_beacon_is_periodic() {
    // T0 is 2023-11-14T22:13:20Z.
    let f: Vec<_> = (0..12)
        .map(|i| (i * 10_000, udp("10.0.0.9", 5000, S, 9000, &[0; 10])))
        .collect();
    let t = report(&f).temporal.unwrap();
    assert_eq!(t.hourly_distribution.len(), 1);
    assert_eq!(t.hourly_distribution[0].hour, 22);
    assert_eq!(t.summary.busiest_hour_utc, Some(22));
    assert_eq!(t.periodic_patterns.len(), 1);
    let p = &t.periodic_patterns[0];
    assert_eq!(
        (p.source_ip.as_str(), p.interval_seconds, p.occurrences),
        ("10.0.0.9", 10, 11)
    );
    assert_eq!(p.share_pct, 100.0);
    assert_eq!(t.summary.udp_packets, 12);
}

/// UDP frames per 60 s slot: `counts[m]` frames in minute `m`.
fn per_minute(counts: &[i64]) -> Vec<(i64, Vec<u8>)> {
    let mut f = Vec::new();
    for (m, &n) in counts.iter().enumerate() {
        for i in 0..n {
            // T0 is 20 s into a slot: +40 s starts the next one.
            f.push((
                m as i64 * 60_000 + 40_000 + i * 10,
                udp(C, 5000, S, 9000, &[0; 10]),
            ));
        }
    }
    f
}

#[test]
fn a_busy_minute_among_quiet_ones_is_a_peak() {
    let t = report(&per_minute(&[20, 20, 20, 20, 20, 200, 20, 20, 20, 20]))
        .temporal
        .unwrap();
    assert_eq!(t.slot_stats.total_slots, 10);
    assert_eq!(t.summary.peaks_detected, 1);
    assert_eq!(t.peaks[0].packets, 200);
    assert_eq!(t.peaks[0].timestamp, "2023-11-14T22:19:00.000000Z");
    assert_eq!(t.summary.valleys_detected, 0);
    assert_eq!(t.timeline.len(), 10);
}

#[test]
fn an_empty_minute_in_steady_traffic_is_a_valley() {
    let t = report(&per_minute(&[
        100, 100, 100, 100, 100, 100, 100, 100, 0, 100,
    ]))
    .temporal
    .unwrap();
    assert_eq!(t.slot_stats.total_slots, 10);
    assert_eq!(t.summary.valleys_detected, 1);
    assert_eq!(t.valleys[0].packets, 0);
    assert_eq!(t.summary.peaks_detected, 0);
}

#[test]
fn traceroute_ttl_exceeded_names_each_router_and_the_quoted_destination() {
    let q = quoted_udp(C, "8.8.8.8", 33434);
    let f = vec![
        (0, icmpv4("192.0.2.1", C, 11, 0, [0; 4], &q)),
        (5, icmpv4("192.0.2.2", C, 11, 0, [0; 4], &q)),
        (10, icmpv4("192.0.2.2", C, 11, 0, [0; 4], &q)),
        (20, icmp_echo(C, "8.8.8.8", false, 1, 1)),
    ];
    let i = report(&f).icmp.unwrap();
    assert_eq!(i.total_icmp_messages, 4);
    assert_eq!(i.ttl_exceeded_count, 3);
    assert_eq!(i.ttl_exceeded_routers, 2);
    assert_eq!(i.ttl_exceeded_hops[0].ip, "192.0.2.1");
    assert_eq!(i.ttl_exceeded_hops[1].count, 2);
    let m = &i.ttl_exceeded[0];
    assert_eq!(m.original_dst.as_deref(), Some("8.8.8.8"));
    assert_eq!(m.original_protocol.as_deref(), Some("UDP"));
    assert_eq!(m.original_dst_port, Some(33434));
    assert_eq!(m.code_name, "TTL Exceeded in Transit");
    assert_eq!(i.severity_distribution["warning"], 3);
    assert_eq!(i.severity_distribution["info"], 1);
}

#[test]
fn fragmentation_needed_reports_the_next_hop_mtu_and_a_suggestion() {
    let q = quoted_udp(C, S, 443);
    let f = vec![(0, icmpv4("192.0.2.1", C, 3, 4, [0, 0, 0x05, 0x78], &q))];
    let i = report(&f).icmp.unwrap();
    assert_eq!(i.pmtu_issues_count, 1);
    assert_eq!(i.pmtu_issues[0].mtu, Some(1400));
    assert_eq!(i.pmtu_issues[0].severity, "error");
    assert_eq!(i.dest_unreachable_count, 0);
    assert!(
        i.pmtu_suggestions[0].contains("1400"),
        "{:?}",
        i.pmtu_suggestions
    );
    assert!(
        i.pmtu_suggestions[0].contains("1360"),
        "{:?}",
        i.pmtu_suggestions
    );
}

#[test]
fn icmpv6_packet_too_big_and_unreachable_are_counted_like_icmpv4() {
    let f = vec![
        (
            0,
            icmpv6(
                "2001:db8::1",
                "2001:db8::2",
                2,
                0,
                1280u32.to_be_bytes(),
                &[0; 48],
            ),
        ),
        (
            1,
            icmpv6("2001:db8::1", "2001:db8::2", 1, 4, [0; 4], &[0; 48]),
        ),
        (
            2,
            icmpv6("2001:db8::1", "2001:db8::2", 128, 0, [0, 1, 0, 1], &[0; 8]),
        ),
    ];
    let i = report(&f).icmp.unwrap();
    assert_eq!((i.icmpv6_messages, i.icmpv4_messages), (3, 0));
    assert_eq!(i.pmtu_issues[0].mtu, Some(1280));
    assert_eq!(i.unreachable_by_code["Port Unreachable"], 1);
    assert_eq!(i.dest_unreachable[0].severity, "warning");
    assert_eq!(i.echo_requests, 1);
    assert_eq!(i.type_distribution["ICMPv6 Packet Too Big"], 1);
}

#[test]
fn unreachable_hosts_are_errors_ranked_by_quoted_destination() {
    let f = vec![
        (
            0,
            icmpv4(
                "192.0.2.1",
                C,
                3,
                1,
                [0; 4],
                &quoted_udp(C, "203.0.113.5", 53),
            ),
        ),
        (
            1,
            icmpv4(
                "192.0.2.1",
                C,
                3,
                1,
                [0; 4],
                &quoted_udp(C, "203.0.113.5", 53),
            ),
        ),
        (2, icmpv4(S, C, 3, 3, [0; 4], &quoted_udp(C, S, 9999))),
    ];
    let i = report(&f).icmp.unwrap();
    assert_eq!(i.dest_unreachable_count, 3);
    assert_eq!(i.top_unreachable_destinations[0].ip, "203.0.113.5");
    assert_eq!(i.top_unreachable_destinations[0].count, 2);
    assert_eq!(i.severity_distribution["error"], 2);
    assert_eq!(i.severity_distribution["warning"], 1);
}

/// UDP frames from C to S at the given times (ms).
fn udp_at(times: &[i64]) -> Vec<(i64, Vec<u8>)> {
    times
        .iter()
        .map(|&t| (t, udp(C, 5004, S, 5004, &[0; 160])))
        .collect()
}

#[test]
fn jitter_is_the_change_between_consecutive_inter_arrival_times() {
    let j = report(&udp_at(&[0, 20, 40, 70, 90])).jitter.unwrap();
    assert_eq!(j.total_flows, 1);
    assert_eq!(j.flows_analyzed, 1);
    let f = &j.flows_with_jitter[0];
    assert_eq!(f.jitter_samples, 3);
    assert_eq!(f.max_ms, 10.0);
    assert_eq!(f.mean_ms, 6.667);
    assert_eq!(f.p95_ms, 10.0);
    assert_eq!(f.severity, "excellent");
    assert_eq!(j.high_jitter_count, 0);
}

#[test]
fn jitter_severity_follows_the_configured_thresholds() {
    // Inter-arrival times alternate 10 and 100 ms: every sample is 90 ms.
    let frames = udp_at(&[0, 10, 110, 120, 220, 230]);
    let j = report(&frames).jitter.unwrap();
    assert_eq!(j.flows_with_jitter[0].p95_ms, 90.0);
    assert_eq!(j.flows_with_jitter[0].severity, "high");
    assert_eq!(j.high_jitter_count, 1);
    assert_eq!(j.high_jitter_flows[0].src, "10.0.0.1:5004");

    let mut config = Config::default();
    config.thresholds.jitter_warning = 0.2;
    config.thresholds.jitter_critical = 0.4;
    let j = report_with_config(&frames, &config, &Options::default())
        .jitter
        .unwrap();
    assert_eq!(j.flows_with_jitter[0].severity, "excellent");
    assert_eq!(j.high_jitter_count, 0);
    assert_eq!(j.thresholds.jitter_warning_ms, 200.0);
}

#[test]
fn a_gap_over_a_minute_starts_a_new_jitter_session() {
    let j = report(&udp_at(&[0, 10, 20, 80_000, 80_010, 80_030]))
        .jitter
        .unwrap();
    let f = &j.flows_with_jitter[0];
    assert_eq!(f.sessions, 2);
    assert_eq!(f.jitter_samples, 2);
    assert_eq!(f.max_ms, 10.0);
    assert_eq!(j.sessions_split_by_gap, 1);
}

#[test]
fn a_known_destination_port_wins_with_full_confidence() {
    let f = vec![
        (0, Tcp::new(C, 40000, S, 6379).seq(1).payload(20).frame()),
        (
            1,
            Tcp::new(S, 6379, C, 40000)
                .seq(1)
                .ack(21)
                .payload(20)
                .frame(),
        ),
    ];
    let s = report(&f).service_classification.unwrap();
    assert_eq!(s.total_flows, 2);
    assert_eq!(s.service_classifications["Redis"], 2);
    let by_dst = s
        .classified_flows
        .iter()
        .find(|c| c.confidence == 1.0)
        .unwrap();
    assert_eq!(by_dst.dst, "10.0.0.2:6379");
    let by_src = s
        .classified_flows
        .iter()
        .find(|c| c.confidence == 0.9)
        .unwrap();
    assert_eq!(by_src.src, "10.0.0.2:6379");
    assert_eq!(s.classification_summary.classification_rate, 100.0);
}

#[test]
fn small_packets_every_20_ms_on_unknown_ports_are_voip_and_a_lone_segment_is_unknown() {
    let mut f: Vec<_> = (0..30)
        .map(|i| (i * 20, udp(C, 40002, S, 40004, &[0; 160])))
        .collect();
    f.push((700, Tcp::new(C, 41000, S, 41001).seq(1).frame()));
    let s = report(&f).service_classification.unwrap();
    assert_eq!(s.service_classifications["VoIP"], 1);
    assert_eq!(s.classified_flows[0].method, "behaviour");
    assert_eq!(s.classified_flows[0].confidence, 1.0);
    assert_eq!(s.service_classifications["Unknown"], 1);
    assert_eq!(s.unknown_flows[0].dst, "10.0.0.2:41001");
    assert_eq!(s.classification_summary.classified_by_behaviour, 1);
    assert_eq!(s.classification_summary.classification_rate, 50.0);
}

#[test]
fn two_fragments_reassemble_into_one_datagram() {
    let f = vec![
        (0, fragment(7, 0, true, 1480)),
        (1, fragment(7, 1480, false, 520)),
    ];
    let r = report(&f);
    let x = r.ip_fragmentation.unwrap();
    assert_eq!(
        (
            x.total_fragments,
            x.fragmented_packets,
            x.reassembled_datagrams
        ),
        (2, 1, 1)
    );
    assert_eq!(x.largest_datagram_bytes, 2000);
    assert_eq!(x.fragmentation_rate, 100.0);
    assert_eq!(x.flows_with_fragmentation, 1);
    assert_eq!(x.details[0].status, "reassembled");
    assert_eq!(
        (x.details[0].first_packet, x.details[0].last_packet),
        (1, 2)
    );
    assert_eq!(
        x.details[0].display_filter,
        "ip.src == 10.0.0.1 && ip.dst == 10.0.0.2 && ip.id == 0x0007"
    );
}

#[test]
fn overlapping_and_tiny_fragments_are_flagged() {
    let f = vec![
        (0, fragment(9, 0, true, 16)),
        (1, fragment(9, 8, true, 800)),
        (2, fragment(9, 808, false, 100)),
    ];
    let x = report(&f).ip_fragmentation.unwrap();
    assert_eq!(x.tiny_fragments, 1);
    assert_eq!(x.overlapping_fragments, 1);
    assert_eq!(x.reassembled_datagrams, 1);
    assert!(x.details[0].overlapping);
}

#[test]
fn a_datagram_missing_its_last_fragment_times_out_after_30_seconds() {
    let f = vec![
        (0, fragment(11, 0, true, 1480)),
        (31_000, fragment(12, 0, true, 1480)),
        (31_001, fragment(12, 1480, false, 100)),
        (31_002, udp(C, 1, S, 2, &[0; 4])),
    ];
    let x = report(&f).ip_fragmentation.unwrap();
    assert_eq!(x.fragmented_packets, 2);
    assert_eq!(x.reassembly_timeouts, 1);
    assert_eq!(x.incomplete_datagrams, 1);
    assert_eq!(x.reassembled_datagrams, 1);
    assert_eq!(x.details[0].status, "timeout");
    assert_eq!(x.details[0].identification, 11);
    assert_eq!(x.total_ip_packets, 4);
}

#[test]
fn a_capture_without_fragments_or_icmp_reports_zeros() {
    let f = vec![(0, udp(C, 1, S, 2, &[0; 4]))];
    let r = report(&f);
    assert_eq!(r.ip_fragmentation.unwrap().total_fragments, 0);
    assert_eq!(r.icmp.unwrap().total_icmp_messages, 0);
    let _ = T0;
}
