//! `retransmission`: Wireshark's `tcp.analysis` verdicts (see [`crate::tcp`]) counted and
//! explained: every retransmission with its kind (fast, spurious, RTO by delay, SYN), the
//! anomalies (duplicate ACK, out-of-order, lost segment, zero window) and per-stream statistics
//! with v5's severity thresholds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::config::{Config, Thresholds};
use crate::decode::{Packet, TCP_SYN};
use crate::flow::{endpoint, FlowKey, FlowRecord, PerSlot};
use crate::report::{Report, MAX_FINDINGS, MAX_RANKED};
use crate::stats::{round3, Top};
use crate::tcp::flags;
use crate::Options;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RetransmissionEvent {
    pub packet_num: u64,
    pub timestamp: String,
    pub stream: u64,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_ip: String,
    pub dst_port: u16,
    pub seq_num: u32,
    pub segment_length: u32,
    /// "fast_retransmission", "spurious_retransmission", "syn_retransmission", "rto" (delay ≥
    /// `rto_threshold_ms`) or "retransmission".
    pub retrans_type: String,
    /// Time since the segment that last advanced the sequence (Wireshark's `tcp.analysis.rto`).
    pub delay_ms: f64,
    /// That segment's frame (Wireshark's `tcp.analysis.rto_frame`).
    pub original_packet_num: u64,
    pub is_syn_retrans: bool,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowRetransmissions {
    pub stream: u64,
    pub src: String,
    pub dst: String,
    pub packets: u64,
    pub retransmissions: u64,
    pub retransmission_rate_pct: f64,
    pub fast_retransmissions: u64,
    pub spurious_retransmissions: u64,
    pub dup_acks: u64,
    pub out_of_order: u64,
    pub lost_segments: u64,
    pub zero_windows: u64,
    pub severity: String,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RetransmissionReport {
    pub total_flows: u64,
    pub flows_with_issues: u64,
    /// All retransmissions, fast, spurious and SYN included (tshark `tcp.analysis.retransmission`).
    pub total_retransmissions: u64,
    pub fast_retrans_count: u64,
    pub spurious_count: u64,
    /// Retransmissions (not fast, not spurious, not SYN) after at least `rto_threshold_ms`.
    pub rto_count: u64,
    pub syn_retrans_count: u64,
    pub other_retrans_count: u64,
    pub retransmission_rate_pct: f64,
    pub total_tcp_packets: u64,
    pub total_anomalies: u64,
    /// dup_ack, out_of_order, lost_segment (previous segment not captured), zero_window,
    /// keep_alive, window_update, ack_lost_segment, window_full.
    pub anomaly_types: BTreeMap<String, u64>,
    pub severity_distribution: BTreeMap<String, u64>,
    pub thresholds: RetransThresholds,
    /// The first retransmissions in file order.
    pub retransmissions: Vec<RetransmissionEvent>,
    /// Streams with the most retransmissions.
    pub flow_statistics: Vec<FlowRetransmissions>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RetransThresholds {
    pub retransmission_low: u64,
    pub retransmission_medium: u64,
    pub retransmission_critical: u64,
    pub retransmission_rate_low: f64,
    pub retransmission_rate_medium: f64,
    pub retransmission_rate_critical: f64,
    pub rto_threshold_ms: f64,
}

#[derive(Default, Clone, Copy)]
struct StreamStats {
    stream: u64,
    key: Option<FlowKey>,
    packets: u64,
    retrans: u64,
    fast: u64,
    spurious: u64,
    dup_acks: u64,
    ooo: u64,
    lost: u64,
    zero_window: u64,
}

impl StreamStats {
    fn issues(&self) -> u64 {
        self.retrans + self.dup_acks + self.ooo + self.lost + self.zero_window
    }
}

pub struct Retransmission {
    t: Thresholds,
    /// The live streams, by flow-table slot; a stream is summed up below when its flow ends.
    streams: PerSlot<StreamStats>,
    total_flows: u64,
    flows_with_issues: u64,
    severity: BTreeMap<&'static str, u64>,
    /// Ended streams with retransmissions, the most first once trimmed.
    ranked: Top<StreamStats>,
    tcp_packets: u64,
    total: u64,
    fast: u64,
    spurious: u64,
    rto: u64,
    syn: u64,
    anomalies: [u64; 8],
    events: Vec<RetransmissionEvent>,
}

const ANOMALY_NAMES: [&str; 8] = [
    "dup_ack",
    "out_of_order",
    "lost_segment",
    "zero_window",
    "keep_alive",
    "window_update",
    "ack_lost_segment",
    "window_full",
];
const ANOMALY_FLAGS: [u32; 8] = [
    flags::DUP_ACK,
    flags::OUT_OF_ORDER,
    flags::LOST_SEGMENT,
    flags::ZERO_WINDOW,
    flags::KEEP_ALIVE,
    flags::WINDOW_UPDATE,
    flags::ACK_LOST_SEGMENT,
    flags::WINDOW_FULL,
];

fn most_retransmissions_first(a: &StreamStats, b: &StreamStats) -> std::cmp::Ordering {
    b.retrans.cmp(&a.retrans).then(a.stream.cmp(&b.stream))
}

impl Retransmission {
    pub fn new(config: &Config, _options: &Options) -> Self {
        Retransmission {
            t: config.thresholds.clone(),
            streams: PerSlot::default(),
            total_flows: 0,
            flows_with_issues: 0,
            severity: BTreeMap::new(),
            ranked: Top::new(MAX_RANKED, most_retransmissions_first),
            tcp_packets: 0,
            total: 0,
            fast: 0,
            spurious: 0,
            rto: 0,
            syn: 0,
            anomalies: [0; 8],
            events: Vec::new(),
        }
    }

    /// v5's per-flow severity: needs at least `retransmission_low` retransmissions, then the rate
    /// decides (critical ≥ 5 %, medium ≥ 3 %, low ≥ 1 %); many retransmissions at a low rate are "low".
    fn severity(&self, s: &StreamStats) -> &'static str {
        if s.retrans < self.t.retransmission_low || s.packets == 0 {
            return "none";
        }
        let rate = s.retrans as f64 * 100.0 / s.packets as f64;
        if rate >= self.t.retransmission_rate_critical {
            "critical"
        } else if rate >= self.t.retransmission_rate_medium {
            "medium"
        } else if rate >= self.t.retransmission_rate_low
            || s.retrans >= self.t.retransmission_critical
        {
            "low"
        } else {
            "none"
        }
    }

    fn close(&mut self, s: StreamStats) {
        self.total_flows += 1;
        if s.issues() > 0 {
            self.flows_with_issues += 1;
        }
        *self.severity.entry(self.severity(&s)).or_insert(0) += 1;
        if s.retrans > 0 {
            self.ranked.push(s);
        }
    }
}

impl Analyzer for Retransmission {
    fn packets(&self) -> Kinds {
        Kinds::TCP
    }

    fn prefetches(&self) -> Prefetch {
        Prefetch::Near
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        self.tcp_packets += 1;
        let ta = &meta.tcp;
        let new = || StreamStats {
            stream: ta.stream,
            key: meta.flow.map(|(k, _)| k),
            ..Default::default()
        };
        let Some(s) = self.streams.get_or_insert_with(meta, new) else {
            return;
        };
        if s.stream != ta.stream {
            // The 5-tuple was reused for a new stream (tshark numbers it anew).
            let ended = std::mem::replace(s, new());
            self.close(ended);
        }
        let Some(s) = self.streams.get_or_insert_with(meta, new) else {
            return;
        };
        s.packets += 1;
        for (i, f) in ANOMALY_FLAGS.iter().enumerate() {
            if ta.has(*f) {
                self.anomalies[i] += 1;
            }
        }
        if ta.has(flags::DUP_ACK) {
            s.dup_acks += 1;
        }
        if ta.has(flags::OUT_OF_ORDER) {
            s.ooo += 1;
        }
        if ta.has(flags::LOST_SEGMENT) {
            s.lost += 1;
        }
        if ta.has(flags::ZERO_WINDOW) {
            s.zero_window += 1;
        }
        if !ta.is_retransmission() {
            return;
        }
        s.retrans += 1;
        self.total += 1;
        let is_syn = tcp.has(TCP_SYN);
        let delay_ms = ta.rto_ns as f64 / 1e6;
        let kind = if ta.has(flags::FAST_RETRANSMISSION) {
            s.fast += 1;
            self.fast += 1;
            "fast_retransmission"
        } else if ta.has(flags::SPURIOUS_RETRANSMISSION) {
            s.spurious += 1;
            self.spurious += 1;
            "spurious_retransmission"
        } else if is_syn {
            self.syn += 1;
            "syn_retransmission"
        } else if delay_ms >= self.t.rto_threshold_ms {
            self.rto += 1;
            "rto"
        } else {
            "retransmission"
        };
        if self.events.len() < MAX_FINDINGS {
            let ip = pkt.ip().copied();
            self.events.push(RetransmissionEvent {
                packet_num: pkt.number,
                timestamp: crate::time::iso_utc(pkt.ts_ns),
                stream: ta.stream,
                src_ip: ip.map(|i| i.src.to_string()).unwrap_or_default(),
                src_port: tcp.src_port,
                dst_ip: ip.map(|i| i.dst.to_string()).unwrap_or_default(),
                dst_port: tcp.dst_port,
                seq_num: tcp.seq,
                segment_length: tcp.seg_len,
                retrans_type: kind.to_string(),
                delay_ms: round3(delay_ms),
                original_packet_num: ta.rto_frame,
                is_syn_retrans: is_syn,
                display_filter: format!(
                    "tcp.stream == {} && tcp.analysis.retransmission",
                    ta.stream
                ),
            });
        }
    }

    fn prefetch(&self, ahead: &PacketMeta) {
        self.streams.prefetch(ahead);
    }

    fn prefetch_end(&self, ending: &FlowRecord) {
        self.streams.prefetch_slot(ending.slot);
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        if let Some(s) = self.streams.take(flow.slot) {
            self.close(s);
        }
    }

    fn finish(mut self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let left: Vec<StreamStats> = self.streams.drain().map(|(_, s)| s).collect();
        for s in left {
            self.close(s);
        }
        let ranked = self.ranked.take_sorted();
        let flow_statistics = ranked
            .into_iter()
            .map(|s| {
                let stream = s.stream;
                let (src, dst) = s
                    .key
                    .map(|k| (endpoint(k.a, k.a_port), endpoint(k.b, k.b_port)))
                    .unwrap_or_default();
                FlowRetransmissions {
                    stream,
                    src,
                    dst,
                    packets: s.packets,
                    retransmissions: s.retrans,
                    retransmission_rate_pct: round3(
                        s.retrans as f64 * 100.0 / s.packets.max(1) as f64,
                    ),
                    fast_retransmissions: s.fast,
                    spurious_retransmissions: s.spurious,
                    dup_acks: s.dup_acks,
                    out_of_order: s.ooo,
                    lost_segments: s.lost,
                    zero_windows: s.zero_window,
                    severity: self.severity(&s).to_string(),
                    display_filter: format!("tcp.stream == {stream}"),
                }
            })
            .collect();
        let anomaly_types: BTreeMap<String, u64> = ANOMALY_NAMES
            .iter()
            .zip(self.anomalies)
            .map(|(n, c)| (n.to_string(), c))
            .collect();
        let total_anomalies = self.anomalies[..4].iter().sum();
        let t = &self.t;
        report.retransmission = Some(RetransmissionReport {
            total_flows: self.total_flows,
            flows_with_issues: self.flows_with_issues,
            total_retransmissions: self.total,
            fast_retrans_count: self.fast,
            spurious_count: self.spurious,
            rto_count: self.rto,
            syn_retrans_count: self.syn,
            other_retrans_count: self.total - self.fast - self.spurious - self.rto - self.syn,
            retransmission_rate_pct: round3(
                self.total as f64 * 100.0 / self.tcp_packets.max(1) as f64,
            ),
            total_tcp_packets: self.tcp_packets,
            total_anomalies,
            anomaly_types,
            severity_distribution: self
                .severity
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            thresholds: RetransThresholds {
                retransmission_low: t.retransmission_low,
                retransmission_medium: t.retransmission_medium,
                retransmission_critical: t.retransmission_critical,
                retransmission_rate_low: t.retransmission_rate_low,
                retransmission_rate_medium: t.retransmission_rate_medium,
                retransmission_rate_critical: t.retransmission_rate_critical,
                rto_threshold_ms: t.rto_threshold_ms,
            },
            retransmissions: self.events,
            flow_statistics,
        });
    }
}
