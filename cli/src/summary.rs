//! The console summary: counts, protocol mix and the top findings, as plain aligned text.

use std::fmt::Write;

use engine::{Config, Report};

pub fn console(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.metadata;
    let _ = writeln!(s, "PCAP Analyzer {} - {}", m.engine_version, m.pcap_file);
    let _ = writeln!(
        s,
        "  format {}, {} packets, {:.3} s, analysed in {:.3} s",
        m.format, m.total_packets, m.capture_duration, m.analysis_seconds
    );
    for w in &m.warnings {
        let _ = writeln!(s, "  WARNING: {w}");
    }
    if let Some(pd) = &r.protocol_distribution {
        let l3: Vec<String> = pd
            .layer3_distribution
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let l4: Vec<String> = pd
            .layer4_distribution
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  layer 3: {}", l3.join(", "));
        let _ = writeln!(s, "  layer 4: {}", l4.join(", "));
    }
    if let Some(c) = &r.conversations {
        let _ = writeln!(
            s,
            "  conversations: TCP {} (streams {}), UDP {}, IP {}",
            c.tcp, c.tcp_streams, c.udp, c.ip
        );
    }
    let _ = writeln!(s, "\nFindings");
    if let Some(rt) = &r.retransmission {
        let _ = writeln!(
            s,
            "  TCP retransmissions: {} ({:.2} % of TCP packets; fast {}, spurious {}, RTO {}, SYN {})",
            rt.total_retransmissions, rt.retransmission_rate_pct, rt.fast_retrans_count, rt.spurious_count, rt.rto_count, rt.syn_retrans_count
        );
        let a = |k: &str| rt.anomaly_types.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "  TCP anomalies: dup ACK {}, out-of-order {}, previous segment not captured {}, zero window {}",
            a("dup_ack"), a("out_of_order"), a("lost_segment"), a("zero_window")
        );
        for f in rt.flow_statistics.iter().take(5) {
            let _ = writeln!(
                s,
                "    stream {:>5}  {} <-> {}  {} retrans / {} pkts ({:.1} %, {})  filter: {}",
                f.stream,
                f.src,
                f.dst,
                f.retransmissions,
                f.packets,
                f.retransmission_rate_pct,
                f.severity,
                f.display_filter
            );
        }
    }
    if let Some(h) = &r.tcp_handshake {
        let _ = writeln!(
            s,
            "  TCP handshakes: {} ({} complete, {} slow), initial RTT mean {:.3} ms over {} streams",
            h.total_handshakes, h.complete_handshakes, h.slow_handshakes, h.initial_rtt.mean_ms, h.initial_rtt.count
        );
    }
    if let Some(d) = &r.dns {
        let _ = writeln!(
            s,
            "  DNS: {} queries, {} responses, {} errors, {} timeouts, {} slow; mean response {:.3} ms",
            d.total_queries, d.total_responses, d.error_transactions, d.timeout_transactions, d.slow_transactions, d.response_time_statistics.mean
        );
        for (rcode, n) in &d.error_types_breakdown {
            let _ = writeln!(s, "    {rcode}: {n}");
        }
    }
    if let Some(t) = &r.timestamps {
        let _ = writeln!(
            s,
            "  Gaps: {} above threshold; largest inter-packet gap {:.6} s (frame {})",
            t.gaps_detected,
            t.max_gap_seconds.unwrap_or(0.0),
            t.max_gap_packet
        );
    }
    if let Some(t) = &r.top_talkers {
        let _ = writeln!(s, "\nTop talkers");
        for x in t.top_ips.iter().take(5) {
            let _ = writeln!(
                s,
                "  {:<40} {:>14} bytes {:>10} packets",
                x.ip, x.bytes, x.packets
            );
        }
    }
    s
}

pub fn config_table(c: &Config) -> String {
    let mut s = String::from("Thresholds in effect\n");
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&c.thresholds) {
        for (k, v) in map {
            let _ = writeln!(s, "  {k:<32} {v}");
        }
    }
    let _ = writeln!(
        s,
        "Reports\n  {:<32} {}",
        "output_dir", c.reports.output_dir
    );
    s
}
