//! rtt, tcp_window, tcp_reset, throughput, syn_retransmissions, tcp_timeout, sack and
//! asymmetric_traffic on packets built in the test.

use engine::sample::Tcp;
use engine::Options;

use super::{client_ack, handshake, report, report_with, server_data, C, S};

fn syn(ms: i64) -> (i64, Vec<u8>) {
    (ms, Tcp::new(C, 40000, S, 80).seq(100).syn().frame())
}

fn synack(ms: i64) -> (i64, Vec<u8>) {
    (
        ms,
        Tcp::new(S, 80, C, 40000).seq(1000).ack(101).syn().frame(),
    )
}

/// A handshake where both sides announce window scale 7 (windows count in units of 128 bytes).
fn scaled_handshake() -> Vec<(i64, Vec<u8>)> {
    handshake_with_scales(7, 7)
}

/// A handshake where the client and the server announce these window scales.
fn handshake_with_scales(client: u8, server: u8) -> Vec<(i64, Vec<u8>)> {
    vec![
        (
            0,
            Tcp::new(C, 40000, S, 80)
                .seq(100)
                .syn()
                .wscale(client)
                .frame(),
        ),
        (
            10,
            Tcp::new(S, 80, C, 40000)
                .seq(1000)
                .ack(101)
                .syn()
                .wscale(server)
                .frame(),
        ),
        (11, Tcp::new(C, 40000, S, 80).seq(101).ack(1001).frame()),
    ]
}

fn client_window(ms: i64, ack: u32, window: u16) -> (i64, Vec<u8>) {
    (
        ms,
        Tcp::new(C, 40000, S, 80)
            .seq(101)
            .ack(ack)
            .window(window)
            .frame(),
    )
}

#[test]
fn rtt_is_data_segment_to_its_ack_and_feeds_the_chart_series() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push(client_ack(70, 2001));
    let r = report(&f).rtt.unwrap();
    assert_eq!(r.total_measurements, 1);
    assert_eq!(r.total_flows, 1);
    assert_eq!(r.global_statistics.max_rtt_ms, 50.0);
    assert_eq!(r.flow_statistics[0].mean_rtt_ms, 50.0);
    assert_eq!(r.flow_statistics[0].flow, "10.0.0.2:80 <-> 10.0.0.1:40000");
    assert_eq!(r.flow_statistics[0].rtt_spikes, 0);
    assert_eq!(r.rtt_over_time.len(), 1);
    assert_eq!(r.rtt_over_time[0].points, vec![[0.07, 50.0]]);
    assert_eq!(r.flows_with_high_rtt, 0);
}

#[test]
fn an_rtt_above_the_warning_is_a_spike_and_above_the_critical_is_listed() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push(client_ack(620, 2001));
    let r = report(&f).rtt.unwrap();
    assert_eq!(r.flow_statistics[0].rtt_spikes, 1);
    assert_eq!(r.critical_measurements, 1);
    assert_eq!(r.flows_with_high_rtt, 1);
    let m = &r.critical_rtt_details[0];
    assert_eq!(
        (m.data_packet_num, m.ack_packet_num, m.rtt_ms),
        (4, 5, 600.0)
    );
}

#[test]
fn latency_filters_the_listed_rtts_but_not_the_statistics() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push(client_ack(70, 2001));
    let options = Options {
        latency: Some(0.2),
        ..Options::default()
    };
    let r = report_with(&f, &options).rtt.unwrap();
    assert_eq!(r.total_measurements, 1);
    assert_eq!(r.global_statistics.mean_rtt_ms, 50.0);
    assert!(r.measurements.is_empty());
    assert_eq!(r.thresholds.latency_filter, Some(0.2));
}

#[test]
fn a_window_advertised_with_scale_7_is_judged_in_real_bytes() {
    let mut f = scaled_handshake();
    // 100 × 128 = 12 800 bytes: fine although the raw field (100) is far below 8192.
    f.push(client_window(20, 1001, 100));
    // 16 × 128 = 2 048 bytes: low.
    f.push(client_window(30, 1001, 16));
    let w = report(&f).tcp_window.unwrap();
    assert_eq!(w.low_window_packets, 1);
    assert_eq!(w.flows_with_low_window, 1);
    assert_eq!(w.window_events[0].event_type, "low_window");
    assert_eq!(w.window_events[0].window_bytes, 2048);
    assert_eq!(w.window_events[0].packet_num, 5);
    assert_eq!(w.flows_with_issues, 0);
}

