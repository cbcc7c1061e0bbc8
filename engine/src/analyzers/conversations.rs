//! `conversations`: tshark's `-z conv,tcp|udp|ip` counts, TCP streams (`tcp.stream`), and the
//! largest conversations with their traffic in each direction.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, PacketMeta};
use crate::decode::{Network, Packet};
use crate::flow::{evict_idle, fast_map, FastMap, FlowKey};
use crate::report::{Report, MAX_RANKED};
use crate::stats::round6;
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
    /// Distinct TCP address/port pairs.
    pub tcp_address_pairs: u64,
    /// TCP streams: a 4-tuple reused after a new SYN is a new stream (tshark's `tcp.stream`).
    pub tcp_streams: u64,
    pub udp: u64,
    /// Distinct IPv4 and IPv6 address pairs.
    pub ip: u64,
    pub top_conversations: Vec<Conversation>,
}

#[derive(Clone, Copy)]
struct Stats {
    packets: [u64; 2],
    bytes: [u64; 2],
    first_ts: i64,
    last_ts: i64,
}

pub struct Conversations {
    flows: FastMap<FlowKey, Stats>,
    ip_pairs: FastMap<(IpAddr, IpAddr), i64>,
    tcp: u64,
    udp: u64,
    ip: u64,
    /// Largest conversations already evicted from `flows`, kept for the ranking.
    retired: Vec<(FlowKey, Stats)>,
    since_sweep: u32,
}

impl Conversations {
    pub fn new(_options: &Options) -> Self {
        Conversations {
            flows: fast_map(),
            ip_pairs: fast_map(),
            tcp: 0,
            udp: 0,
            ip: 0,
            retired: Vec::new(),
            since_sweep: 0,
        }
    }

    fn sweep(&mut self, now: i64) {
        if self.flows.len() >= crate::flow::MAX_TRACKED_FLOWS {
            let mut big: Vec<(FlowKey, Stats)> = self
                .flows
                .iter()
                .map(|(k, v)| (*k, *v))
                .filter(|(_, v)| now - v.last_ts >= crate::flow::IDLE_EVICTION_NS)
                .collect();
            big.sort_by_key(|(_, s)| std::cmp::Reverse(s.bytes[0] + s.bytes[1]));
            big.truncate(MAX_RANKED);
            self.retired.extend(big);
            evict_idle(&mut self.flows, now, |s| s.last_ts);
        }
        evict_idle(&mut self.ip_pairs, now, |&t| t);
    }
}

impl Analyzer for Conversations {
    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(ip) = pkt.ip() else { return };
        self.since_sweep += 1;
        if self.since_sweep >= 65_536 {
            self.since_sweep = 0;
            self.sweep(pkt.ts_ns);
        }
        let pair = if ip.src <= ip.dst {
            (ip.src, ip.dst)
        } else {
            (ip.dst, ip.src)
        };
        if self.ip_pairs.insert(pair, pkt.ts_ns).is_none() {
            self.ip += 1;
        }
        // The inner addresses of a tunnel are a conversation of their own (tshark's conv,ip).
        if let Some(Network::Ip(inner)) = pkt.inner.map(|i| i.network) {
            let pair = if inner.src <= inner.dst {
                (inner.src, inner.dst)
            } else {
                (inner.dst, inner.src)
            };
            if self.ip_pairs.insert(pair, pkt.ts_ns).is_none() {
                self.ip += 1;
            }
        }
        let Some((key, dir)) = meta.flow else { return };
        if pkt.tcp().is_none() && pkt.udp().is_none() {
            return;
        }
        let len = u64::from(pkt.wire_len);
        let s = self.flows.entry(key).or_insert_with(|| {
            match key.proto {
                6 => self.tcp += 1,
                _ => self.udp += 1,
            }
            Stats {
                packets: [0; 2],
                bytes: [0; 2],
                first_ts: pkt.ts_ns,
                last_ts: pkt.ts_ns,
            }
        });
        s.packets[dir.index()] += 1;
        s.bytes[dir.index()] += len;
        s.last_ts = pkt.ts_ns;
    }

    fn finish(self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let mut all: Vec<(FlowKey, Stats)> = self.flows.into_iter().collect();
        all.extend(self.retired);
        all.sort_by(|a, b| {
            let (x, y) = (a.1.bytes[0] + a.1.bytes[1], b.1.bytes[0] + b.1.bytes[1]);
            y.cmp(&x).then(a.0.cmp(&b.0))
        });
        all.truncate(MAX_RANKED);
        let top_conversations = all
            .into_iter()
            .map(|(k, s)| Conversation {
                protocol: if k.proto == 6 { "TCP" } else { "UDP" }.to_string(),
                address_a: k.a.to_string(),
                port_a: k.a_port,
                address_b: k.b.to_string(),
                port_b: k.b_port,
                packets_a_to_b: s.packets[0],
                bytes_a_to_b: s.bytes[0],
                packets_b_to_a: s.packets[1],
                bytes_b_to_a: s.bytes[1],
                start_time: crate::time::iso_utc(s.first_ts),
                duration_seconds: round6((s.last_ts - s.first_ts) as f64 / 1e9),
                display_filter: k.display_filter(),
            })
            .collect();
        report.conversations = Some(ConversationsReport {
            tcp: end.tcp_streams,
            tcp_address_pairs: self.tcp,
            tcp_streams: end.tcp_streams,
            udp: self.udp,
            ip: self.ip,
            top_conversations,
        });
    }
}
