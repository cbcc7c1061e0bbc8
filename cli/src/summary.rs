//! The console summary: health score, the diagnosis, counts, protocol mix, the top findings, recommendations
//! and the worst flows, as plain aligned text.

use std::fmt::Write;

use engine::render::view;
use engine::{Config, Report};

/// Rows of the findings and worst-flows tables.
const CONSOLE_ROWS: usize = 10;
/// Characters of one table cell; longer text is cut with an ellipsis.
const MAX_CELL: usize = 60;

/// Text from the capture can hold terminal escape sequences: control characters are replaced.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An aligned table: numeric columns (`right[i]`) right-aligned, the others left-aligned.
fn table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| view::truncate(&clean(c), MAX_CELL))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |values: Vec<&str>| {
        let parts: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if right.get(i).copied().unwrap_or(false) {
                    format!("{v:>w$}")
                } else {
                    format!("{v:<w$}")
                }
            })
            .collect();
        format!("  {}", parts.join("  ").trim_end())
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(headers.to_vec()));
    let _ = writeln!(
        out,
        "{}",
        line(
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect()
        )
    );
    for r in &cells {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
    out
}

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
    let tree = view::tree(r);
    let health = view::health(&tree);
    if let Some(h) = &health {
        let _ = writeln!(
            s,
            "\nHealth score {}/100, {} ({})",
            view::number(h.overall_score),
            view::qos_text(h),
            clean(&h.severity)
        );
    }
    if let Some(d) = &r.diagnosis {
        let _ = writeln!(s, "\nDiagnosis: {:?}", d.verdict);
        if d.causes.is_empty() {
            let _ = writeln!(s, "  no cause found: the traffic looks healthy");
        }
        for (i, c) in d.causes.iter().enumerate() {
            let cause = c.cause.map(|c| c.as_str()).unwrap_or("other");
            let _ = writeln!(
                s,
                "  {}. [{}] {cause}: {}",
                i + 1,
                c.severity,
                clean(&c.summary)
            );
            if !c.frames.is_empty() {
                let frames: Vec<String> = c.frames.iter().map(u64::to_string).collect();
                let _ = writeln!(s, "     frames {}", frames.join(", "));
            }
            if !c.display_filter.is_empty() {
                let _ = writeln!(s, "     wireshark: {}", clean(&c.display_filter));
            }
        }
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
    let findings: Vec<view::Finding> = r.findings.iter().map(view::display).collect();
    if !findings.is_empty() {
        let total = findings.len();
        let rows: Vec<Vec<String>> = view::top_findings(findings, CONSOLE_ROWS)
            .into_iter()
            .map(|f| {
                let frames: Vec<String> = f.frames.iter().take(3).map(u64::to_string).collect();
                vec![
                    f.severity.to_string(),
                    f.analysis,
                    frames.join(" "),
                    f.flow,
                    f.display_filter,
                ]
            })
            .collect();
        let _ = writeln!(s, "\nTop findings ({} of {total})", rows.len());
        s.push_str(&table(
            &["severity", "analysis", "frames", "flow", "display filter"],
            &[false, false, true, false, false],
            &rows,
        ));
    }
    if let Some(h) = &health {
        if !h.recommendations.is_empty() {
            let _ = writeln!(s, "\nRecommendations");
            for rec in h.recommendations.iter().take(CONSOLE_ROWS) {
                let _ = writeln!(s, "  - {}", clean(&rec.text()));
            }
        }
    }
    if let Some(rt) = &r.retransmission {
        let rows: Vec<Vec<String>> = rt
            .flow_statistics
            .iter()
            .filter(|f| f.retransmissions > 0 || f.dup_acks + f.lost_segments + f.zero_windows > 0)
            .take(CONSOLE_ROWS)
            .map(|f| {
                vec![
                    f.stream.to_string(),
                    f.src.clone(),
                    f.dst.clone(),
                    f.packets.to_string(),
                    f.retransmissions.to_string(),
                    format!("{:.2}", f.retransmission_rate_pct),
                    (f.dup_acks + f.out_of_order + f.lost_segments + f.zero_windows).to_string(),
                    f.severity.clone(),
                    f.display_filter.clone(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            let _ = writeln!(s, "\nWorst flows");
            s.push_str(&table(
                &[
                    "stream",
                    "endpoint A",
                    "endpoint B",
                    "packets",
                    "retrans",
                    "rate %",
                    "anomalies",
                    "severity",
                    "display filter",
                ],
                &[true, false, false, true, true, true, true, false, false],
                &rows,
            ));
        }
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
