//! `health_score`: one 0–100 figure for the capture, v5's model (RFC 2330 framework, ITU-T
//! Y.1541 classes). Runs last and reads the sections the other analyses wrote; a section that is
//! missing gives its metric no penalty (status `not_measured`).
//!
//! Score = 100 − Σ weight × penalty / 100, with a piecewise-linear penalty (0–100) per metric:
//!
//! | metric | weight | breakpoints → penalty |
//! |---|---|---|
//! | TCP retransmissions / TCP packets (RFC 6298, RFC 7680 thresholds) | 25 | 1 % 16, 3 % 34, 5 % 60, 10 % 100 |
//! | packet loss: retransmissions that repaired a loss (not spurious) / TCP packets (RFC 7680) | 20 | 0.5 % 10, 2 % 22, 5 % 47, 10 % 100 |
//! | median RTT (ITU-T G.114) | 20 | 50 ms 0, 150 ms 18, 400 ms 45, 800 ms 70, 2 s 100 |
//! | DNS errors + timeouts / transactions (RFC 1035) | 15 | 1 % 8, 5 % 25, 15 % 55, 30 % 85, then +50 per unit up to 95 |
//! | mean jitter (RFC 3393; RTT standard deviation when absent) | 10 | 10 ms 0, 20 ms 8, 50 ms 25, 100 ms 55, 200 ms 100 |
//! | duplicate ACKs + out-of-order + zero windows per 1000 frames | 10 | 10 → 10, 50 → 25, 150 → 55, 500 → 100 |
//!
//! v5 bugs fixed: its penalty curves jumped back down at some breakpoints (DNS at 15 %, jitter at
//! 100 ms, anomalies at 50 and 150 per 1000) and up at others (retransmissions and loss at 10 %),
//! so a worse network could score better; here every curve is continuous and never decreasing.
//! The retransmission rate is per TCP packet (v5 divided by all packets, so UDP-heavy captures
//! hid TCP trouble). Recommendations name the worst stream, domain or finding with a Wireshark
//! display filter instead of generic advice.

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::decode::Packet;
use crate::finding::Severity;
use crate::report::Report;
use crate::stats::round3;

/// ITU-T Y.1541 class lower bounds for classes 0..=4 (class 5 below).
const QOS_CLASS_MIN: [f64; 5] = [95.0, 85.0, 65.0, 45.0, 25.0];
const SEVERITIES: [(&str, &str); 6] = [
    ("excellent", "🟢"),
    ("good", "🟡"),
    ("warning", "🟠"),
    ("poor", "🔴"),
    ("critical", "⚫"),
    ("emergency", "🆘"),
];
/// Recommendations about security findings: at most one per detector.
const MAX_RECOMMENDATIONS: usize = 20;

/// What the score is computed from, filled from the report's sections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthInputs {
    pub total_packets: u64,
    pub tcp_packets: Option<u64>,
    pub retransmissions: u64,
    pub spurious_retransmissions: u64,
    /// Duplicate ACKs + out-of-order + zero windows.
    pub anomalies: u64,
    pub dns_transactions: Option<u64>,
    pub dns_failures: u64,
    pub median_rtt_ms: Option<f64>,
    pub mean_jitter_ms: Option<f64>,
    /// Used for jitter when no jitter section exists (v5's fallback).
    pub rtt_stdev_ms: Option<f64>,
}

