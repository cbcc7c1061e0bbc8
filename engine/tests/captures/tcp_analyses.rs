//! rtt, tcp_window, tcp_reset, throughput, syn_retransmissions, tcp_timeout, sack and
//! asymmetric_traffic on real captures (facts checked with tshark).

use super::capture_report;

#[test]
fn a_zero_window_never_reopened_is_reported_as_never_recovered() {
    let w = capture_report("cs_tcp_zerowindowdead.pcapng")
        .tcp_window
        .unwrap();
    // tshark: tcp.analysis.zero_window on frames 2, 4, 6 and 8; the sender probes with
    // keep-alives at 3.4, 10.2 and 23.7 s.
    assert_eq!(w.zero_window_packets, 4);
    assert_eq!(w.never_recovered_zero_windows, 1);
    let p = &w.zero_window_periods[0];
    assert_eq!(p.advertiser, "172.31.136.85:38760");
    assert_eq!((p.start_packet_num, p.end_packet_num), (2, None));
    assert!(!p.recovered);
    assert_eq!(p.zero_window_probes, 3);
    assert!((p.duration_seconds - 23.7315).abs() < 0.001);
    assert_eq!(w.critical_zero_windows.len(), 1);
}

#[test]
fn a_zero_window_that_reopens_recovers() {
    let w = capture_report("cs_tcp_zerowindowrecovery.pcapng")
        .tcp_window
        .unwrap();
    assert_eq!(w.zero_window_packets, 1);
    assert_eq!(w.never_recovered_zero_windows, 0);
    let p = &w.zero_window_periods[0];
    assert!(p.recovered);
    assert_eq!((p.start_packet_num, p.end_packet_num), (4, Some(5)));
}

#[test]
fn low_windows_count_scaled_windows_like_tshark_window_size() {
    // tshark: tcp.window_size (scaled) in (0, 8192) on 363 non-SYN, non-RST frames.
    let w = capture_report("cs_http_espn.pcapng").tcp_window.unwrap();
    assert_eq!(w.low_window_packets, 363);
    assert_eq!(w.zero_window_packets, 0);
}

#[test]
fn a_refused_connection_is_a_premature_reset_and_zeek_rej() {
    let r = capture_report("cs_tcp_refuseconnection.pcapng");
    let rs = r.tcp_reset.unwrap();
    assert_eq!(
        (rs.total_resets, rs.premature_resets, rs.connection_refused),
        (1, 1, 1)
    );
    assert_eq!(rs.reset_details[0].sender, "server");
    let t = r.tcp_timeout.unwrap();
    assert_eq!(t.conn_state_distribution["REJ"], 1);
}

#[test]
fn a_syn_scan_is_mostly_unanswered_attempts() {
    let t = capture_report("cs_synscan.pcapng").tcp_timeout.unwrap();
    assert_eq!(t.total_connections, 1994);
    assert_eq!(t.conn_state_distribution["S0"], 1986);
    assert_eq!(t.conn_state_distribution["REJ"], 5);
    assert_eq!(t.connections_listed_total, 1994);
    assert_eq!(t.connections.len(), 100);
}

#[test]
fn a_clean_handshake_stays_quiet() {
    let r = capture_report("cs_tcp_handshake.pcapng");
    let w = r.tcp_window.unwrap();
    assert_eq!(
        (
            w.zero_window_packets,
            w.low_window_packets,
            w.total_window_events
        ),
        (0, 0, 0)
    );
    let rs = r.tcp_reset.unwrap();
    assert_eq!(rs.total_resets, 0);
    let s = r.syn_retransmissions.unwrap();
    assert_eq!(s.total_connections_recorded, 0);
    let t = r.tcp_timeout.unwrap();
    assert_eq!(t.problematic_count, 0);
    assert_eq!(t.conn_state_distribution["S1"], 1);
    let a = r.asymmetric_traffic.unwrap();
    assert_eq!(a.asymmetric_flows, 0);
    assert_eq!(r.rtt.unwrap().flows_with_high_rtt, 0);
    assert_eq!(r.sack.unwrap().flows_sack_negotiated, 1);
}

#[test]
fn a_teardown_ends_in_zeek_sf_and_v5_closed_fin() {
    let t = capture_report("cs_tcp_teardown.pcapng")
        .tcp_timeout
        .unwrap();
    assert_eq!(t.conn_state_distribution["SF"], 1);
    assert_eq!(t.categories.closed_fin_count, 1);
}

#[test]
fn a_web_page_load_gives_rtts_a_chart_and_per_flow_throughput() {
    let r = capture_report("cs_http_espn.pcapng");
    let rtt = r.rtt.unwrap();
    assert_eq!(rtt.total_flows, 25);
    assert_eq!(rtt.rtt_over_time.len(), 5);
    assert!(rtt
        .rtt_over_time
        .iter()
        .all(|s| !s.points.is_empty() && s.points.len() <= 200));
    let th = r.throughput.unwrap();
    assert_eq!(th.total_flows, 39);
    assert!(th.timeline.points.len() <= 600);
    let frames: u64 = th.timeline.points.iter().map(|p| p.packets).sum();
    assert_eq!(frames, r.metadata.total_packets);
    assert_eq!(th.global_throughput.total_packets, r.metadata.total_packets);
    // Page downloads: the server side sends almost everything.
    assert!(r.asymmetric_traffic.unwrap().asymmetric_flows > 0);
}