#[test]
fn a_zero_window_that_reopens_is_a_recovered_period_with_its_probes() {
    let mut f = scaled_handshake();
    f.push(client_window(20, 1001, 0));
    // Zero window probe: one byte at the next sequence number.
    f.push((
        120,
        Tcp::new(S, 80, C, 40000)
            .seq(1001)
            .ack(101)
            .payload(1)
            .frame(),
    ));
    f.push(client_window(270, 1001, 512));
    let w = report(&f).tcp_window.unwrap();
    assert_eq!(w.zero_window_packets, 1);
    assert_eq!(w.zero_window_probes, 1);
    assert_eq!(w.flows_with_issues, 1);
    assert_eq!(w.significant_zero_windows, 1);
    assert_eq!(w.never_recovered_zero_windows, 0);
    let p = &w.zero_window_periods[0];
    assert_eq!(p.advertiser, "10.0.0.1:40000");
    assert_eq!((p.start_packet_num, p.end_packet_num), (4, Some(6)));
    assert_eq!(p.duration_seconds, 0.25);
    assert!(p.recovered);
    assert_eq!(p.zero_window_probes, 1);
    assert_eq!(w.critical_zero_windows.len(), 1);
}

#[test]
fn a_zero_window_never_reopened_did_not_recover_and_lasts_until_the_capture_end() {
    let mut f = scaled_handshake();
    f.push(client_window(20, 1001, 0));
    f.push((
        1020,
        Tcp::new(S, 80, C, 40000)
            .seq(1001)
            .ack(101)
            .payload(1)
            .frame(),
    ));
    f.push(client_window(1021, 1001, 0));
    let w = report(&f).tcp_window.unwrap();
    assert_eq!(w.never_recovered_zero_windows, 1);
    let p = &w.zero_window_periods[0];
    assert!(!p.recovered);
    assert_eq!(p.ended_by, "capture_end");
    assert_eq!(p.duration_seconds, 1.001);
    assert_eq!(p.end_packet_num, None);
}

#[test]
fn a_reset_before_any_payload_is_premature_and_after_payload_is_post_data() {
    let mut f = handshake();
    f.push((
        20,
        Tcp::new(S, 80, C, 40000).seq(1001).ack(101).rst().frame(),
    ));
    let r = report(&f).tcp_reset.unwrap();
    assert_eq!(
        (r.total_resets, r.premature_resets, r.post_data_resets),
        (1, 1, 0)
    );
    assert_eq!(r.reset_details[0].sender, "server");
    assert!(!r.reset_details[0].connection_refused);

    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push((
        30,
        Tcp::new(C, 40000, S, 80).seq(101).ack(2001).rst().frame(),
    ));
    let r = report(&f).tcp_reset.unwrap();
    assert_eq!((r.premature_resets, r.post_data_resets), (0, 1));
    assert_eq!(r.reset_details[0].sender, "client");
    assert_eq!(r.reset_details[0].packet_num, 5);
    assert_eq!(r.top_reset_flows[0].client, "10.0.0.1:40000");
}

#[test]
fn a_reset_answering_a_syn_is_a_refused_connection() {
    let f = vec![
        syn(0),
        (1, Tcp::new(S, 80, C, 40000).seq(0).ack(101).rst().frame()),
    ];
    let r = report(&f).tcp_reset.unwrap();
    assert_eq!(
        (r.total_resets, r.connection_refused, r.flows_with_resets),
        (1, 1, 1)
    );
    assert_eq!(r.reset_details[0].timestamp, "2023-11-14T22:13:20.001000Z");
}

#[test]
fn a_long_thin_flow_is_slow_and_the_timeline_counts_every_frame() {
    let mut f = handshake();
    for i in 0..12u32 {
        f.push(server_data(100 + i64::from(i) * 200, 1001 + i * 1000));
    }
    let frame_len = |i: usize| f[i].1.len() as u64;
    let total: u64 = (0..f.len()).map(frame_len).sum();
    let t = report(&f).throughput.unwrap();
    assert_eq!(t.total_flows, 1);
    assert_eq!(t.global_throughput.total_packets, 15);
    assert_eq!(t.global_throughput.total_bytes, total);
    assert_eq!(t.top_flows[0].total_bytes, total);
    assert_eq!(t.top_flows[0].src, "10.0.0.1:40000");
    assert_eq!(t.top_flows[0].duration_seconds, 2.3);
    assert_eq!(t.slow_flows_count, 1);
    assert_eq!(t.slow_flows[0].flow, "10.0.0.1:40000 <-> 10.0.0.2:80");
    // 2.3 s in 1 ms buckets would be 2 300 points: widened to 10 ms buckets.
    assert_eq!(t.timeline.bucket_seconds, 0.01);
    assert_eq!(t.timeline.points.len(), 231);
    assert_eq!(t.timeline.points.iter().map(|p| p.packets).sum::<u64>(), 15);
    assert_eq!(
        (t.timeline.points[0].packets, t.timeline.points[1].packets),
        (1, 2)
    );
    assert_eq!(t.timeline.points[10].t, 0.1);
}

