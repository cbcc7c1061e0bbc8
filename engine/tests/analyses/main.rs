//! Each analysis on packets built in the test, with the exact values expected.

mod render;

use engine::sample::{dns, icmp_echo, udp, PcapWriter, Tcp, MS};
use engine::{analyze, Config, Options, Report};

mod diagnosis;
mod security;
mod tcp_analyses;
mod traffic;

pub(crate) const T0: i64 = 1_700_000_000 * 1_000_000_000;
pub(crate) const C: &str = "10.0.0.1";
pub(crate) const S: &str = "10.0.0.2";

pub(crate) fn report(frames: &[(i64, Vec<u8>)]) -> Report {
    report_with(frames, &Options::default())
}

pub(crate) fn report_with(frames: &[(i64, Vec<u8>)], options: &Options) -> Report {
    report_with_config(frames, &Config::default(), options)
}

pub(crate) fn report_with_config(
    frames: &[(i64, Vec<u8>)],
    config: &Config,
    options: &Options,
) -> Report {
    let mut w = PcapWriter::default();
    for (ms, f) in frames {
        w.frame(T0 + ms * MS, f);
    }
    analyze(&w.bytes[..], config, options).expect("valid capture")
}

/// A handshake on port 80 with client ISN 100 and server ISN 1000, at 0, 10 and 11 ms.
pub(crate) fn handshake() -> Vec<(i64, Vec<u8>)> {
    vec![
        (0, Tcp::new(C, 40000, S, 80).seq(100).syn().frame()),
        (
            10,
            Tcp::new(S, 80, C, 40000).seq(1000).ack(101).syn().frame(),
        ),
        (11, Tcp::new(C, 40000, S, 80).seq(101).ack(1001).frame()),
    ]
}

pub(crate) fn server_data(ms: i64, seq: u32) -> (i64, Vec<u8>) {
    (
        ms,
        Tcp::new(S, 80, C, 40000)
            .seq(seq)
            .ack(101)
            .payload(1000)
            .frame(),
    )
}

pub(crate) fn client_ack(ms: i64, ack: u32) -> (i64, Vec<u8>) {
    (ms, Tcp::new(C, 40000, S, 80).seq(101).ack(ack).frame())
}

#[test]
fn a_retransmission_after_three_duplicate_acks_is_fast() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push(server_data(21, 3001)); // 2001..3001 was lost upstream
    f.push(client_ack(30, 2001));
    f.push(client_ack(31, 2001));
    f.push(client_ack(32, 2001));
    f.push(client_ack(33, 2001));
    f.push(server_data(40, 2001));
    let r = report(&f);
    let rt = r.retransmission.unwrap();
    assert_eq!(rt.total_retransmissions, 1);
    assert_eq!(rt.fast_retrans_count, 1);
    assert_eq!(rt.anomaly_types["dup_ack"], 3);
    assert_eq!(rt.anomaly_types["lost_segment"], 1);
    assert_eq!(rt.retransmissions[0].retrans_type, "fast_retransmission");
    assert_eq!(rt.retransmissions[0].packet_num, 10);
}

#[test]
fn a_retransmission_after_200_ms_without_duplicate_acks_is_a_timeout() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push(server_data(220, 1001));
    let rt = report(&f).retransmission.unwrap();
    assert_eq!(rt.total_retransmissions, 1);
    assert_eq!(rt.fast_retrans_count, 0);
    assert_eq!(rt.rto_count, 1);
    let e = &rt.retransmissions[0];
    assert_eq!(e.retrans_type, "rto");
    assert_eq!(e.delay_ms, 200.0);
    assert_eq!(e.original_packet_num, 4);
}

#[test]
fn data_already_acknowledged_is_a_spurious_retransmission() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push(client_ack(30, 2001));
    f.push(server_data(300, 1001));
    let rt = report(&f).retransmission.unwrap();
    assert_eq!(rt.spurious_count, 1);
    assert_eq!(rt.total_retransmissions, 1);
}

#[test]
fn a_late_segment_within_the_handshake_rtt_is_out_of_order_not_a_retransmission() {
    let mut f = handshake();
    f.push(server_data(20, 2001));
    f.push(server_data(21, 1001));
    let rt = report(&f).retransmission.unwrap();
    assert_eq!(rt.anomaly_types["out_of_order"], 1);
    assert_eq!(rt.anomaly_types["lost_segment"], 1);
    assert_eq!(rt.total_retransmissions, 0);
}

#[test]
fn a_syn_retransmitted_with_the_same_isn_stays_in_its_stream_and_a_new_isn_starts_another() {
    let f = vec![
        (0, Tcp::new(C, 40000, S, 80).seq(100).syn().frame()),
        (1000, Tcp::new(C, 40000, S, 80).seq(100).syn().frame()),
        (5000, Tcp::new(C, 40000, S, 80).seq(90_000).syn().frame()),
    ];
    let r = report(&f);
    assert_eq!(r.conversations.as_ref().unwrap().tcp_streams, 2);
    let rt = r.retransmission.unwrap();
    assert_eq!(rt.syn_retrans_count, 1);
    assert_eq!(rt.total_retransmissions, 1);
    assert_eq!(r.tcp_handshake.unwrap().syn_packets, 3);
}