impl HealthInputs {
    /// Reads the sections present in `report`. RTT and jitter come from their sections once
    /// they exist (`rtt.global_statistics.median`, `jitter.global_statistics.mean`, in ms).
    pub fn from_report(report: &Report, total_packets: u64) -> Self {
        let mut i = HealthInputs {
            total_packets,
            ..Default::default()
        };
        if let Some(r) = &report.retransmission {
            i.tcp_packets = Some(r.total_tcp_packets);
            i.retransmissions = r.total_retransmissions;
            i.spurious_retransmissions = r.spurious_count;
            i.anomalies = ["dup_ack", "out_of_order", "zero_window"]
                .iter()
                .map(|k| r.anomaly_types.get(*k).copied().unwrap_or(0))
                .sum();
        }
        if let Some(d) = &report.dns {
            i.dns_transactions = Some(d.total_transactions);
            i.dns_failures = d.error_transactions + d.timeout_transactions;
        }
        if let Some(r) = report.rtt.as_ref().filter(|r| r.total_measurements > 0) {
            i.median_rtt_ms = Some(r.global_statistics.median_rtt_ms);
            i.rtt_stdev_ms = Some(r.global_statistics.stdev_rtt_ms);
        }
        if let Some(j) = report
            .jitter
            .as_ref()
            .filter(|j| j.global_statistics.count > 0)
        {
            i.mean_jitter_ms = Some(j.global_statistics.mean);
        }
        i
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricScore {
    pub metric_name: String,
    /// In `unit`.
    pub raw_value: f64,
    /// "ratio", "ms" or "per_1000_packets".
    pub unit: String,
    /// 0–100 before weighting.
    pub penalty: f64,
    pub weight: u32,
    pub weighted_penalty: f64,
    /// excellent, good, acceptable, poor, critical, or not_measured.
    pub threshold_status: String,
    pub rfc_reference: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthScoreReport {
    /// 0–100, one decimal.
    pub overall_score: f64,
    /// ITU-T Y.1541 class 0 (best) to 5.
    pub qos_class: u8,
    pub severity: String,
    pub severity_badge: String,
    pub total_penalty: f64,
    pub metric_scores: Vec<MetricScore>,
    pub recommendations: Vec<String>,
    pub inputs: HealthInputs,
}

/// A penalty curve: points (x, penalty) from (0, 0), the status of each segment, and the
/// penalty beyond the last point.
struct Curve {
    points: &'static [(f64, f64)],
    statuses: &'static [&'static str],
    beyond: fn(f64) -> f64,
}

impl Curve {
    fn eval(&self, x: f64) -> (f64, &'static str) {
        let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
        let mut prev = (0.0, 0.0);
        for (i, &(px, pp)) in self.points.iter().enumerate() {
            if x <= px {
                let span = px - prev.0;
                let t = if span > 0.0 { (x - prev.0) / span } else { 1.0 };
                return (prev.1 + t * (pp - prev.1), self.statuses[i]);
            }
            prev = (px, pp);
        }
        ((self.beyond)(x).clamp(0.0, 100.0), "critical")
    }
}

fn full(_: f64) -> f64 {
    100.0
}

const RETRANS: Curve = Curve {
    points: &[(0.01, 16.0), (0.03, 34.0), (0.05, 60.0), (0.10, 100.0)],
    statuses: &["good", "acceptable", "poor", "critical"],
    beyond: full,
};
const LOSS: Curve = Curve {
    points: &[(0.005, 10.0), (0.02, 22.0), (0.05, 47.0), (0.10, 100.0)],
    statuses: &["excellent", "good", "acceptable", "poor"],
    beyond: full,
};
const RTT_MS: Curve = Curve {
    points: &[
        (50.0, 0.0),
        (150.0, 18.0),
        (400.0, 45.0),
        (800.0, 70.0),
        (2000.0, 100.0),
    ],
    statuses: &["excellent", "good", "acceptable", "poor", "critical"],
    beyond: full,
};
const DNS: Curve = Curve {
    points: &[(0.01, 8.0), (0.05, 25.0), (0.15, 55.0), (0.30, 85.0)],
    statuses: &["excellent", "good", "acceptable", "poor"],
    // v5 caps DNS at 95 so a broken resolver alone cannot zero the metric.
    beyond: |x| (85.0 + (x - 0.30) * 50.0).min(95.0),
};
const JITTER_MS: Curve = Curve {
    points: &[
        (10.0, 0.0),
        (20.0, 8.0),
        (50.0, 25.0),
        (100.0, 55.0),
        (200.0, 100.0),
    ],
    statuses: &["excellent", "excellent", "good", "acceptable", "poor"],
    beyond: full,
};
const ANOMALIES: Curve = Curve {
    points: &[(10.0, 10.0), (50.0, 25.0), (150.0, 55.0), (500.0, 100.0)],
    statuses: &["excellent", "good", "acceptable", "poor"],
    beyond: full,
};

fn metric(
    name: &str,
    value: Option<f64>,
    unit: &str,
    curve: &Curve,
    weight: u32,
    rfc: &str,
) -> MetricScore {
    let (raw, penalty, status) = match value {
        Some(v) => {
            let (p, s) = curve.eval(v);
            (v, p, s)
        }
        None => (0.0, 0.0, "not_measured"),
    };
    MetricScore {
        metric_name: name.to_string(),
        raw_value: round6(raw),
        unit: unit.to_string(),
        penalty: round2(penalty),
        weight,
        weighted_penalty: round2(penalty * f64::from(weight) / 100.0),
        threshold_status: status.to_string(),
        rfc_reference: rfc.to_string(),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
fn round6(v: f64) -> f64 {
    crate::stats::round6(v)
}

fn ratio(n: u64, d: Option<u64>) -> Option<f64> {
    d.map(|d| if d == 0 { 0.0 } else { n as f64 / d as f64 })
}

/// Computes the score from its inputs.
pub fn score(i: &HealthInputs) -> HealthScoreReport {
    let jitter = i.mean_jitter_ms.or(i.rtt_stdev_ms);
    let metrics = vec![
        metric(
            "TCP Retransmissions",
            ratio(i.retransmissions, i.tcp_packets),
            "ratio",
            &RETRANS,
            25,
            "RFC 7680",
        ),
        metric(
            "Packet Loss Rate",
            ratio(
                i.retransmissions.saturating_sub(i.spurious_retransmissions),
                i.tcp_packets,
            ),
            "ratio",
            &LOSS,
            20,
            "RFC 7680",
        ),
        metric(
            "RTT (Latency)",
            i.median_rtt_ms,
            "ms",
            &RTT_MS,
            20,
            "ITU-T G.114",
        ),
        metric(
            "DNS Errors",
            ratio(i.dns_failures, i.dns_transactions),
            "ratio",
            &DNS,
            15,
            "RFC 1035",
        ),
        metric("Jitter (IPDV)", jitter, "ms", &JITTER_MS, 10, "RFC 3393"),
        metric(
            "Protocol Anomalies",
            i.tcp_packets
                .map(|_| i.anomalies as f64 * 1000.0 / i.total_packets.max(1) as f64),
            "per_1000_packets",
            &ANOMALIES,
            10,
            "RFC 9293",
        ),
    ];
    let total_penalty: f64 = metrics.iter().map(|m| m.weighted_penalty).sum();
    let overall = (100.0 - total_penalty).clamp(0.0, 100.0);
    let mut h = HealthScoreReport {
        overall_score: 0.0,
        qos_class: 0,
        severity: String::new(),
        severity_badge: String::new(),
        total_penalty: round2(total_penalty),
        metric_scores: metrics,
        recommendations: Vec::new(),
        inputs: i.clone(),
    };
    h.set_score(overall);
    h
}

impl HealthScoreReport {
    /// Sets the score, with its QoS class and severity words.
    fn set_score(&mut self, overall: f64) {
        let overall = (overall.clamp(0.0, 100.0) * 10.0).round() / 10.0;
        let qos_class = QOS_CLASS_MIN
            .iter()
            .position(|&min| overall >= min)
            .unwrap_or(QOS_CLASS_MIN.len());
        let (severity, badge) = SEVERITIES[qos_class];
        self.overall_score = overall;
        self.qos_class = qos_class as u8;
        self.severity = severity.to_string();
        self.severity_badge = badge.to_string();
    }
}

/// The score's band for the diagnosis's worst cause: a healthy capture scores at least 90, a
/// high cause at most 75, a critical one at most 50, whatever the v5 metrics say.
pub fn band(worst: Option<Severity>) -> (f64, f64) {
    match worst {
        None | Some(Severity::Info) => (90.0, 100.0),
        Some(Severity::Low) => (85.0, 95.0),
        Some(Severity::Medium) => (75.0, 89.9),
        Some(Severity::High) => (50.1, 75.0),
        Some(Severity::Critical) => (0.0, 50.0),
    }
}

/// The v5 metric score (0-100) placed within the diagnosis's band.
pub fn banded(metric_score: f64, worst: Option<Severity>) -> f64 {
    let (lo, hi) = band(worst);
    lo + (hi - lo) * metric_score.clamp(0.0, 100.0) / 100.0
}

fn poor(m: &MetricScore) -> bool {
    m.threshold_status == "poor" || m.threshold_status == "critical"
}

/// Concrete advice for the metrics in poor or critical state, naming what to look at.
fn recommendations(h: &HealthScoreReport, report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let worst_stream = report
        .retransmission
        .as_ref()
        .and_then(|r| r.flow_statistics.first());
    for m in h.metric_scores.iter().filter(|m| poor(m)) {
        let pct = m.raw_value * 100.0;
        let text = match m.metric_name.as_str() {
            "TCP Retransmissions" | "Packet Loss Rate" => {
                let what = if m.metric_name == "Packet Loss Rate" {
                    format!("Packet loss repaired by retransmission on {pct:.1}% of TCP packets")
                } else {
                    format!("TCP retransmission rate {pct:.1}%")
                };
                match worst_stream {
                    Some(s) => format!(
                        "{what}. Worst stream {} ({} → {}): {} retransmissions ({:.1}%); inspect it with `{} && tcp.analysis.retransmission`. Check the link for congestion, duplex mismatch or errors on that path.",
                        s.stream, s.src, s.dst, s.retransmissions, s.retransmission_rate_pct, s.display_filter
                    ),
                    None => format!("{what}. Filter `tcp.analysis.retransmission` to find the affected streams."),
                }
            }
            "RTT (Latency)" => format!(
                "Median RTT {:.0} ms. Find the slow paths with `tcp.analysis.ack_rtt > 0.15`; consider a closer server, fewer hops or QoS for interactive traffic.",
                m.raw_value
            ),
            "DNS Errors" => {
                let mut t = format!("DNS errors or timeouts on {pct:.1}% of transactions.");
                if let Some(d) = report.dns.as_ref() {
                    if let Some(dom) = d.top_problematic_domains.first() {
                        t.push_str(&format!(
                            " Worst name: {} ({} errors, {} timeouts, {} slow).",
                            dom.domain, dom.errors, dom.timeouts, dom.slow
                        ));
                    }
                    if let Some(e) = d
                        .error_transactions_details
                        .first()
                        .or(d.timeout_details.first())
                    {
                        t.push_str(&format!(" First failure at frame {}: `{}`.", e.query_packet, e.display_filter));
                    }
                }
                t.push_str(" Check the resolver's health and reachability (`dns.flags.rcode != 0`).");
                t
            }
            "Jitter (IPDV)" => format!(
                "Mean jitter {:.0} ms: real-time traffic (voice, video) will suffer. Shape bulk traffic and prioritise time-sensitive flows.",
                m.raw_value
            ),
            "Protocol Anomalies" => format!(
                "{:.1} duplicate ACKs, out-of-order segments or zero windows per 1000 packets. Look at `tcp.analysis.duplicate_ack || tcp.analysis.out_of_order || tcp.analysis.zero_window`{}.",
                m.raw_value,
                worst_stream
                    .map(|s| format!(", starting with stream {} ({} duplicate ACKs)", s.stream, s.dup_acks))
                    .unwrap_or_default()
            ),
            _ => continue,
        };
        out.push(text);
    }
    out.extend(security_recommendations(report));
    if out.is_empty() {
        out.push(
            "Network performance is within acceptable parameters. Continue monitoring for degradation trends."
                .to_string(),
        );
    }
    out.truncate(MAX_RECOMMENDATIONS);
    out
}

/// One line per security detector that found something, naming its worst finding.
fn security_recommendations(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = r
        .port_scan_detection
        .as_ref()
        .and_then(|d| d.scan_events.first())
    {
        out.push(format!(
            "Port scan ({}, {}) from {}: {} ports on {} targets; review with `{}` and block the source if it is not an authorised scanner.",
            e.scan_type, e.severity.as_str(), e.source_ip, e.unique_ports, e.unique_targets, e.display_filter
        ));
    }
    if let Some(e) = r
        .brute_force_detection
        .as_ref()
        .and_then(|d| d.brute_force_events.first())
    {
        out.push(format!(
            "Brute force on {} {}:{} from {} ({} failed of {} attempts); review with `{}`, enforce lockout or key-based login.",
            e.service, e.target_ip, e.target_port, e.source_ip, e.failed_attempts, e.total_attempts, e.display_filter
        ));
    }
    if let Some(e) = r
        .ddos_detection
        .as_ref()
        .and_then(|d| d.ddos_events.first())
    {
        out.push(format!(
            "{} toward {} peaking at {:.0} packets/s from about {} sources; review with `{}` and contact the upstream provider for filtering.",
            e.attack_type, e.target_ip, e.peak_rate, e.source_count, e.display_filter
        ));
    }
    if let Some(e) = r
        .dns_tunneling_detection
        .as_ref()
        .and_then(|d| d.tunneling_events.first())
    {
        out.push(format!(
            "Possible DNS tunnel from {} through {} ({} queries: {}); review with `{}`.",
            e.source_ip,
            e.domain,
            e.query_count,
            e.indicators.join(", "),
            e.display_filter
        ));
    }
    if let Some(e) = r
        .data_exfiltration_detection
        .as_ref()
        .and_then(|d| d.exfiltration_events.first())
    {
        out.push(format!(
            "Possible exfiltration ({}) from {} to {}: {:.1} MB uploaded; review with `{}`.",
            e.exfil_type, e.source_ip, e.destination_ip, e.mb_uploaded, e.display_filter
        ));
    }
    if let Some(e) = r
        .c2_beaconing_detection
        .as_ref()
        .and_then(|d| d.beaconing_events.first())
    {
        out.push(format!(
            "Periodic beacons from {} to {}:{} every {:.1} s ({} times); check the host for malware with `{}`.",
            e.source_ip, e.destination_ip, e.destination_port, e.mean_interval, e.beacon_count, e.display_filter
        ));
    }
    if let Some(e) = r
        .lateral_movement_detection
        .as_ref()
        .and_then(|d| d.lateral_movement_events.first())
    {
        out.push(format!(
            "Lateral movement ({}) from {} to {} internal hosts over {}; review with `{}`.",
            e.movement_type,
            e.source_ip,
            e.target_count,
            e.protocols.join("/"),
            e.display_filter
        ));
    }
    out
}

/// The analysis: nothing per packet, everything from the other sections at the end.
#[derive(Default)]
pub struct HealthScore;

impl Analyzer for HealthScore {
    fn packets(&self) -> Kinds {
        Kinds::NONE
    }

    fn reads_report(&self) -> bool {
        true
    }

    fn on_packet(&mut self, _pkt: &Packet<'_>, _meta: &PacketMeta) {}

    fn finish(self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let inputs = HealthInputs::from_report(report, end.read.frames);
        let mut h = score(&inputs);
        h.recommendations = recommendations(&h, report);
        h.total_penalty = round3(h.total_penalty);
        if let Some(d) = &report.diagnosis {
            // The diagnosis decides the band and the advice: one recommendation per cause.
            let worst = d.causes.first().map(|_| d.worst());
            h.set_score(banded(h.overall_score, worst));
            h.recommendations = d.causes.iter().map(|c| c.recommendation.clone()).collect();
        }
        report.health_score = Some(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_penalty_curve_is_continuous_and_never_decreasing() {
        for c in [&RETRANS, &LOSS, &RTT_MS, &DNS, &JITTER_MS, &ANOMALIES] {
            let last = c.points.last().unwrap().0;
            let mut prev = 0.0;
            for k in 0..=3000 {
                let x = last * 1.5 * f64::from(k) / 3000.0;
                let (p, _) = c.eval(x);
                assert!(p + 1e-9 >= prev, "decreasing at {x}");
                assert!(p - prev < 5.0, "jump at {x}");
                prev = p;
            }
        }
    }

    #[test]
    fn a_clean_capture_scores_100_in_class_0() {
        let h = score(&HealthInputs {
            total_packets: 1000,
            tcp_packets: Some(900),
            dns_transactions: Some(10),
            median_rtt_ms: Some(20.0),
            mean_jitter_ms: Some(2.0),
            ..Default::default()
        });
        assert_eq!(
            (h.overall_score, h.qos_class, h.severity.as_str()),
            (100.0, 0, "excellent")
        );
    }
}