#[test]
fn a_syn_retransmitted_at_1_s_and_3_s_follows_rfc_6298_backoff() {
    let f = vec![
        syn(0),
        syn(1000),
        syn(3000),
        synack(3010),
        (3011, Tcp::new(C, 40000, S, 80).seq(101).ack(1001).frame()),
    ];
    let s = report(&f).syn_retransmissions.unwrap();
    assert_eq!(s.total_syn_retransmissions, 2);
    assert_eq!(s.total_connections_recorded, 1);
    let c = &s.all_retransmissions[0];
    assert_eq!(c.intervals_seconds, vec![1.0, 2.0]);
    assert_eq!(c.rfc_analysis.backoff_ratios, vec![2.0]);
    assert_eq!(c.rfc_analysis.initial_rto_seconds, Some(1.0));
    assert!(c.rfc_analysis.rfc_6298_compliant);
    assert_eq!(c.issue_type, "server_delayed_response");
    assert_eq!(c.severity, "medium");
    assert_eq!(c.total_delay_seconds, 3.01);
    assert_eq!((c.first_syn_packet_num, c.synack_packet_num), (1, Some(4)));
    assert_eq!(s.rfc_6298_analysis.compliant, 1);
    assert_eq!(s.rfc_6298_analysis.compliance_rate_pct, 100.0);
}

#[test]
fn an_unanswered_syn_retried_too_fast_is_critical_and_not_compliant() {
    let f = vec![syn(0), syn(200), syn(400)];
    let s = report(&f).syn_retransmissions.unwrap();
    let c = &s.all_retransmissions[0];
    assert_eq!(c.issue_type, "no_synack_received");
    assert_eq!(c.severity, "critical");
    assert!(!c.synack_received);
    assert!(!c.rfc_analysis.initial_rto_ok);
    assert_eq!(c.rfc_analysis.backoff_ratios, vec![1.0]);
    assert!(!c.rfc_analysis.backoff_ok);
    assert_eq!(s.rfc_6298_analysis.non_compliant, 1);
}

#[test]
fn a_fast_answered_syn_is_not_recorded() {
    let s = report(&handshake()).syn_retransmissions.unwrap();
    assert_eq!(
        (s.total_syn_retransmissions, s.total_connections_recorded),
        (0, 0)
    );
}

#[test]
fn a_connection_closed_by_both_fins_is_sf_and_closed_fin_with_zeek_history() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push(client_ack(30, 2001));
    f.push((
        40,
        Tcp::new(C, 40000, S, 80).seq(101).ack(2001).fin().frame(),
    ));
    f.push((
        50,
        Tcp::new(S, 80, C, 40000).seq(2001).ack(102).fin().frame(),
    ));
    f.push((60, Tcp::new(C, 40000, S, 80).seq(102).ack(2002).frame()));
    let t = report(&f).tcp_timeout.unwrap();
    assert_eq!(t.total_connections, 1);
    assert_eq!(t.categories.closed_fin_count, 1);
    assert_eq!(t.conn_state_distribution["SF"], 1);
    assert!(t.connections.is_empty());
}

#[test]
fn zeek_states_tell_an_unanswered_syn_a_rejected_one_and_an_open_one_apart() {
    let f = vec![
        syn(0),
        (1, Tcp::new(C, 40001, S, 81).seq(5).syn().frame()),
        (2, Tcp::new(S, 81, C, 40001).seq(0).ack(6).rst().frame()),
        (3, Tcp::new(C, 40002, S, 82).seq(7).syn().frame()),
        (4, Tcp::new(S, 82, C, 40002).seq(70).ack(8).syn().frame()),
        (
            5,
            Tcp::new(C, 40002, S, 82).seq(8).ack(71).payload(10).frame(),
        ),
    ];
    let t = report(&f).tcp_timeout.unwrap();
    assert_eq!(t.conn_state_distribution["S0"], 1);
    assert_eq!(t.conn_state_distribution["REJ"], 1);
    assert_eq!(t.conn_state_distribution["S1"], 1);
    assert_eq!(t.categories.syn_waiting_count, 1);
    assert_eq!(t.categories.closed_rst_count, 1);
    assert_eq!(t.categories.active_count, 1);
    let rej = t
        .connections
        .iter()
        .find(|c| c.conn_state == "REJ")
        .unwrap();
    assert_eq!(rej.history, "Sr");
    assert_eq!(rej.flow, "10.0.0.1:40001 -> 10.0.0.2:81");
}

