//! `ip_fragmentation`: IPv4 (RFC 791) and IPv6 (RFC 8200 section 4.5) fragments grouped into
//! datagrams by (source, destination, identification, protocol), then judged: reassembled,
//! timed out (no completion within 30 s, as Linux `ipfrag_time`), or still incomplete when the
//! capture ended. Overlapping fragments (RFC 1858, RFC 5722 forbids them in IPv6) and tiny
//! fragments (RFC 1858's tiny-fragment attack) are counted and shown with their frames.
//!
//! v5 only wrote an empty placeholder for this key; the placeholder's fields are kept.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::decode::{Fragment, Packet};
use crate::flow::{fast_map, table_cap, FastMap};
use crate::report::{Report, MAX_FINDINGS, MAX_RANKED};
use crate::stats::round3;
use crate::Options;

/// A datagram not complete this long after its first fragment is dropped by the receiver
/// (Linux `net.ipv4.ipfrag_time` is 30 s; RFC 8200 section 4.5 says 60 s for IPv6, most
/// stacks use the same 30 s for both).
const REASSEMBLY_TIMEOUT_NS: i64 = 30 * 1_000_000_000;
/// Datagrams being reassembled at once; a fragment flood must not grow memory without bound.
const MAX_PENDING_DATAGRAMS: usize = table_cap(1 << 14);
/// Fragment ranges remembered per datagram: a 64 KiB datagram at a 1280-byte MTU needs 52; more
/// are counted but not checked for overlap.
const MAX_RANGES_PER_DATAGRAM: usize = 64;
/// A fragment other than the last carrying fewer bytes than this cannot come from a real path
/// MTU (IPv4 hosts must accept 576-byte datagrams, IPv6 links carry 1280): RFC 1858's tiny
/// fragments hide the transport header from filters.
const TINY_FRAGMENT_BYTES: u32 = 64;
/// Distinct (source, destination, protocol) triples counted as fragmented flows.
const MAX_FLOWS: usize = 100_000;
/// Time between two sweeps of the pending table for timed-out datagrams.
const SWEEP_EVERY_NS: i64 = 1_000_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FragmentedDatagram {
    pub src_ip: String,
    pub dst_ip: String,
    /// Protocol of the fragmented datagram (e.g. "ICMP", "UDP", "ICMPv6").
    pub protocol: String,
    pub ip_version: u8,
    pub identification: u32,
    pub fragments: u32,
    /// Payload bytes covered by the fragments received.
    pub bytes_received: u32,
    /// Length of the whole payload (known once the last fragment arrived).
    pub total_bytes: Option<u32>,
    /// "reassembled", "timeout" or "incomplete" (capture ended less than 30 s after it started).
    pub status: String,
    pub overlapping: bool,
    pub tiny_fragments: u32,
    pub first_packet: u64,
    pub last_packet: u64,
    pub first_timestamp: String,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FragmentedFlow {
    pub src_ip: String,
    pub dst_ip: String,
    pub protocol: String,
    pub fragments: u64,
    pub datagrams: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IpFragmentationReport {
    /// Frames that are fragments (IPv4 MF/offset or an IPv6 fragment header).
    pub total_fragments: u64,
    pub ipv4_fragments: u64,
    pub ipv6_fragments: u64,
    /// Datagrams that were fragmented (distinct identifications).
    pub fragmented_packets: u64,
    pub reassembled_datagrams: u64,
    /// Never completed: the timeouts plus those still waiting when the capture ended.
    pub incomplete_datagrams: u64,
    /// Incomplete 30 s after their first fragment while the capture went on.
    pub reassembly_timeouts: u64,
    /// Fragments carrying bytes already received for their datagram.
    pub overlapping_fragments: u64,
    /// Fragments other than the last with fewer than `tiny_fragment_bytes` bytes.
    pub tiny_fragments: u64,
    /// Fragments in percent of IP frames.
    pub fragmentation_rate: f64,
    pub total_ip_packets: u64,
    /// Distinct (source, destination, protocol) with fragments.
    pub flows_with_fragmentation: u64,
    pub largest_datagram_bytes: u32,
    pub thresholds: FragmentationThresholds,
    /// Problem datagrams first (overlap, timeout, incomplete, tiny), then reassembled ones.
    pub details: Vec<FragmentedDatagram>,
    pub top_fragmented_flows: Vec<FragmentedFlow>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FragmentationThresholds {
    pub reassembly_timeout_seconds: f64,
    pub tiny_fragment_bytes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct Pending {
    ranges: Vec<(u32, u32)>,
    fragments: u32,
    total: Option<u32>,
    overlapping: bool,
    tiny: u32,
    first_packet: u64,
    last_packet: u64,
    first_ts: i64,
}

impl Pending {
    /// Payload bytes covered by the (sorted, disjoint) ranges.
    fn covered(&self) -> u32 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// Adds `[start, end)`; returns true when it overlaps bytes already received.
    fn add_range(&mut self, start: u32, end: u32) -> bool {
        if end <= start {
            return false;
        }
        let overlaps = self.ranges.iter().any(|&(s, e)| start < e && s < end);
        if self.ranges.len() >= MAX_RANGES_PER_DATAGRAM {
            return overlaps;
        }
        // Merge into the disjoint, sorted list.
        let (mut s, mut e) = (start, end);
        self.ranges.retain(|&(rs, re)| {
            if rs <= e && s <= re {
                s = s.min(rs);
                e = e.max(re);
                false
            } else {
                true
            }
        });
        let at = self.ranges.partition_point(|&(rs, _)| rs < s);
        self.ranges.insert(at, (s, e));
        overlaps
    }
}

#[derive(Default, Clone, Copy)]
struct FlowCount {
    fragments: u64,
    datagrams: u64,
}

pub struct IpFragmentation {
    pending: FastMap<DatagramKey, Pending>,
    flows: FastMap<(IpAddr, IpAddr, u8), FlowCount>,
    flows_untracked: u64,
    ip_packets: u64,
    fragments: u64,
    v4: u64,
    v6: u64,
    datagrams: u64,
    reassembled: u64,
    timeouts: u64,
    overlapping: u64,
    tiny: u64,
    largest: u32,
    last_sweep_ns: i64,
    problems: Vec<FragmentedDatagram>,
    reassembled_details: Vec<FragmentedDatagram>,
}

impl IpFragmentation {
    pub fn new(_options: &Options) -> Self {
        IpFragmentation {
            pending: fast_map(),
            flows: fast_map(),
            flows_untracked: 0,
            ip_packets: 0,
            fragments: 0,
            v4: 0,
            v6: 0,
            datagrams: 0,
            reassembled: 0,
            timeouts: 0,
            overlapping: 0,
            tiny: 0,
            largest: 0,
            last_sweep_ns: i64::MIN,
            problems: Vec::new(),
            reassembled_details: Vec::new(),
        }
    }

    fn record(&mut self, key: DatagramKey, d: &Pending, status: &str) {
        let problem = status != "reassembled" || d.overlapping || d.tiny > 0;
        let list = if problem {
            &mut self.problems
        } else {
            &mut self.reassembled_details
        };
        if list.len() >= MAX_FINDINGS {
            return;
        }
        let v6 = key.src.is_ipv6();
        let display_filter = if v6 {
            format!(
                "ipv6.src == {} && ipv6.dst == {} && ipv6.fragment.id == 0x{:08x}",
                key.src, key.dst, key.id
            )
        } else {
            format!(
                "ip.src == {} && ip.dst == {} && ip.id == 0x{:04x}",
                key.src, key.dst, key.id
            )
        };
        list.push(FragmentedDatagram {
            src_ip: key.src.to_string(),
            dst_ip: key.dst.to_string(),
            protocol: protocol_name(key.proto, v6),
            ip_version: if v6 { 6 } else { 4 },
            identification: key.id,
            fragments: d.fragments,
            bytes_received: d.covered(),
            total_bytes: d.total,
            status: status.to_string(),
            overlapping: d.overlapping,
            tiny_fragments: d.tiny,
            first_packet: d.first_packet,
            last_packet: d.last_packet,
            first_timestamp: crate::time::iso_utc(d.first_ts),
            display_filter,
        });
    }

    /// Ends every datagram older than the reassembly timeout.
    fn sweep(&mut self, now_ns: i64) {
        let expired: Vec<DatagramKey> = self
            .pending
            .iter()
            .filter(|(_, d)| now_ns.saturating_sub(d.first_ts) > REASSEMBLY_TIMEOUT_NS)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(d) = self.pending.remove(&key) {
                self.timeouts += 1;
                self.record(key, &d, "timeout");
            }
        }
    }

    fn fragment(&mut self, pkt: &Packet<'_>, src: IpAddr, dst: IpAddr, proto: u8, f: Fragment) {
        let len = pkt.ip().map(|i| i.payload_wire_len).unwrap_or(0);
        self.fragments += 1;
        if src.is_ipv6() {
            self.v6 += 1;
        } else {
            self.v4 += 1;
        }
        if pkt.ts_ns.saturating_sub(self.last_sweep_ns) >= SWEEP_EVERY_NS {
            self.last_sweep_ns = pkt.ts_ns;
            self.sweep(pkt.ts_ns);
        }
        let key = DatagramKey {
            src,
            dst,
            id: f.id,
            proto,
        };
        if self.pending.len() >= MAX_PENDING_DATAGRAMS && !self.pending.contains_key(&key) {
            // Table full of live datagrams: the oldest one is given up as timed out.
            if let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, d)| d.first_ts)
                .map(|(k, _)| *k)
            {
                if let Some(d) = self.pending.remove(&oldest) {
                    self.timeouts += 1;
                    self.record(oldest, &d, "timeout");
                }
            }
        }
        let new = !self.pending.contains_key(&key);
        let d = self.pending.entry(key).or_insert_with(|| Pending {
            ranges: Vec::new(),
            fragments: 0,
            total: None,
            overlapping: false,
            tiny: 0,
            first_packet: pkt.number,
            last_packet: pkt.number,
            first_ts: pkt.ts_ns,
        });
        d.fragments = d.fragments.saturating_add(1);
        d.last_packet = pkt.number;
        let end = f.offset.saturating_add(len);
        if d.add_range(f.offset, end) {
            self.overlapping += 1;
            d.overlapping = true;
        }
        if f.more && len < TINY_FRAGMENT_BYTES {
            d.tiny += 1;
            self.tiny += 1;
        }
        if !f.more {
            d.total = Some(end);
        }
        let complete = d.total.is_some_and(|t| d.covered() >= t);
        if new {
            self.datagrams += 1;
        }
        if self.flows.len() < MAX_FLOWS || self.flows.contains_key(&(src, dst, proto)) {
            let fc = self.flows.entry((src, dst, proto)).or_default();
            fc.fragments += 1;
            if new {
                fc.datagrams += 1;
            }
        } else if new {
            self.flows_untracked += 1;
        }
        if complete {
            if let Some(d) = self.pending.remove(&key) {
                self.reassembled += 1;
                self.largest = self.largest.max(d.total.unwrap_or(0));
                self.record(key, &d, "reassembled");
            }
        }
    }
}

fn protocol_name(proto: u8, v6: bool) -> String {
    match proto {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        other if v6 => format!("IPv6 next header {other}"),
        other => format!("IP protocol {other}"),
    }
}

impl Analyzer for IpFragmentation {
    fn packets(&self) -> Kinds {
        Kinds::IP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, _meta: &PacketMeta) {
        let Some(ip) = pkt.ip() else { return };
        self.ip_packets += 1;
        if let Some(f) = ip.fragment {
            let (src, dst, proto) = (ip.src, ip.dst, ip.proto);
            self.fragment(pkt, src, dst, proto, f);
        }
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let last = end.last_ts_ns.unwrap_or(0);
        let mut left: Vec<(DatagramKey, Pending)> = self.pending.drain().collect();
        left.sort_by_key(|(_, d)| d.first_packet);
        let mut incomplete = 0;
        for (key, d) in left {
            if last.saturating_sub(d.first_ts) > REASSEMBLY_TIMEOUT_NS {
                self.timeouts += 1;
                self.record(key, &d, "timeout");
            } else {
                incomplete += 1;
                self.record(key, &d, "incomplete");
            }
        }
        let mut details = std::mem::take(&mut self.problems);
        details.sort_by_key(|d| d.first_packet);
        let room = MAX_FINDINGS.saturating_sub(details.len());
        details.extend(self.reassembled_details.drain(..).take(room));
        let mut flows: Vec<FragmentedFlow> = self
            .flows
            .iter()
            .map(|(&(s, d, p), c)| FragmentedFlow {
                src_ip: s.to_string(),
                dst_ip: d.to_string(),
                protocol: protocol_name(p, s.is_ipv6()),
                fragments: c.fragments,
                datagrams: c.datagrams,
            })
            .collect();
        flows.sort_by(|a, b| {
            b.fragments
                .cmp(&a.fragments)
                .then_with(|| (&a.src_ip, &a.dst_ip).cmp(&(&b.src_ip, &b.dst_ip)))
        });
        flows.truncate(MAX_RANKED);
        report.ip_fragmentation = Some(IpFragmentationReport {
            total_fragments: self.fragments,
            ipv4_fragments: self.v4,
            ipv6_fragments: self.v6,
            fragmented_packets: self.datagrams,
            reassembled_datagrams: self.reassembled,
            incomplete_datagrams: incomplete + self.timeouts,
            reassembly_timeouts: self.timeouts,
            overlapping_fragments: self.overlapping,
            tiny_fragments: self.tiny,
            fragmentation_rate: round3(
                self.fragments as f64 * 100.0 / self.ip_packets.max(1) as f64,
            ),
            total_ip_packets: self.ip_packets,
            flows_with_fragmentation: self.flows.len() as u64 + self.flows_untracked,
            largest_datagram_bytes: self.largest,
            thresholds: FragmentationThresholds {
                reassembly_timeout_seconds: REASSEMBLY_TIMEOUT_NS as f64 / 1e9,
                tiny_fragment_bytes: TINY_FRAGMENT_BYTES,
            },
            details,
            top_fragmented_flows: flows,
        });
    }
}