#[test]
fn a_slow_synack_is_a_slow_handshake_blamed_on_the_network_below_half_a_second() {
    let f = vec![
        (0, Tcp::new(C, 40000, S, 80).seq(100).syn().frame()),
        (
            150,
            Tcp::new(S, 80, C, 40000).seq(1000).ack(101).syn().frame(),
        ),
        (151, Tcp::new(C, 40000, S, 80).seq(101).ack(1001).frame()),
    ];
    let h = report(&f).tcp_handshake.unwrap();
    assert_eq!(
        (h.total_handshakes, h.complete_handshakes, h.slow_handshakes),
        (1, 1, 1)
    );
    assert_eq!(h.handshakes[0].suspected_side, "network");
    assert_eq!(h.handshakes[0].syn_to_synack_ms, Some(150.0));
    assert_eq!(h.initial_rtt.count, 1);
    assert_eq!(h.initial_rtt.mean_ms, 151.0);
}

#[test]
fn a_fast_handshake_is_not_slow_and_its_initial_rtt_is_syn_to_ack() {
    let h = report(&handshake()).tcp_handshake.unwrap();
    assert_eq!(
        (h.syn_packets, h.synack_packets, h.slow_handshakes),
        (1, 1, 0)
    );
    assert_eq!(h.initial_rtt.mean_ms, 11.0);
}

#[test]
fn dns_answers_errors_and_timeouts_are_told_apart() {
    let f = vec![
        (0, udp(C, 5000, S, 53, &dns(1, false, 0, "ok.example", 1))),
        (20, udp(S, 53, C, 5000, &dns(1, true, 0, "ok.example", 1))),
        (
            30,
            udp(C, 5001, S, 53, &dns(2, false, 0, "missing.example", 1)),
        ),
        (
            70,
            udp(S, 53, C, 5001, &dns(2, true, 3, "missing.example", 1)),
        ),
        (
            100,
            udp(C, 5002, S, 53, &dns(3, false, 0, "lost.example", 28)),
        ),
        (
            7000,
            udp(C, 5003, S, 53, &dns(4, false, 0, "late.example", 1)),
        ),
        (
            8500,
            udp(S, 53, C, 5003, &dns(4, true, 0, "late.example", 1)),
        ),
    ];
    let d = report(&f).dns.unwrap();
    assert_eq!((d.total_queries, d.total_responses), (4, 3));
    assert_eq!(d.error_transactions, 1);
    assert_eq!(d.error_types_breakdown["NXDOMAIN"], 1);
    assert_eq!(d.timeout_transactions, 1);
    assert_eq!(d.timeout_details[0].query_name, "lost.example");
    assert_eq!(d.slow_transactions, 1);
    assert_eq!(d.response_time_statistics.count, 3);
    assert_eq!(d.response_time_statistics.mean, 520.0);
}

#[test]
fn a_gap_names_the_previous_frame_of_its_own_flow() {
    let mut f = handshake();
    f.push((12, icmp_echo(C, S, false, 1, 1)));
    f.push(server_data(3100, 1001));
    let t = report(&f).timestamps.unwrap();
    assert_eq!(t.gaps_detected, 1);
    assert_eq!(t.gaps[0].packet_num_before, 3);
    assert_eq!(t.gaps[0].packet_num_after, 5);
    assert_eq!(t.gaps[0].protocol, "TCP");
    assert_eq!(t.max_gap_seconds, Some(3.088));
}

#[test]
fn latency_replaces_the_per_protocol_gap_thresholds() {
    let mut f = handshake();
    f.push(server_data(1011, 1001));
    let options = Options {
        latency: Some(0.5),
        ..Options::default()
    };
    let t = report_with(&f, &options).timestamps.unwrap();
    assert_eq!(t.gaps_detected, 1);
    assert_eq!(t.gap_threshold_seconds, Some(0.5));
    assert_eq!(report(&f).timestamps.unwrap().gaps_detected, 0);
}

#[test]
fn top_talkers_rank_by_bytes_and_count_both_directions() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push((30, udp("10.0.0.9", 1234, S, 9999, &[0; 10])));
    let t = report(&f).top_talkers.unwrap();
    assert_eq!(t.top_ips[0].ip, S);
    assert_eq!(t.top_ips[0].packets, 5);
    assert_eq!(t.top_ips[1].ip, C);
    assert_eq!(t.total_ips, 3);
}

#[test]
fn protocols_and_conversations_are_counted_per_frame_and_per_tuple() {
    let mut f = handshake();
    f.push((20, udp(C, 5000, S, 53, &dns(1, false, 0, "a.example", 1))));
    f.push((21, udp(C, 5000, S, 53, &dns(2, false, 0, "b.example", 1))));
    f.push((22, icmp_echo(C, "10.0.0.3", false, 1, 1)));
    let r = report(&f);
    let pd = r.protocol_distribution.unwrap();
    assert_eq!(
        (
            pd.layer4_distribution["TCP"],
            pd.layer4_distribution["UDP"],
            pd.layer4_distribution["ICMP"]
        ),
        (3, 2, 1)
    );
    assert_eq!(pd.layer3_distribution["IPv4"], 6);
    let c = r.conversations.unwrap();
    assert_eq!((c.tcp, c.udp, c.ip), (1, 1, 2));
}