#[test]
fn a_connection_silent_past_the_zombie_threshold_is_a_zombie() {
    let mut f = handshake();
    f.push(server_data(20, 1001));
    f.push((61_000, Tcp::new(C, 40001, S, 81).seq(5).syn().frame()));
    let t = report(&f).tcp_timeout.unwrap();
    assert_eq!(t.categories.zombie_count, 1);
    assert_eq!(t.categories.zombie[0].idle_time, 60.98);
    assert_eq!(t.categories.zombie[0].history, "ShAd");
    assert_eq!(t.problematic_count, 1);
}

#[test]
fn sack_blocks_are_counted_and_a_block_below_the_ack_is_a_dsack() {
    let f = vec![
        (
            0,
            Tcp::new(C, 40000, S, 80)
                .seq(100)
                .syn()
                .sack_permitted()
                .frame(),
        ),
        (
            10,
            Tcp::new(S, 80, C, 40000)
                .seq(1000)
                .ack(101)
                .syn()
                .sack_permitted()
                .frame(),
        ),
        (11, Tcp::new(C, 40000, S, 80).seq(101).ack(1001).frame()),
        server_data(20, 1001),
        server_data(21, 3001),
        (
            30,
            Tcp::new(C, 40000, S, 80)
                .seq(101)
                .ack(2001)
                .sack(&[(3001, 4001)])
                .frame(),
        ),
        (
            40,
            Tcp::new(C, 40000, S, 80)
                .seq(101)
                .ack(4001)
                .sack(&[(1001, 2001)])
                .frame(),
        ),
    ];
    let s = report(&f).sack.unwrap();
    assert_eq!(s.total_tcp_packets, 7);
    assert_eq!(s.flows_sack_negotiated, 1);
    assert_eq!((s.sack_packets, s.dsack_packets), (2, 1));
    assert_eq!(s.dsack_rate, 50.0);
    assert_eq!(s.flows_using_sack, 1);
    assert!(!s.sack_events[0].is_dsack);
    assert!(s.sack_events[1].is_dsack);
    assert_eq!(s.sack_events[1].blocks, vec![[1001, 2001]]);
}

#[test]
fn a_download_with_only_acks_back_is_asymmetric() {
    let mut f = handshake();
    for i in 0..12u32 {
        f.push(server_data(20 + i64::from(i), 1001 + i * 1000));
    }
    f.push(client_ack(40, 13001));
    let a = report(&f).asymmetric_traffic.unwrap();
    assert_eq!(
        (a.total_flows, a.total_flows_analyzed, a.asymmetric_flows),
        (1, 1, 1)
    );
    assert_eq!(a.asymmetry_rate, 100.0);
    let w = &a.worst_asymmetric_flows[0];
    assert_eq!(w.dominant_direction, "dst_to_src");
    assert!(w.ratio < 0.3);

    let b = report(&handshake()).asymmetric_traffic.unwrap();
    assert_eq!((b.total_flows_analyzed, b.asymmetric_flows), (0, 0));
}

/// The client acknowledges with a 2000-byte window, and the server fills it exactly.
fn fill_the_window(mut frames: Vec<(i64, Vec<u8>)>) -> engine::Report {
    frames.push((
        12,
        Tcp::new(C, 40000, S, 80)
            .seq(101)
            .ack(1001)
            .window(2000)
            .frame(),
    ));
    frames.push(server_data(20, 1001));
    frames.push(server_data(21, 2001));
    report(&frames)
}

#[test]
fn without_the_handshake_the_window_scale_is_unknown_and_no_window_is_judged_full() {
    let seen = fill_the_window(handshake());
    let t = seen.transfers.as_ref().expect("transfers");
    assert_eq!(t.flows[0].window_scale, "0/0");
    assert_eq!(t.flows[0].window_full, 1, "the segment ending at the edge");
    assert_eq!(t.streams_with_unknown_window_scale, 0);

    // The same segments without the handshake: the 2000 could be scaled by anything.
    let unseen = fill_the_window(Vec::new());
    let t = unseen.transfers.as_ref().expect("transfers");
    assert_eq!(t.flows[0].window_scale, "unknown");
    assert_eq!(t.flows[0].window_full, 0);
    assert_eq!(t.streams_with_unknown_window_scale, 1);
    let w = unseen.tcp_window.as_ref().expect("tcp_window");
    assert_eq!(w.flows_with_unknown_scale, 1);
    assert_eq!(
        w.low_window_packets, 0,
        "small windows of unknown scale are not judged"
    );
}

#[test]
fn the_handshake_gives_each_side_its_window_scale() {
    let r = report(&handshake_with_scales(7, 9));
    assert_eq!(r.transfers.as_ref().unwrap().flows[0].window_scale, "7/9");
}
