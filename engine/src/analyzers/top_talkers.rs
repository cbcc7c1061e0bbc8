//! `top_talkers`: bytes and packets per IP address (outer-most IP header, frame length), per
//! directed address pair, and per transport protocol.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Layer4, PacketMeta};
use crate::decode::Packet;
use crate::flow::{fast_map, FastMap, FlowRecord};
use crate::report::{Report, MAX_RANKED};
use crate::Options;

/// Addresses (and address pairs) tracked; past this, the lighter half is dropped so a
/// spoofed-source flood cannot grow memory without bound.
const MAX_ADDRESSES: usize = 100_000;

/// Drops the entries below the median: the heavy hitters that make the ranking stay, whatever
/// the number of addresses (a spoofed-source flood, a large NAT).
fn prune_smaller_half<K: std::hash::Hash + Eq, V>(
    map: &mut FastMap<K, V>,
    weight: impl Fn(&V) -> u64,
) {
    let mut weights: Vec<u64> = map.values().map(&weight).collect();
    let mid = weights.len() / 2;
    let (_, median, _) = weights.select_nth_unstable(mid);
    let median = *median;
    map.retain(|_, v| weight(v) > median);
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Talker {
    pub ip: String,
    pub bytes: u64,
    pub packets: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PairTalk {
    pub src_ip: String,
    pub dst_ip: String,
    pub bytes: u64,
    pub packets: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProtocolTotals {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TopTalkersReport {
    pub total_ips: u64,
    /// Ranked by bytes; ties go to the lower address in text order (as the oracle does).
    pub top_ips: Vec<Talker>,
    pub top_conversations: Vec<PairTalk>,
    pub protocol_stats: BTreeMap<String, ProtocolTotals>,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    bytes_sent: u64,
    bytes_received: u64,
    packets_sent: u64,
    packets_received: u64,
}

/// Per-address totals are built from flows, when a flow leaves the flow table and at the end,
/// so the per-packet cost is nil: every IP packet belongs to exactly one flow.
pub struct TopTalkers {
    ips: FastMap<IpAddr, Counters>,
    pairs: FastMap<(IpAddr, IpAddr), (u64, u64)>,
    protocols: [ProtocolTotals; 4],
}

impl TopTalkers {
    pub fn new(_options: &Options) -> Self {
        TopTalkers {
            ips: fast_map(),
            pairs: fast_map(),
            protocols: Default::default(),
        }
    }

    fn add_flow(&mut self, f: &FlowRecord) {
        for (dir, (src, dst)) in [(0, (f.key.a, f.key.b)), (1, (f.key.b, f.key.a))] {
            let (bytes, packets) = (f.bytes[dir], f.packets[dir]);
            if packets == 0 {
                continue;
            }
            if self.ips.len() >= MAX_ADDRESSES {
                self.ips
                    .retain(|_, c| c.packets_sent + c.packets_received > 1);
            }
            let s = self.ips.entry(src).or_default();
            s.bytes_sent += bytes;
            s.packets_sent += packets;
            let d = self.ips.entry(dst).or_default();
            d.bytes_received += bytes;
            d.packets_received += packets;
            if self.pairs.len() >= MAX_ADDRESSES {
                prune_smaller_half(&mut self.pairs, |c| c.0);
            }
            let p = self.pairs.entry((src, dst)).or_default();
            p.0 += bytes;
            p.1 += packets;
        }
    }
}

impl Analyzer for TopTalkers {
    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        if pkt.ip().is_none() {
            return;
        }
        let i = match meta.layer4 {
            Some(Layer4::Tcp) => 0,
            Some(Layer4::Udp) => 1,
            Some(Layer4::Icmp) => 2,
            _ => 3,
        };
        self.protocols[i].packets += 1;
        self.protocols[i].bytes += u64::from(pkt.wire_len);
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        self.add_flow(flow);
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        for f in end.flows.records() {
            self.add_flow(f);
        }
        let total_ips = self.ips.len() as u64;
        let mut ips: Vec<Talker> = self
            .ips
            .into_iter()
            .map(|(ip, c)| Talker {
                ip: ip.to_string(),
                bytes: c.bytes_sent + c.bytes_received,
                packets: c.packets_sent + c.packets_received,
                bytes_sent: c.bytes_sent,
                bytes_received: c.bytes_received,
                packets_sent: c.packets_sent,
                packets_received: c.packets_received,
            })
            .collect();
        ips.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.ip.cmp(&b.ip)));
        ips.truncate(MAX_RANKED);
        let mut pairs: Vec<PairTalk> = self
            .pairs
            .into_iter()
            .map(|((s, d), (bytes, packets))| PairTalk {
                src_ip: s.to_string(),
                dst_ip: d.to_string(),
                bytes,
                packets,
            })
            .collect();
        pairs.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| (&a.src_ip, &a.dst_ip).cmp(&(&b.src_ip, &b.dst_ip)))
        });
        pairs.truncate(MAX_RANKED);
        let names = ["TCP", "UDP", "ICMP", "Other"];
        report.top_talkers = Some(TopTalkersReport {
            total_ips,
            top_ips: ips,
            top_conversations: pairs,
            protocol_stats: names
                .iter()
                .zip(self.protocols)
                .map(|(n, p)| (n.to_string(), p))
                .collect(),
        });
    }
}
