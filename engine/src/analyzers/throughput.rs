//! `throughput`: bytes and rate per flow (TCP/UDP 5-tuple, or IP pair and protocol for the rest),
//! v5's "slow flows" (longer than 1 s, under 1 Mbit/s, more than 10 000 bytes), the capture's
//! overall rate, and traffic over time (packets and bytes per time bucket) for the HTML chart.
//!
//! Rates use SI units (1 Mbit/s = 10^6 bit/s) on frame lengths as captured on the wire, as
//! Wireshark's conversation statistics do.

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{Direction, FlowRecord};
use crate::report::{top_n, Report, MAX_RANKED};
use crate::stats::{round3, round6};
use crate::Options;

/// v5's slow flow: longer than this...
const SLOW_MIN_DURATION_S: f64 = 1.0;
/// ...slower than this...
const SLOW_MAX_MBPS: f64 = 1.0;
/// ...and carrying more than this.
const SLOW_MIN_BYTES: u64 = 10_000;
/// v5 lists the ten slowest flows.
const SLOW_FLOWS_LISTED: usize = 10;
/// Points of the traffic timeline at most; longer captures get wider buckets.
const MAX_TIMELINE_POINTS: usize = 600;
/// Narrowest timeline bucket (1 ms); buckets widen by 2 and 5 in turn (1, 2, 10, 20, 100 ms...).
const FIRST_BUCKET_NS: i64 = 1_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GlobalThroughput {
    pub total_bytes: u64,
    pub total_packets: u64,
    pub duration_seconds: f64,
    pub throughput_mbps: f64,
    pub throughput_kbps: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowThroughput {
    /// "a:port <-> b:port", the first sender first.
    pub flow: String,
    pub protocol: String,
    pub src: String,
    pub dst: String,
    /// From `src` to `dst`.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub total_bytes: u64,
    pub packets: u64,
    pub duration_seconds: f64,
    pub throughput_mbps: f64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Start of the bucket, seconds since the capture start.
    pub t: f64,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timeline {
    pub bucket_seconds: f64,
    pub points: Vec<TimelinePoint>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThroughputReport {
    pub global_throughput: GlobalThroughput,
    pub total_flows: u64,
    pub slow_flows_count: u64,
    /// Flows with the most bytes.
    pub top_flows: Vec<FlowThroughput>,
    /// The slowest of the slow flows.
    pub slow_flows: Vec<FlowThroughput>,
    /// Traffic over time.
    pub timeline: Timeline,
}

/// Packets and bytes per bucket from the first packet on; when a packet falls past the last
/// allowed bucket, buckets merge (width ×2 or ×5) so the series stays bounded.
struct Buckets {
    start: Option<i64>,
    width_ns: i64,
    widenings: u32,
    counts: Vec<(u64, u64)>,
}

impl Buckets {
    fn add(&mut self, ts: i64, bytes: u64) {
        let start = *self.start.get_or_insert(ts);
        // A timestamp going backwards counts in the first bucket.
        let offset = ts.saturating_sub(start).max(0);
        let mut idx = offset / self.width_ns;
        while idx >= MAX_TIMELINE_POINTS as i64 {
            self.widen();
            idx = offset / self.width_ns;
        }
        let idx = idx as usize;
        if idx >= self.counts.len() {
            self.counts.resize(idx + 1, (0, 0));
        }
        let c = &mut self.counts[idx];
        c.0 += 1;
        c.1 += bytes;
    }

    fn widen(&mut self) {
        let factor: usize = if self.widenings % 2 == 0 { 2 } else { 5 };
        self.widenings += 1;
        self.width_ns = self.width_ns.saturating_mul(factor as i64);
        self.counts = self
            .counts
            .chunks(factor)
            .map(|c| c.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)))
            .collect();
    }

    fn timeline(&self) -> Timeline {
        let w = self.width_ns as f64 / 1e9;
        Timeline {
            bucket_seconds: round6(w),
            points: self
                .counts
                .iter()
                .enumerate()
                .map(|(i, &(packets, bytes))| TimelinePoint {
                    t: round6(i as f64 * w),
                    packets,
                    bytes,
                })
                .collect(),
        }
    }
}

/// Per-flow totals come from the shared flow table (when a flow is evicted and at the end), so
/// the per-packet cost is one timeline bucket update.
pub struct Throughput {
    total_flows: u64,
    slow_count: u64,
    top: Vec<FlowThroughput>,
    /// Bytes of the last flow kept when `top` was last cut to MAX_RANKED: a flow with no more
    /// can no longer make the ranking, and is not written out.
    top_floor: u64,
    slow: Vec<FlowThroughput>,
    total_bytes: u64,
    total_packets: u64,
    buckets: Buckets,
}

fn protocol_name(p: u8) -> String {
    match p {
        6 => "TCP".into(),
        17 => "UDP".into(),
        1 => "ICMP".into(),
        58 => "ICMPv6".into(),
        other => format!("IP proto {other}"),
    }
}

impl Throughput {
    pub fn new(_config: &Config, _options: &Options) -> Self {
        Throughput {
            total_flows: 0,
            slow_count: 0,
            top: Vec::new(),
            top_floor: 0,
            slow: Vec::new(),
            total_bytes: 0,
            total_packets: 0,
            buckets: Buckets {
                start: None,
                width_ns: FIRST_BUCKET_NS,
                widenings: 0,
                counts: Vec::new(),
            },
        }
    }

    fn finish_flow(&mut self, f: &FlowRecord) {
        let key = f.key;
        self.total_flows += 1;
        let total = f.bytes[0] + f.bytes[1];
        let duration = (f.last_ts - f.first_ts).max(0) as f64 / 1e9;
        let mbps = if duration > 0.0 {
            total as f64 * 8.0 / duration / 1e6
        } else {
            0.0
        };
        let is_slow =
            duration > SLOW_MIN_DURATION_S && mbps < SLOW_MAX_MBPS && total > SLOW_MIN_BYTES;
        if is_slow {
            self.slow_count += 1;
        }
        let enters_top = self.top.len() < MAX_RANKED || total > self.top_floor;
        if !enters_top && !is_slow {
            return;
        }
        let (src, dst) = key.endpoints(f.first_dir);
        let (sent, received) = match f.first_dir {
            Direction::AtoB => (f.bytes[0], f.bytes[1]),
            Direction::BtoA => (f.bytes[1], f.bytes[0]),
        };
        let row = FlowThroughput {
            flow: format!("{src} <-> {dst}"),
            protocol: protocol_name(key.proto),
            src,
            dst,
            bytes_sent: sent,
            bytes_received: received,
            total_bytes: total,
            packets: f.packets[0] + f.packets[1],
            duration_seconds: round6(duration),
            throughput_mbps: round6(mbps),
            display_filter: key.display_filter(),
        };
        if is_slow {
            self.slow.push(row.clone());
            if self.slow.len() >= 4 * SLOW_FLOWS_LISTED {
                self.slow = top_n(std::mem::take(&mut self.slow), SLOW_FLOWS_LISTED, |r| {
                    -r.throughput_mbps
                });
            }
        }
        if enters_top {
            self.top.push(row);
            if self.top.len() >= 4 * MAX_RANKED {
                self.top = top_n(std::mem::take(&mut self.top), MAX_RANKED, |r| r.total_bytes);
                self.top_floor = self.top.last().map_or(0, |r| r.total_bytes);
            }
        }
    }
}

impl Analyzer for Throughput {
    fn on_packet(&mut self, pkt: &Packet<'_>, _meta: &PacketMeta) {
        let bytes = u64::from(pkt.wire_len);
        self.total_bytes += bytes;
        self.total_packets += 1;
        self.buckets.add(pkt.ts_ns, bytes);
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        self.finish_flow(flow);
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let mut left: Vec<&FlowRecord> = end.flows.records().collect();
        left.sort_by_key(|f| (f.first_ts, f.id));
        for f in left {
            self.finish_flow(f);
        }
        let mut top = std::mem::take(&mut self.top);
        top.sort_by(|a, b| b.total_bytes.cmp(&a.total_bytes).then(a.flow.cmp(&b.flow)));
        top.truncate(MAX_RANKED);
        let mut slow = std::mem::take(&mut self.slow);
        slow.sort_by(|a, b| {
            a.throughput_mbps
                .total_cmp(&b.throughput_mbps)
                .then(a.flow.cmp(&b.flow))
        });
        slow.truncate(SLOW_FLOWS_LISTED);
        let duration = end.duration_s();
        let mbps = if duration > 0.0 {
            self.total_bytes as f64 * 8.0 / duration / 1e6
        } else {
            0.0
        };
        report.throughput = Some(ThroughputReport {
            global_throughput: GlobalThroughput {
                total_bytes: self.total_bytes,
                total_packets: self.total_packets,
                duration_seconds: round6(duration),
                throughput_mbps: round6(mbps),
                throughput_kbps: round3(mbps * 1000.0),
            },
            total_flows: self.total_flows,
            slow_flows_count: self.slow_count,
            top_flows: top,
            slow_flows: slow,
            timeline: self.buckets.timeline(),
        });
    }
}
