//! `tcp_handshake`: SYN → SYN/ACK → ACK timing per stream, slow handshakes with v5's thresholds
//! (`syn_synack_delay`, `handshake_total`) and the side that is likely slow, and tshark's
//! `tcp.analysis.initial_rtt` (SYN to the first ACK that is not a SYN/ACK).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_SYN};
use crate::flow::{endpoint, fast_map, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::{round3, Distribution};
use crate::Options;

/// Handshakes waiting for their SYN/ACK or ACK. Past this many, the oldest are counted as
/// incomplete and dropped (a SYN flood must not grow memory).
const MAX_PENDING: usize = 200_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InitialRtt {
    /// Streams with a measured handshake RTT.
    pub count: u64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Handshake {
    pub stream: u64,
    pub client: String,
    pub server: String,
    pub syn_frame: u64,
    pub synack_frame: Option<u64>,
    pub ack_frame: Option<u64>,
    pub syn_to_synack_ms: Option<f64>,
    pub synack_to_ack_ms: Option<f64>,
    pub total_ms: Option<f64>,
    pub complete: bool,
    pub is_slow: bool,
    pub suspected_side: String,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HandshakeThresholds {
    pub syn_synack_delay: f64,
    pub handshake_total: f64,
    pub latency_filter: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HandshakeReport {
    /// Frames with SYN and no ACK (tshark: `tcp.flags.syn==1 && tcp.flags.ack==0`).
    pub syn_packets: u64,
    /// Frames with SYN and ACK.
    pub synack_packets: u64,
    pub total_handshakes: u64,
    pub complete_handshakes: u64,
    pub incomplete_handshakes: u64,
    pub slow_handshakes: u64,
    pub initial_rtt: InitialRtt,
    pub thresholds: HandshakeThresholds,
    pub suspect_side_distribution: BTreeMap<String, u64>,
    /// The slowest handshakes (complete or not), slowest first.
    pub handshakes: Vec<Handshake>,
}

#[derive(Clone, Copy)]
struct Pending {
    syn_ts: i64,
    syn_frame: u64,
    synack: Option<(i64, u64, u32)>,
    client_is_a: bool,
    key: crate::flow::FlowKey,
}

pub struct TcpHandshake {
    syn_delay: f64,
    total_limit: f64,
    latency: Option<f64>,
    syn_packets: u64,
    synack_packets: u64,
    pending: FastMap<u64, Pending>,
    total: u64,
    complete: u64,
    slow: u64,
    sides: BTreeMap<String, u64>,
    rtt: Distribution,
    listed: Vec<Handshake>,
}

impl TcpHandshake {
    pub fn new(config: &Config, options: &Options) -> Self {
        TcpHandshake {
            syn_delay: config.thresholds.syn_synack_delay,
            total_limit: config.thresholds.handshake_total,
            latency: options.latency,
            syn_packets: 0,
            synack_packets: 0,
            pending: fast_map(),
            total: 0,
            complete: 0,
            slow: 0,
            sides: BTreeMap::new(),
            rtt: Distribution::default(),
            listed: Vec::new(),
        }
    }

    fn record(&mut self, stream: u64, p: Pending, ack: Option<(i64, u64)>) {
        let ms = |a: i64, b: i64| round3((b - a) as f64 / 1e6);
        let syn_synack = p.synack.map(|(ts, _, _)| ms(p.syn_ts, ts));
        let synack_ack = match (p.synack, ack) {
            (Some((s, _, _)), Some((a, _))) => Some(ms(s, a)),
            _ => None,
        };
        let total = ack.map(|(a, _)| ms(p.syn_ts, a));
        let complete = ack.is_some();
        if complete {
            self.complete += 1;
        }
        // v5's attribution: a slow SYN→SYN/ACK is the server (> 0.5 s) or the network; a slow
        // SYN/ACK→ACK is the client; a slow total alone is the network.
        let limit_ms = self.syn_delay * 1000.0;
        let side = match (syn_synack, synack_ack, total) {
            (Some(d), _, _) if d > limit_ms => {
                if d > 500.0 {
                    "server"
                } else {
                    "network"
                }
            }
            (_, Some(d), _) if d > limit_ms => "client",
            (_, _, Some(t)) if t > self.total_limit * 1000.0 => "network",
            (_, _, Some(_)) => "none",
            _ => "unknown",
        };
        let is_slow = complete && side != "none";
        if is_slow {
            self.slow += 1;
        }
        crate::stats::count(&mut self.sides, side);
        let worst = total.or(syn_synack).unwrap_or(f64::INFINITY);
        if let Some(l) = self.latency {
            if worst < l * 1000.0 {
                return;
            }
        }
        // Only a handshake that makes the list is written out (its text costs allocations).
        let rank = total.or(syn_synack).unwrap_or(f64::MAX);
        let key = |h: &Handshake| h.total_ms.or(h.syn_to_synack_ms).unwrap_or(f64::MAX);
        if self.listed.len() >= MAX_FINDINGS && self.listed.last().is_none_or(|l| key(l) >= rank) {
            return;
        }
        let (client, server) = {
            let dir = if p.client_is_a {
                crate::flow::Direction::AtoB
            } else {
                crate::flow::Direction::BtoA
            };
            let (c, cp, s, sp) = p.key.oriented(dir);
            (endpoint(c, cp), endpoint(s, sp))
        };
        let h = Handshake {
            stream,
            client,
            server,
            syn_frame: p.syn_frame,
            synack_frame: p.synack.map(|(_, f, _)| f),
            ack_frame: ack.map(|(_, f)| f),
            syn_to_synack_ms: syn_synack,
            synack_to_ack_ms: synack_ack,
            total_ms: total,
            complete,
            is_slow,
            suspected_side: side.to_string(),
            display_filter: format!("tcp.stream == {stream}"),
        };
        self.listed.push(h);
        self.listed.sort_by(|a, b| key(b).total_cmp(&key(a)));
        self.listed.truncate(MAX_FINDINGS);
    }
}

impl Analyzer for TcpHandshake {
    fn packets(&self) -> Kinds {
        Kinds::TCP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        let stream = meta.tcp.stream;
        if meta.tcp.initial_rtt_now {
            if let Some(rtt) = meta.tcp.initial_rtt_ns {
                self.rtt.add(rtt as f64 / 1e6);
            }
        }
        match tcp.flags & (TCP_SYN | TCP_ACK) {
            TCP_SYN => {
                self.syn_packets += 1;
                if !self.pending.contains_key(&stream) {
                    if self.pending.len() >= MAX_PENDING {
                        let drained: Vec<(u64, Pending)> = self.pending.drain().collect();
                        for (s, p) in drained {
                            self.record(s, p, None);
                        }
                    }
                    self.total += 1;
                    let (key, dir) = meta.flow.unwrap_or((
                        crate::flow::FlowKey::new(
                            pkt.ip().map(|i| i.src).unwrap_or([0, 0, 0, 0].into()),
                            0,
                            [0, 0, 0, 0].into(),
                            0,
                            6,
                        )
                        .0,
                        crate::flow::Direction::AtoB,
                    ));
                    self.pending.insert(
                        stream,
                        Pending {
                            syn_ts: pkt.ts_ns,
                            syn_frame: pkt.number,
                            synack: None,
                            client_is_a: dir == crate::flow::Direction::AtoB,
                            key,
                        },
                    );
                }
            }
            x if x == TCP_SYN | TCP_ACK => {
                self.synack_packets += 1;
                if let Some(p) = self.pending.get_mut(&stream) {
                    if p.synack.is_none() {
                        p.synack = Some((pkt.ts_ns, pkt.number, tcp.seq));
                    }
                }
            }
            TCP_ACK => {
                let done = self.pending.get(&stream).is_some_and(|p| {
                    p.synack
                        .is_some_and(|(_, _, seq)| tcp.ack == seq.wrapping_add(1))
                });
                if done {
                    if let Some(p) = self.pending.remove(&stream) {
                        self.record(stream, p, Some((pkt.ts_ns, pkt.number)));
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(mut self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut left: Vec<(u64, Pending)> = self.pending.drain().collect();
        left.sort_by_key(|(s, _)| *s);
        for (s, p) in left {
            self.record(s, p, None);
        }
        report.tcp_handshake = Some(HandshakeReport {
            syn_packets: self.syn_packets,
            synack_packets: self.synack_packets,
            total_handshakes: self.total,
            complete_handshakes: self.complete,
            incomplete_handshakes: self.total - self.complete,
            slow_handshakes: self.slow,
            initial_rtt: InitialRtt {
                count: self.rtt.count(),
                mean_ms: crate::stats::round6(self.rtt.mean()),
                min_ms: round3(self.rtt.min()),
                median_ms: round3(self.rtt.quantile(0.5)),
                max_ms: round3(self.rtt.max()),
            },
            thresholds: HandshakeThresholds {
                syn_synack_delay: self.syn_delay,
                handshake_total: self.total_limit,
                latency_filter: self.latency,
            },
            suspect_side_distribution: self.sides,
            handshakes: self.listed,
        });
    }
}
