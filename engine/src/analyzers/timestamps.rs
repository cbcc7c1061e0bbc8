//! `timestamps`: inter-packet gaps. Globally (the largest `frame.time_delta`, and interval
//! statistics) and per flow, with v5's protocol-specific thresholds (interactive TCP on ports
//! 22/23: 30 s, other TCP: 2.5 s, DNS: 5 s, ICMP: 2 s, anything else: 1 s), or `--latency` when
//! given. Unlike v5, a gap names the previous frame *of the same flow*, not the previous frame
//! of the file.

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, Transport};
use std::net::IpAddr;

use crate::finding::{Cause, Evidence, Finding, Severity, MAX_FINDING_FRAMES};
use crate::flow::{evict_idle, fast_map, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::{round3, round6, Distribution, Summary};
use crate::Options;

const NS: f64 = 1e9;

/// (source address, IP protocol): how v5 groups DNS and ICMP packets for gaps.
type SourceKey = (IpAddr, u8);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Gap {
    /// Previous frame of the same flow, and the frame after the gap (Wireshark numbers).
    pub packet_num_before: u64,
    pub packet_num_after: u64,
    pub timestamp_before: String,
    pub timestamp_after: String,
    pub gap_duration: f64,
    pub threshold_seconds: f64,
    pub src_ip: String,
    pub dst_ip: String,
    pub protocol: String,
    pub is_abnormal: bool,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimestampsReport {
    pub total_packets: u64,
    pub capture_duration_seconds: f64,
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
    /// `--latency` when given; otherwise per-protocol thresholds apply.
    pub gap_threshold_seconds: Option<f64>,
    /// Largest interval between two consecutive frames of the file (tshark `frame.time_delta`);
    /// none with fewer than two timestamped frames.
    pub max_gap_seconds: Option<f64>,
    pub max_gap_packet: u64,
    pub gaps_detected: u64,
    /// The longest gaps, longest first.
    pub gaps: Vec<Gap>,
    /// Inter-frame intervals in seconds.
    pub interval_statistics: Summary,
    pub packets_per_second: f64,
    /// Gaps recur at a regular interval (at least 3 gaps, coefficient of variation < 10 %).
    pub periodic_pattern_detected: bool,
    pub non_periodic_gaps: u64,
    /// Frames stamped earlier than the frame before them (tshark: `frame.time_delta < 0`).
    #[serde(default)]
    pub time_reversals: u64,
    /// The longest step back, in seconds.
    #[serde(default)]
    pub max_time_reversal_seconds: f64,
    /// IP frames the capture recorded twice (same identification and checksums, within 1 s).
    #[serde(default)]
    pub duplicate_frames: u64,
}

pub struct Timestamps {
    latency: Option<f64>,
    last_frame: Option<(i64, u64)>,
    max_gap_ns: i64,
    max_gap_packet: u64,
    any_timestamp: bool,
    intervals: Distribution,
    /// DNS and ICMP packets by (source, protocol): last timestamp and frame.
    flows: FastMap<SourceKey, (i64, u64)>,
    gaps: Vec<Gap>,
    gap_durations: Distribution,
    gaps_detected: u64,
    since_sweep: u32,
    reversals: u64,
    max_reversal_ns: i64,
    reversal_frames: Vec<u64>,
    duplicates: u64,
    ip_frames: u64,
    /// (copy, original) frames of the first duplicates.
    duplicate_pairs: Vec<(u64, u64)>,
}

impl Timestamps {
    pub fn new(_config: &Config, options: &Options) -> Self {
        Timestamps {
            latency: options.latency,
            last_frame: None,
            max_gap_ns: 0,
            max_gap_packet: 0,
            any_timestamp: false,
            intervals: Distribution::default(),
            flows: fast_map(),
            gaps: Vec::new(),
            gap_durations: Distribution::default(),
            gaps_detected: 0,
            since_sweep: 0,
            reversals: 0,
            max_reversal_ns: 0,
            reversal_frames: Vec::new(),
            duplicates: 0,
            ip_frames: 0,
            duplicate_pairs: Vec::new(),
        }
    }
}

/// v5's per-protocol gap threshold, in seconds, and the flow key it groups packets by.
/// v5's per-protocol gap threshold in seconds, and how packets are grouped: DNS and ICMP by
/// source address (`Some(key)`), everything else by its flow (`None`: the flow table's own
/// previous packet is used, at no extra lookup).
fn grouping(pkt: &Packet<'_>) -> Option<(Option<SourceKey>, f64, &'static str)> {
    let ip = pkt.ip()?;
    let by_source = |proto| Some((ip.src, proto));
    Some(match pkt.transport {
        Transport::Tcp(t) => {
            let interactive = [t.src_port, t.dst_port]
                .iter()
                .any(|p| *p == 22 || *p == 23);
            (None, if interactive { 30.0 } else { 2.5 }, "TCP")
        }
        Transport::Udp(u) if u.src_port == 53 || u.dst_port == 53 => (by_source(17), 5.0, "DNS"),
        Transport::Udp(_) => (None, 1.0, "UDP"),
        Transport::Icmp(_) => (by_source(ip.proto), 2.0, "ICMP"),
        _ => (None, 1.0, "IP"),
    })
}

impl Analyzer for Timestamps {
    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        if !pkt.ts_known {
            // Like Wireshark, a frame without a timestamp has none of its own, but the next
            // frame's delta is measured from time 0.
            self.last_frame = Some((0, pkt.number));
            return;
        }
        let delta = self
            .last_frame
            .map_or(0, |(prev_ts, _)| pkt.ts_ns - prev_ts);
        if self.last_frame.is_some() {
            self.intervals.add(delta as f64 / NS);
            if delta < 0 {
                self.reversals += 1;
                self.max_reversal_ns = self.max_reversal_ns.max(-delta);
                if self.reversal_frames.len() < MAX_FINDING_FRAMES {
                    self.reversal_frames.push(pkt.number);
                }
            }
        }
        if pkt.ip().is_some() {
            self.ip_frames += 1;
        }
        if meta.duplicate_of != 0 {
            self.duplicates += 1;
            if self.duplicate_pairs.len() < MAX_FINDING_FRAMES {
                self.duplicate_pairs.push((pkt.number, meta.duplicate_of));
            }
        }
        if delta > self.max_gap_ns || !self.any_timestamp {
            self.max_gap_ns = delta;
            self.max_gap_packet = pkt.number;
        }
        self.any_timestamp = true;
        self.last_frame = Some((pkt.ts_ns, pkt.number));
        let Some((group, default_threshold, protocol)) = grouping(pkt) else {
            return;
        };
        let previous = match group {
            None => meta.flow_prev,
            Some(key) => {
                self.since_sweep += 1;
                if self.since_sweep >= 65_536 {
                    self.since_sweep = 0;
                    evict_idle(&mut self.flows, pkt.ts_ns, |v| v.0);
                }
                self.flows.insert(key, (pkt.ts_ns, pkt.number))
            }
        };
        let threshold = self.latency.unwrap_or(default_threshold);
        if let Some((prev_ts, prev_frame)) = previous {
            let gap = (pkt.ts_ns - prev_ts) as f64 / NS;
            if gap > threshold {
                self.gaps_detected += 1;
                self.gap_durations.add(gap);
                let keep = self.gaps.len() < MAX_FINDINGS
                    || self.gaps.last().is_some_and(|g| g.gap_duration < gap);
                if keep {
                    let ip = pkt.ip().copied();
                    self.gaps.push(Gap {
                        packet_num_before: prev_frame,
                        packet_num_after: pkt.number,
                        timestamp_before: crate::time::iso_utc(prev_ts),
                        timestamp_after: crate::time::iso_utc(pkt.ts_ns),
                        gap_duration: round6(gap),
                        threshold_seconds: threshold,
                        src_ip: ip.map(|i| i.src.to_string()).unwrap_or_default(),
                        dst_ip: ip.map(|i| i.dst.to_string()).unwrap_or_default(),
                        protocol: protocol.to_string(),
                        is_abnormal: true,
                        display_filter: format!(
                            "frame.number == {} || frame.number == {}",
                            prev_frame, pkt.number
                        ),
                    });
                    self.gaps
                        .sort_by(|a, b| b.gap_duration.total_cmp(&a.gap_duration));
                    self.gaps.truncate(MAX_FINDINGS);
                }
            }
        }
    }

    fn finish(self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let duration = end.duration_s();
        // v5: gaps are periodic when at least 3 have a coefficient of variation under 10 %;
        // gaps within 20 % of the mean are then normal.
        let mean = self.gap_durations.mean();
        let periodic = self.gap_durations.count() >= 3
            && mean > 0.0
            && self.gap_durations.stdev() / mean < 0.1;
        let mut gaps = self.gaps;
        let mut non_periodic = self.gaps_detected;
        if periodic {
            for g in &mut gaps {
                g.is_abnormal = (g.gap_duration - mean).abs() > 0.2 * mean;
            }
            non_periodic = gaps.iter().filter(|g| g.is_abnormal).count() as u64;
        }
        report.timestamps = Some(TimestampsReport {
            total_packets: end.read.frames,
            capture_duration_seconds: round6(duration),
            first_timestamp: end.first_ts_ns.map(crate::time::iso_utc),
            last_timestamp: end.last_ts_ns.map(crate::time::iso_utc),
            gap_threshold_seconds: self.latency,
            max_gap_seconds: self
                .any_timestamp
                .then(|| round6(self.max_gap_ns as f64 / NS)),
            max_gap_packet: self.max_gap_packet,
            gaps_detected: self.gaps_detected,
            gaps,
            interval_statistics: self.intervals.summary(),
            packets_per_second: if duration > 0.0 {
                (end.read.frames as f64 / duration * 100.0).round() / 100.0
            } else {
                0.0
            },
            periodic_pattern_detected: periodic,
            non_periodic_gaps: non_periodic,
            time_reversals: self.reversals,
            max_time_reversal_seconds: round6(self.max_reversal_ns as f64 / NS),
            duplicate_frames: self.duplicates,
        });
        if self.reversals > 0 {
            // A capture's clock going back confuses every timing figure after it (merged or
            // unsorted files); it says nothing about the network, so it stays at medium.
            let back_s = self.max_reversal_ns as f64 / NS;
            let sev = if self.reversals == 1 && back_s < 0.001 {
                Severity::Info
            } else {
                Severity::by_thresholds(back_s, [Some(0.0), Some(1.0), None, None])
            };
            report.findings.push(
                Finding::new(
                    "timestamps",
                    sev,
                    format!(
                        "Time runs backwards {} time{} in the capture, by up to {back_s:.3} s (first at frame {}): merged or unsorted files",
                        self.reversals,
                        if self.reversals == 1 { "" } else { "s" },
                        self.reversal_frames[0]
                    ),
                )
                .cause(Cause::TimeReversal)
                .evidence(
                    Evidence::new()
                        .with("time_reversals", self.reversals as f64)
                        .with("max_step_back_s", round6(back_s)),
                )
                .frames(self.reversal_frames.clone())
                .filter("frame.time_delta < 0"),
            );
        }
        if self.duplicates > 0 {
            let share = self.duplicates as f64 / self.ip_frames.max(1) as f64;
            // Copies made by the capture, not by the network: at most medium.
            let sev = if self.duplicates < 2 {
                Severity::Info
            } else {
                Severity::by_thresholds(share, [Some(0.01), Some(0.05), None, None])
            };
            let (copy, original) = self.duplicate_pairs[0];
            report.findings.push(
                Finding::new(
                    "timestamps",
                    sev,
                    format!(
                        "{} frames ({:.1} % of IP frames) were recorded twice, e.g. frame {copy} repeats frame {original} (same IP ID and checksums): the capture duplicates them, they are not retransmissions",
                        self.duplicates,
                        share * 100.0
                    ),
                )
                .cause(Cause::DuplicatedFrames)
                .evidence(
                    Evidence::new()
                        .with("duplicate_frames", self.duplicates as f64)
                        .with("duplicate_share_pct", round3(share * 100.0)),
                )
                .frames(self.duplicate_pairs.iter().flat_map(|&(c, o)| [o, c]))
                .filter(format!(
                    "frame.number in {{{}}}",
                    self.duplicate_pairs
                        .iter()
                        .flat_map(|&(c, o)| [o, c])
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                )),
            );
        }
    }
}
