//! `ddos_detection`: floods toward one destination, counted in 10-second slots (v5):
//! * SYN flood: at least `ddos_syn_rate` pure SYNs per second while the destination answers at
//!   most one in ten with a SYN/ACK (RFC 4987 describes the attack);
//! * UDP flood: at least `ddos_udp_rate` datagrams per second;
//! * ICMP flood (ICMP and ICMPv6): at least `ddos_icmp_rate` messages per second.
//!
//! The rate divides by the time the slot's packets span (at least one second), so a capture
//! shorter than a slot is not diluted. Severity follows v5's inputs: the rate against the
//! threshold (≥ 2× medium, ≥ 5× high, ≥ 10× critical), more than 50 and more than 100 sources,
//! and more than 10 000 packets each raise it one step. A UDP flood from at most
//! [`FEW_UDP_SOURCES`] sources, or one the destination answers with at least
//! [`TWO_WAY_REPLY_RATIO`] as many datagrams, is a stream or an exchange: at most low. Consecutive flooded slots of one
//! destination and kind make one event. Distinct sources are estimated per slot with linear
//! counting (Whang et al., 1990) on a 1024-bit map, so each destination costs a fixed 200 bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::security::{
    addr_key, excluded, ip_field, key_addr, worst_first, Severity, SeverityBreakdown,
};
use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, Transport, TCP_ACK, TCP_SYN};
use crate::finding::{Cause, Evidence, Finding};
use crate::flow::{fast_map, table_cap, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round3;
use crate::Options;

/// v5's slot length.
const SLOT_NS: i64 = 10 * 1_000_000_000;
/// Destinations followed at once; past this, destinations whose slot is over are closed first.
const MAX_DESTINATIONS: usize = table_cap(1 << 16);
/// Flood events kept (one per destination and kind).
const MAX_EVENTS: usize = 10_000;
const SOURCE_BITS: usize = 1024;
/// v5: more sources than these raise the severity.
const MANY_SOURCES: u64 = 50;
const VERY_MANY_SOURCES: u64 = 100;
/// v5: more packets than this raise the severity.
const LARGE_VOLUME: u64 = 10_000;
/// A "SYN flood" over more distinct destination ports than this is a port scan.
const SCAN_PORTS: u64 = 50;
/// A UDP "flood" from this few sources is one stream (media, a bulk transfer, a benchmark):
/// at most low, the distributed attack the cause names needs many sources.
pub const FEW_UDP_SOURCES: u64 = 2;
/// A UDP "flood" whose destination sends back at least this share of datagrams is a two-way
/// exchange (peer-to-peer transfers, games, VPNs): at most low.
pub const TWO_WAY_REPLY_RATIO: f64 = 0.1;
/// SYN flood only while the victim answers at most this share of SYNs.
const MAX_SYNACK_RATIO: f64 = 0.1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DdosEvent {
    pub target_ip: String,
    /// "syn_flood", "udp_flood" or "icmp_flood".
    pub attack_type: String,
    pub severity: Severity,
    pub start_time: String,
    pub end_time: String,
    pub slots: u64,
    pub total_packets: u64,
    /// Highest packets per second in one slot.
    pub peak_rate: f64,
    /// Most distinct sources in one slot (estimated).
    pub source_count: u64,
    /// For SYN floods: SYN/ACKs returned per SYN in the worst slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synack_ratio: Option<f64>,
    pub first_packet: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DdosThresholds {
    pub syn_flood_rate: f64,
    pub udp_flood_rate: f64,
    pub icmp_flood_rate: f64,
    pub slot_seconds: f64,
    pub max_synack_ratio: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DdosReport {
    pub total_attacks_detected: u64,
    pub severity_breakdown: SeverityBreakdown,
    pub attack_type_breakdown: BTreeMap<String, u64>,
    /// Worst first, at most `MAX_FINDINGS`.
    pub ddos_events: Vec<DdosEvent>,
    pub destinations_not_tracked: u64,
    pub detection_thresholds: DdosThresholds,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Syn,
    Udp,
    Icmp,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Syn => "syn_flood",
            Kind::Udp => "udp_flood",
            Kind::Icmp => "icmp_flood",
        }
    }
}

#[derive(Clone)]
struct Slot {
    index: i64,
    first_ns: i64,
    last_ns: i64,
    first_frame: [u64; 3],
    counts: [u64; 3],
    synacks: u64,
    /// UDP datagrams the destination sent in the slot.
    udp_replies: u64,
    sources: [u64; SOURCE_BITS / 64],
    /// Destination ports of the SYNs, same linear counting.
    ports: [u64; SOURCE_BITS / 64],
}

impl Slot {
    fn new(index: i64) -> Self {
        Slot {
            index,
            first_ns: 0,
            last_ns: 0,
            first_frame: [0; 3],
            counts: [0; 3],
            synacks: 0,
            udp_replies: 0,
            sources: [0; SOURCE_BITS / 64],
            ports: [0; SOURCE_BITS / 64],
        }
    }

    fn distinct_sources(&self) -> u64 {
        linear_count(&self.sources)
    }

    /// Packets per second of kind `i` over the slot (its span counted as at least 1 s).
    fn rate(&self, i: usize) -> f64 {
        let span_s = ((self.last_ns - self.first_ns) as f64 / 1e9).max(1.0);
        self.counts[i] as f64 / span_s
    }

    /// Packets of kind `i` came at `limit` per second or faster.
    fn reached(&self, i: usize, limit: f64) -> bool {
        self.counts[i] > 0 && self.rate(i) >= limit
    }
}

/// A cheap, well-spread hash for the linear-counting bitmaps (the 128-bit multiply of
/// wyhash/foldhash, folded).
fn mix(v: u128) -> u64 {
    let lo = (v as u64) ^ 0x9E37_79B9_7F4A_7C15;
    let hi = ((v >> 64) as u64) ^ 0xD6E8_FEB8_6659_FD93;
    let m = u128::from(lo).wrapping_mul(u128::from(hi | 1));
    let x = (m as u64) ^ ((m >> 64) as u64);
    let m2 = u128::from(x).wrapping_mul(0x2545_F491_4F6C_DD1D);
    (m2 as u64) ^ ((m2 >> 64) as u64)
}

/// Linear counting estimate of the distinct values hashed into `bits`.
fn linear_count(bits: &[u64; SOURCE_BITS / 64]) -> u64 {
    let ones: u32 = bits.iter().map(|w| w.count_ones()).sum();
    let zeros = SOURCE_BITS as f64 - f64::from(ones);
    if zeros <= 0.0 {
        return SOURCE_BITS as u64 * 8;
    }
    (SOURCE_BITS as f64 * (SOURCE_BITS as f64 / zeros).ln()).round() as u64
}

struct Flood {
    severity: Severity,
    start_ns: i64,
    end_ns: i64,
    last_slot: i64,
    slots: u64,
    packets: u64,
    peak_rate: f64,
    sources: u64,
    synack_ratio: Option<f64>,
    first_frame: u64,
}

pub struct DdosDetection {
    rates: [f64; 3],
    include_localhost: bool,
    slots: FastMap<u128, Slot>,
    floods: FastMap<(u128, Kind), Flood>,
    not_tracked: u64,
}

impl DdosDetection {
    pub fn new(config: &Config, options: &Options) -> Self {
        let t = &config.thresholds;
        DdosDetection {
            rates: [t.ddos_syn_rate, t.ddos_udp_rate, t.ddos_icmp_rate],
            include_localhost: options.include_localhost,
            slots: fast_map(),
            floods: fast_map(),
            not_tracked: 0,
        }
    }

    fn close_slot(&mut self, dst: u128, slot: &Slot) {
        for kind in [Kind::Syn, Kind::Udp, Kind::Icmp] {
            let i = kind as usize;
            let (n, rate, threshold) = (slot.counts[i], slot.rate(i), self.rates[i]);
            if !slot.reached(i, threshold) {
                continue;
            }
            let synack_ratio = (kind == Kind::Syn).then(|| slot.synacks as f64 / n as f64);
            if synack_ratio.is_some_and(|r| r > MAX_SYNACK_RATIO) {
                continue;
            }
            // SYNs spread over many ports are a port scan (reported by port_scan_detection),
            // not a flood of one service.
            if kind == Kind::Syn && linear_count(&slot.ports) > SCAN_PORTS {
                continue;
            }
            let sources = slot.distinct_sources();
            let mut severity = if rate >= threshold * 10.0 {
                Severity::Critical
            } else if rate >= threshold * 5.0 {
                Severity::High
            } else if rate >= threshold * 2.0 {
                Severity::Medium
            } else {
                Severity::Low
            };
            if sources > MANY_SOURCES {
                severity = severity.bump();
            }
            if sources > VERY_MANY_SOURCES {
                severity = severity.bump();
            }
            if n > LARGE_VOLUME {
                severity = severity.bump();
            }
            if kind == Kind::Udp
                && (sources <= FEW_UDP_SOURCES
                    || slot.udp_replies as f64 >= TWO_WAY_REPLY_RATIO * n as f64)
            {
                severity = severity.min(Severity::Low);
            }
            let key = (dst, kind);
            if self.floods.len() >= MAX_EVENTS && !self.floods.contains_key(&key) {
                continue;
            }
            let f = self.floods.entry(key).or_insert(Flood {
                severity,
                start_ns: slot.first_ns,
                end_ns: slot.last_ns,
                last_slot: slot.index,
                slots: 0,
                packets: 0,
                peak_rate: 0.0,
                sources: 0,
                synack_ratio: None,
                first_frame: slot.first_frame[i],
            });
            f.severity = f.severity.max(severity);
            f.end_ns = slot.last_ns;
            f.last_slot = slot.index;
            f.slots += 1;
            f.packets += n;
            if rate > f.peak_rate {
                f.peak_rate = rate;
                f.synack_ratio = synack_ratio;
            }
            f.sources = f.sources.max(sources);
        }
    }

    fn count(&mut self, dst: u128, src: u128, dport: u16, kind: Kind, pkt: &Packet<'_>) {
        let index = pkt.ts_ns.div_euclid(SLOT_NS);
        if self.slots.len() >= MAX_DESTINATIONS && !self.slots.contains_key(&dst) {
            let ended: Vec<(u128, Slot)> = self
                .slots
                .iter()
                .filter(|(_, s)| s.index < index)
                .map(|(ip, s)| (*ip, s.clone()))
                .collect();
            for (ip, s) in ended {
                self.slots.remove(&ip);
                self.close_slot(ip, &s);
            }
            if self.slots.len() >= MAX_DESTINATIONS {
                self.not_tracked += 1;
                return;
            }
        }
        let bit = (mix(src) as usize) % SOURCE_BITS;
        let slot = self.slots.entry(dst).or_insert_with(|| Slot::new(index));
        // A slot of an earlier time window starts again; the old one is closed below if some
        // kind reached its flood rate, the only case it has anything to report (most have not:
        // they are reset without a copy).
        let rates = self.rates;
        let closed = match slot.index != index {
            true if (0..3).any(|i| slot.reached(i, rates[i])) => {
                Some(std::mem::replace(slot, Slot::new(index)))
            }
            true => {
                *slot = Slot::new(index);
                None
            }
            false => None,
        };
        if slot.first_ns == 0 {
            slot.first_ns = pkt.ts_ns;
        }
        slot.last_ns = pkt.ts_ns;
        let i = kind as usize;
        if slot.counts[i] == 0 {
            slot.first_frame[i] = pkt.number;
        }
        slot.counts[i] += 1;
        slot.sources[bit / 64] |= 1 << (bit % 64);
        if kind == Kind::Syn {
            let pbit = (mix(u128::from(dport)) as usize) % SOURCE_BITS;
            slot.ports[pbit / 64] |= 1 << (pbit % 64);
        }
        if let Some(old) = closed {
            self.close_slot(dst, &old);
        }
    }
}

impl Analyzer for DdosDetection {
    fn packets(&self) -> Kinds {
        Kinds::SYN | Kinds::UDP | Kinds::ICMP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, _meta: &PacketMeta) {
        let kind = match &pkt.transport {
            Transport::Tcp(t) if t.has(TCP_SYN) => {
                if t.has(TCP_ACK) {
                    // The victim's answers: a SYN/ACK from the destination being counted.
                    if let Some(ip) = pkt.ip() {
                        if let Some(s) = self.slots.get_mut(&addr_key(ip.src)) {
                            s.synacks += 1;
                        }
                    }
                    return;
                }
                Kind::Syn
            }
            Transport::Udp(_) => {
                if let Some(ip) = pkt.ip() {
                    if let Some(s) = self.slots.get_mut(&addr_key(ip.src)) {
                        s.udp_replies += 1;
                    }
                }
                Kind::Udp
            }
            Transport::Icmp(_) => Kind::Icmp,
            _ => return,
        };
        let Some(ip) = pkt.ip() else { return };
        if excluded(ip, self.include_localhost) {
            return;
        }
        let dport = pkt.tcp().map(|t| t.dst_port).unwrap_or(0);
        self.count(addr_key(ip.dst), addr_key(ip.src), dport, kind, pkt);
    }

    fn finish(mut self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let slots = std::mem::take(&mut self.slots);
        for (ip, s) in slots {
            self.close_slot(ip, &s);
        }
        let mut events: Vec<DdosEvent> = self
            .floods
            .iter()
            .map(|((key, kind), f)| {
                let ip = key_addr(*key);
                let proto = match kind {
                    Kind::Syn => "tcp.flags.syn == 1 && tcp.flags.ack == 0",
                    Kind::Udp => "udp",
                    Kind::Icmp => "icmp || icmpv6",
                };
                DdosEvent {
                    target_ip: ip.to_string(),
                    attack_type: kind.name().to_string(),
                    severity: f.severity,
                    start_time: crate::time::iso_utc(f.start_ns),
                    end_time: crate::time::iso_utc(f.end_ns),
                    slots: f.slots,
                    total_packets: f.packets,
                    peak_rate: round3(f.peak_rate),
                    source_count: f.sources,
                    synack_ratio: f.synack_ratio.map(round3),
                    first_packet: f.first_frame,
                    display_filter: format!("{} && ({proto})", ip_field(ip, "dst")),
                }
            })
            .collect();
        worst_first(
            &mut events,
            |e| e.severity,
            |e| e.total_packets as f64,
            |e| e.first_packet,
        );
        let mut attack_type_breakdown = BTreeMap::new();
        for e in &events {
            *attack_type_breakdown
                .entry(e.attack_type.clone())
                .or_insert(0) += 1;
        }
        let severity_breakdown = SeverityBreakdown::of(events.iter().map(|e| &e.severity));
        let total = events.len() as u64;
        events.truncate(MAX_FINDINGS);
        report.findings.extend(events.iter().map(finding));
        report.ddos_detection = Some(DdosReport {
            total_attacks_detected: total,
            severity_breakdown,
            attack_type_breakdown,
            ddos_events: events,
            destinations_not_tracked: self.not_tracked,
            detection_thresholds: DdosThresholds {
                syn_flood_rate: self.rates[0],
                udp_flood_rate: self.rates[1],
                icmp_flood_rate: self.rates[2],
                slot_seconds: (SLOT_NS / 1_000_000_000) as f64,
                max_synack_ratio: MAX_SYNACK_RATIO,
            },
        });
    }
}

/// The typed finding of one flood.
fn finding(e: &DdosEvent) -> Finding {
    let what = match e.attack_type.as_str() {
        "syn_flood" => "SYN flood",
        "udp_flood" => "UDP flood",
        _ => "ICMP flood",
    };
    let answered = e
        .synack_ratio
        .map(|r| format!(", {:.0} % answered by a SYN/ACK", r * 100.0))
        .unwrap_or_default();
    let summary = format!(
        "{what} toward {}: {} packets from about {} sources, peak {:.0} packets/s{answered}",
        e.target_ip, e.total_packets, e.source_count, e.peak_rate
    );
    let mut evidence = Evidence::new()
        .with("packets", e.total_packets as f64)
        .with("peak_rate_per_s", e.peak_rate)
        .with("sources", e.source_count as f64)
        .with("slots", e.slots as f64);
    if let Some(r) = e.synack_ratio {
        evidence = evidence.with("synack_ratio", r);
    }
    Finding::new("ddos_detection", e.severity, summary)
        .cause(Cause::Ddos)
        .evidence(evidence)
        .hosts([e.target_ip.clone()])
        .frames([e.first_packet])
        .filter(e.display_filter.clone())
}
