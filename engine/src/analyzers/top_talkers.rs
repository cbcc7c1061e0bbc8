//! `top_talkers`: bytes and packets per IP address (outer-most IP header, frame length), per
//! directed address pair, and per transport protocol.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, Layer4, PacketMeta};
use crate::decode::Packet;
use crate::flow::{fast_map, FastMap, FlowRecord};
use crate::report::{Report, MAX_RANKED};
use crate::Options;

/// Addresses (and address pairs) tracked; past this, the lighter half is dropped so a
/// spoofed-source flood cannot grow memory without bound.
const MAX_ADDRESSES: usize = 100_000;

/// The entries that can make the top [`MAX_RANKED`] by weight, ties included (the final order
/// breaks ties by address text, so every tied entry must be kept until then).
fn heaviest<T>(items: impl Iterator<Item = T>, weight: impl Fn(&T) -> u64) -> Vec<T> {
    let mut all: Vec<T> = items.collect();
    if all.len() <= MAX_RANKED {
        return all;
    }
    let mut weights: Vec<u64> = all.iter().map(&weight).collect();
    let cut = weights.len() - MAX_RANKED;
    let (_, nth, _) = weights.select_nth_unstable(cut);
    let nth = *nth;
    all.retain(|t| weight(t) >= nth);
    all
}

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
    /// Undirected address pairs: bytes and packets from the lower to the higher address, then back.
    pairs: FastMap<(IpAddr, IpAddr), [u64; 4]>,
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

    /// Adds a finished flow: three hash updates per flow (its two addresses and its pair).
    fn add_flow(&mut self, f: &FlowRecord) {
        if self.ips.len() >= MAX_ADDRESSES {
            prune_smaller_half(&mut self.ips, |c| c.bytes_sent + c.bytes_received);
        }
        let (a, b) = (f.key.a, f.key.b);
        let ca = self.ips.entry(a).or_default();
        ca.bytes_sent += f.bytes[0];
        ca.packets_sent += f.packets[0];
        ca.bytes_received += f.bytes[1];
        ca.packets_received += f.packets[1];
        if a != b {
            let cb = self.ips.entry(b).or_default();
            cb.bytes_sent += f.bytes[1];
            cb.packets_sent += f.packets[1];
            cb.bytes_received += f.bytes[0];
            cb.packets_received += f.packets[0];
        }
        if self.pairs.len() >= MAX_ADDRESSES {
            prune_smaller_half(&mut self.pairs, |c| c[0] + c[2]);
        }
        let p = self.pairs.entry((a, b)).or_default();
        p[0] += f.bytes[0];
        p[1] += f.packets[0];
        p[2] += f.bytes[1];
        p[3] += f.packets[1];
    }
}

impl Analyzer for TopTalkers {
    fn packets(&self) -> Kinds {
        Kinds::IP
    }

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
        let mut ips: Vec<Talker> = heaviest(self.ips.into_iter(), |(_, c)| {
            c.bytes_sent + c.bytes_received
        })
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
        let directed = self.pairs.into_iter().flat_map(|((a, b), c)| {
            [((a, b), c[0], c[1]), ((b, a), c[2], c[3])]
                .into_iter()
                .filter(|(_, _, packets)| *packets > 0)
        });
        let mut pairs: Vec<PairTalk> = heaviest(directed, |(_, bytes, _)| *bytes)
            .into_iter()
            .map(|((s, d), bytes, packets)| PairTalk {
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
