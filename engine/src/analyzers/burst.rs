//! `burst`: traffic cut into intervals of `burst_interval_ms` (v5: `int(ts / interval)`); an
//! interval is a burst when it holds at least `max(avg × burst_threshold_multiplier,
//! burst_min_packets)` frames, the average being over non-empty intervals. Bursts less than
//! 200 ms apart are merged, as in v5.
//!
//! Only intervals that can become bursts (at least `burst_min_packets` frames) are kept, with
//! their top sources, destinations and protocol mix taken when the interval closes; the others
//! only feed the running statistics. Memory is bounded by [`MAX_CANDIDATES`] however long the
//! capture is. Frames whose timestamp goes back in time count in the current interval.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Layer4, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{fast_map, FastMap};
use crate::report::Report;
use crate::stats::round3;
use crate::time::iso_utc;
use crate::Options;

/// v5 kept at most 100 000 intervals; here that bounds the intervals that may be bursts.
pub const MAX_CANDIDATES: usize = 100_000;
/// v5 merges bursts closer than this.
const MERGE_GAP_NS: i64 = 200 * 1_000_000;
/// v5 lists at most 50 bursts (the largest ones are kept, in time order).
const MAX_BURSTS: usize = 50;
/// Top sources and destinations kept per burst (v5: 5).
const TOP_ADDRESSES: usize = 5;
/// Distinct addresses counted within one interval; a spoofed flood counts the rest as one.
const MAX_ADDRESSES_PER_INTERVAL: usize = 4_096;
/// Shortest interval accepted: a configured 0 would put every frame in its own interval.
const MIN_INTERVAL_NS: i64 = 1_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AddressCount {
    pub ip: String,
    pub packets: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Burst {
    pub start_time: String,
    pub end_time: String,
    pub duration_ms: f64,
    pub packet_count: u64,
    pub bytes: u64,
    /// Intervals of `burst_interval_ms` in the burst (after merging).
    pub intervals: u64,
    pub peak_packets_per_interval: u64,
    pub packets_per_second: f64,
    /// Peak interval over the average interval.
    pub intensity: f64,
    pub first_packet: u64,
    pub last_packet: u64,
    pub top_sources: Vec<AddressCount>,
    pub top_destinations: Vec<AddressCount>,
    /// Frames per protocol: TCP, UDP, ICMP, Other.
    pub protocol_breakdown: BTreeMap<String, u64>,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BurstSummary {
    pub total_packets: u64,
    pub total_bytes: u64,
    pub interval_ms: f64,
    /// Non-empty intervals.
    pub total_intervals: u64,
    pub threshold_multiplier: f64,
    pub min_packets: u64,
    /// Frames an interval needs to be a burst.
    pub burst_threshold_packets: f64,
    pub bursts_detected: u64,
    pub packets_in_bursts: u64,
    pub bytes_in_bursts: u64,
    pub burst_packet_percentage: f64,
    pub max_packets_per_interval: u64,
    pub peak_packets_per_second: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntervalStats {
    /// Frames per non-empty interval.
    pub avg: f64,
    pub max: u64,
    pub min: u64,
    pub std: f64,
    /// Coefficient of variation in percent.
    pub cv: f64,
    /// "regular" (cv < 50 %), "variable" (< 100 %) or "very irregular" (v5 wrote this in French).
    pub traffic_regularity: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BurstReport {
    pub summary: BurstSummary,
    pub interval_stats: IntervalStats,
    pub bursts: Vec<Burst>,
    pub worst_burst: Option<Burst>,
}

/// An interval with enough frames to become a burst.
#[derive(Debug, Clone)]
struct Candidate {
    idx: i64,
    packets: u64,
    bytes: u64,
    protocols: [u64; 4],
    first_packet: u64,
    last_packet: u64,
    top_src: Vec<(IpAddr, u64)>,
    top_dst: Vec<(IpAddr, u64)>,
}

/// The interval being filled.
struct Current {
    idx: i64,
    packets: u64,
    bytes: u64,
    protocols: [u64; 4],
    first_packet: u64,
    last_packet: u64,
    src: FastMap<IpAddr, u64>,
    dst: FastMap<IpAddr, u64>,
}

pub struct BurstAnalyzer {
    interval_ns: i64,
    multiplier: f64,
    min_packets: u64,
    cur: Option<Current>,
    intervals: u64,
    sum: f64,
    sum_sq: f64,
    max: u64,
    min: u64,
    total_packets: u64,
    total_bytes: u64,
    candidates: Vec<Candidate>,
}

impl BurstAnalyzer {
    pub fn new(config: &Config, _options: &Options) -> Self {
        let t = &config.thresholds;
        BurstAnalyzer {
            interval_ns: ((t.burst_interval_ms * 1e6) as i64).max(MIN_INTERVAL_NS),
            multiplier: t.burst_threshold_multiplier,
            min_packets: t.burst_min_packets,
            cur: None,
            intervals: 0,
            sum: 0.0,
            sum_sq: 0.0,
            max: 0,
            min: u64::MAX,
            total_packets: 0,
            total_bytes: 0,
            candidates: Vec::new(),
        }
    }

    fn avg(&self) -> f64 {
        if self.intervals == 0 {
            0.0
        } else {
            self.sum / self.intervals as f64
        }
    }

    fn close(&mut self, c: &mut Current) {
        self.intervals += 1;
        let n = c.packets as f64;
        self.sum += n;
        self.sum_sq += n * n;
        self.max = self.max.max(c.packets);
        self.min = self.min.min(c.packets);
        if c.packets >= self.min_packets.max(1) {
            if self.candidates.len() >= MAX_CANDIDATES {
                self.shrink_candidates();
            }
            self.candidates.push(Candidate {
                idx: c.idx,
                packets: c.packets,
                bytes: c.bytes,
                protocols: c.protocols,
                first_packet: c.first_packet,
                last_packet: c.last_packet,
                top_src: top(c.src.drain()),
                top_dst: top(c.dst.drain()),
            });
        }
        c.src.clear();
        c.dst.clear();
    }

    /// Keeps the candidates that still pass the threshold with the average so far, and if that
    /// is not enough, the larger half.
    fn shrink_candidates(&mut self) {
        let threshold = (self.avg() * self.multiplier).max(self.min_packets as f64);
        self.candidates.retain(|c| c.packets as f64 >= threshold);
        if self.candidates.len() >= MAX_CANDIDATES * 3 / 4 {
            self.candidates
                .sort_by_key(|c| std::cmp::Reverse(c.packets));
            self.candidates.truncate(MAX_CANDIDATES / 2);
            self.candidates.sort_by_key(|c| c.idx);
        }
    }
}

fn top(it: impl Iterator<Item = (IpAddr, u64)>) -> Vec<(IpAddr, u64)> {
    let mut v: Vec<(IpAddr, u64)> = it.collect();
    let by_count = |a: &(IpAddr, u64), b: &(IpAddr, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
    if v.len() > TOP_ADDRESSES {
        v.select_nth_unstable_by(TOP_ADDRESSES - 1, by_count);
        v.truncate(TOP_ADDRESSES);
    }
    v.sort_by(by_count);
    // Kept for every candidate interval: give back the capacity of the whole interval.
    v.shrink_to_fit();
    v
}

fn merge_top(into: &mut Vec<(IpAddr, u64)>, from: &[(IpAddr, u64)]) {
    for &(ip, n) in from {
        match into.iter_mut().find(|(a, _)| *a == ip) {
            Some(e) => e.1 += n,
            None => into.push((ip, n)),
        }
    }
}

fn protocol_index(l4: Option<Layer4>) -> usize {
    match l4 {
        Some(Layer4::Tcp) => 0,
        Some(Layer4::Udp) => 1,
        Some(Layer4::Icmp) => 2,
        _ => 3,
    }
}

const PROTOCOL_NAMES: [&str; 4] = ["TCP", "UDP", "ICMP", "Other"];

impl Analyzer for BurstAnalyzer {
    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        if !pkt.ts_known {
            return;
        }
        let len = u64::from(pkt.wire_len);
        self.total_packets += 1;
        self.total_bytes += len;
        let idx = pkt.ts_ns.div_euclid(self.interval_ns);
        // The interval is updated in place: it holds two address tables, too big to move per packet.
        if let Some(mut c) = self.cur.take_if(|c| idx > c.idx) {
            self.close(&mut c);
            c.idx = idx;
            c.packets = 0;
            c.bytes = 0;
            c.protocols = [0; 4];
            c.first_packet = pkt.number;
            self.cur = Some(c);
        }
        let cur = self.cur.get_or_insert_with(|| Current {
            idx,
            packets: 0,
            bytes: 0,
            protocols: [0; 4],
            first_packet: pkt.number,
            last_packet: pkt.number,
            src: fast_map(),
            dst: fast_map(),
        });
        cur.packets += 1;
        cur.bytes += len;
        cur.last_packet = pkt.number;
        cur.protocols[protocol_index(meta.layer4)] += 1;
        if let Some(ip) = pkt.ip() {
            for (map, addr) in [(&mut cur.src, ip.src), (&mut cur.dst, ip.dst)] {
                if let Some(n) = map.get_mut(&addr) {
                    *n += 1;
                } else if map.len() < MAX_ADDRESSES_PER_INTERVAL {
                    map.insert(addr, 1);
                }
            }
        }
    }

    fn finish(mut self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        if let Some(mut c) = self.cur.take() {
            self.close(&mut c);
        }
        let avg = self.avg();
        let n = self.intervals as f64;
        let std = if self.intervals >= 2 {
            ((self.sum_sq - n * avg * avg) / (n - 1.0)).max(0.0).sqrt()
        } else {
            0.0
        };
        let cv = if avg > 0.0 { std / avg * 100.0 } else { 0.0 };
        let threshold = (avg * self.multiplier).max(self.min_packets as f64);
        let iv = self.interval_ns;
        let mut bursts: Vec<Burst> = Vec::new();
        let mut open: Option<(Candidate, i64, u64, u64)> = None; // (sum, last idx, intervals, peak)
        let finish_burst = |(c, last_idx, intervals, peak): (Candidate, i64, u64, u64)| {
            let start = c.idx.saturating_mul(iv);
            let end = last_idx.saturating_add(1).saturating_mul(iv);
            let duration_ms = (end - start) as f64 / 1e6;
            let addr = |v: Vec<(IpAddr, u64)>| {
                top(v.into_iter())
                    .into_iter()
                    .map(|(ip, packets)| AddressCount {
                        ip: ip.to_string(),
                        packets,
                    })
                    .collect()
            };
            Burst {
                start_time: iso_utc(start),
                end_time: iso_utc(end),
                duration_ms: round3(duration_ms),
                packet_count: c.packets,
                bytes: c.bytes,
                intervals,
                peak_packets_per_interval: peak,
                packets_per_second: round3(c.packets as f64 * 1000.0 / duration_ms.max(1e-9)),
                intensity: round3(if avg > 0.0 { peak as f64 / avg } else { 0.0 }),
                first_packet: c.first_packet,
                last_packet: c.last_packet,
                display_filter: format!(
                    "frame.number >= {} && frame.number <= {}",
                    c.first_packet, c.last_packet
                ),
                top_sources: addr(c.top_src),
                top_destinations: addr(c.top_dst),
                protocol_breakdown: PROTOCOL_NAMES
                    .iter()
                    .zip(c.protocols)
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
            }
        };
        for c in self.candidates {
            if (c.packets as f64) < threshold {
                continue;
            }
            open = match open.take() {
                Some((mut b, last_idx, intervals, peak))
                    if (c.idx - last_idx - 1).saturating_mul(iv) <= MERGE_GAP_NS =>
                {
                    b.packets += c.packets;
                    b.bytes += c.bytes;
                    for (x, y) in b.protocols.iter_mut().zip(c.protocols) {
                        *x += y;
                    }
                    b.last_packet = c.last_packet;
                    merge_top(&mut b.top_src, &c.top_src);
                    merge_top(&mut b.top_dst, &c.top_dst);
                    Some((b, c.idx, intervals + 1, peak.max(c.packets)))
                }
                Some(done) => {
                    bursts.push(finish_burst(done));
                    let (idx, p) = (c.idx, c.packets);
                    Some((c, idx, 1, p))
                }
                None => {
                    let (idx, p) = (c.idx, c.packets);
                    Some((c, idx, 1, p))
                }
            };
        }
        if let Some(done) = open {
            bursts.push(finish_burst(done));
        }
        let detected = bursts.len() as u64;
        let packets_in_bursts: u64 = bursts.iter().map(|b| b.packet_count).sum();
        let bytes_in_bursts: u64 = bursts.iter().map(|b| b.bytes).sum();
        let worst_burst = bursts
            .iter()
            .max_by(|a, b| {
                a.peak_packets_per_interval
                    .cmp(&b.peak_packets_per_interval)
                    .then(b.first_packet.cmp(&a.first_packet))
            })
            .cloned();
        if bursts.len() > MAX_BURSTS {
            bursts.sort_by(|a, b| {
                b.packet_count
                    .cmp(&a.packet_count)
                    .then(a.first_packet.cmp(&b.first_packet))
            });
            bursts.truncate(MAX_BURSTS);
            bursts.sort_by_key(|b| b.first_packet);
        }
        let regularity = if cv < 50.0 {
            "regular"
        } else if cv < 100.0 {
            "variable"
        } else {
            "very irregular"
        };
        report.burst = Some(BurstReport {
            summary: BurstSummary {
                total_packets: self.total_packets,
                total_bytes: self.total_bytes,
                interval_ms: iv as f64 / 1e6,
                total_intervals: self.intervals,
                threshold_multiplier: self.multiplier,
                min_packets: self.min_packets,
                burst_threshold_packets: round3(threshold),
                bursts_detected: detected,
                packets_in_bursts,
                bytes_in_bursts,
                burst_packet_percentage: round3(
                    packets_in_bursts as f64 * 100.0 / self.total_packets.max(1) as f64,
                ),
                max_packets_per_interval: self.max,
                peak_packets_per_second: round3(self.max as f64 * 1e9 / iv as f64),
            },
            interval_stats: IntervalStats {
                avg: round3(avg),
                max: self.max,
                min: if self.intervals == 0 { 0 } else { self.min },
                std: round3(std),
                cv: round3(cv),
                traffic_regularity: regularity.to_string(),
            },
            bursts,
            worst_burst,
        });
    }
}
