//! `conversations`: tshark's `-z conv,tcp|udp|ip` counts, TCP streams (`tcp.stream`), and the
//! largest conversations with their traffic in each direction.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::decode::{Network, Packet};
use std::hash::BuildHasher;

use crate::flow::FlowRecord;
use crate::report::{Report, MAX_RANKED};
use crate::stats::{round6, Distinct};
use crate::Options;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Conversation {
    pub protocol: String,
    pub address_a: String,
    pub port_a: u16,
    pub address_b: String,
    pub port_b: u16,
    pub packets_a_to_b: u64,
    pub bytes_a_to_b: u64,
    pub packets_b_to_a: u64,
    pub bytes_b_to_a: u64,
    pub start_time: String,
    pub duration_seconds: f64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConversationsReport {
    /// TCP conversations: tshark 4.0's `-z conv,tcp` has a row per stream, so a reused port
    /// pair after a new SYN is a second conversation.
    pub tcp: u64,
    /// TCP streams: a 4-tuple reused after a new SYN is a new stream (tshark's `tcp.stream`).
    pub tcp_streams: u64,
    pub udp: u64,
    /// Distinct IPv4 and IPv6 address pairs.
    pub ip: u64,
    /// `udp` and `ip` are estimates (standard error 0.8 %): past a million distinct conversations
    /// they are counted by a sketch, so memory stays bounded. Absent when exact.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counts_estimated: bool,
    pub top_conversations: Vec<Conversation>,
}

pub struct Conversations {
    /// Keys are counted as 64-bit hashes: exact counts whatever the flow table evicts, for 8
    /// bytes per conversation (a collision needs ~2^32 conversations). The seed is random per
    /// run, so crafted captures cannot aim at collisions.
    hasher: foldhash::quality::RandomState,
    /// UDP 5-tuples and address pairs seen.
    seen_flows: Distinct,
    seen_pairs: Distinct,
    /// Largest conversations already evicted from the flow table, kept for the ranking.
    retired: Vec<FlowRecord>,
}

impl Conversations {
    pub fn new(_options: &Options) -> Self {
        Conversations {
            hasher: Default::default(),
            seen_flows: Distinct::default(),
            seen_pairs: Distinct::default(),
            retired: Vec::new(),
        }
    }

    fn add_pair(&mut self, a: IpAddr, b: IpAddr) {
        let pair = if a <= b { (a, b) } else { (b, a) };
        self.seen_pairs.add(self.hasher.hash_one(pair));
    }
}

fn total_bytes(r: &FlowRecord) -> u64 {
    r.bytes[0] + r.bytes[1]
}

impl Analyzer for Conversations {
    fn packets(&self) -> Kinds {
        Kinds::IP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(ip) = pkt.ip() else { return };
        // The inner addresses of a tunnel are a conversation of their own (tshark's conv,ip).
        if let Some(Network::Ip(inner)) = pkt.inner.map(|i| i.network) {
            self.add_pair(inner.src, inner.dst);
        }
        if !meta.flow_new {
            return;
        }
        self.add_pair(ip.src, ip.dst);
        let Some((key, _)) = meta.flow else { return };
        if pkt.udp().is_some() {
            self.seen_flows.add(self.hasher.hash_one(key));
        }
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        if matches!(flow.key.proto, 6 | 17) {
            self.retired.push(flow.clone());
            if self.retired.len() >= 4 * MAX_RANKED {
                self.retired
                    .sort_by_key(|r| std::cmp::Reverse(total_bytes(r)));
                self.retired.truncate(MAX_RANKED);
            }
        }
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let mut all: Vec<&FlowRecord> = end
            .flows
            .records()
            .filter(|r| matches!(r.key.proto, 6 | 17))
            .chain(self.retired.iter())
            .collect();
        all.sort_by(|a, b| total_bytes(b).cmp(&total_bytes(a)).then(a.key.cmp(&b.key)));
        all.truncate(MAX_RANKED);
        let top_conversations = all
            .into_iter()
            .map(|r| Conversation {
                protocol: if r.key.proto == 6 { "TCP" } else { "UDP" }.to_string(),
                address_a: r.key.a.to_string(),
                port_a: r.key.a_port,
                address_b: r.key.b.to_string(),
                port_b: r.key.b_port,
                packets_a_to_b: r.packets[0],
                bytes_a_to_b: r.bytes[0],
                packets_b_to_a: r.packets[1],
                bytes_b_to_a: r.bytes[1],
                start_time: crate::time::iso_utc(r.first_ts),
                duration_seconds: round6((r.last_ts - r.first_ts) as f64 / 1e9),
                display_filter: r.key.display_filter(),
            })
            .collect();
        report.conversations = Some(ConversationsReport {
            tcp: end.tcp_streams,
            tcp_streams: end.tcp_streams,
            udp: self.seen_flows.count(),
            ip: self.seen_pairs.count(),
            counts_estimated: !(self.seen_flows.is_exact() && self.seen_pairs.is_exact()),
            top_conversations,
        });
    }
}
