//! `tcp_reset`: RST segments (RFC 9293 section 3.5.2), classified as v5 does: "premature" when no
//! payload had been seen on the stream yet (in either direction), "post-data" otherwise. A RST
//! answering a SYN before any SYN/ACK is also counted as a refused connection. The sender is
//! named client (the side that sent the SYN) or server; without a captured SYN the side with the
//! higher port is taken as the client.
//!
//! Fixed from v5: streams are told apart by `tcp.stream` (a reused 4-tuple is a new connection),
//! a PSH flag alone does not count as data, and timestamps are RFC 3339 UTC.

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_RST, TCP_SYN};
use crate::flow::{fast_map, Direction, FastMap, FlowKey, FlowRecord, PerSlot};
use crate::report::{Report, MAX_FINDINGS};
use crate::Options;

/// Streams with resets kept for the ranking.
const MAX_RESET_FLOWS: usize = 100_000;
/// v5 lists the ten streams with the most resets.
const TOP_RESET_FLOWS: usize = 10;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResetDetail {
    pub packet_num: u64,
    pub timestamp: String,
    pub stream: u64,
    pub src: String,
    pub dst: String,
    /// "client" or "server".
    pub sender: String,
    /// "premature" (no payload yet) or "post_data".
    pub reset_type: String,
    /// The RST answered a SYN before any SYN/ACK: the port is closed or filtered.
    pub connection_refused: bool,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResetFlow {
    pub stream: u64,
    pub client: String,
    pub server: String,
    pub resets: u64,
    pub premature: bool,
    pub first_reset_packet_num: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TcpResetReport {
    pub total_resets: u64,
    pub premature_resets: u64,
    pub post_data_resets: u64,
    pub connection_refused: u64,
    pub resets_by_client: u64,
    pub resets_by_server: u64,
    pub flows_with_resets: u64,
    /// The first resets in file order.
    pub reset_details: Vec<ResetDetail>,
    /// Streams with the most resets.
    pub top_reset_flows: Vec<ResetFlow>,
}

const PAYLOAD: u8 = 1;
const SYN_FROM_A: u8 = 2;
const SYN_FROM_B: u8 = 4;
const SYNACK: u8 = 8;
const RESET_SEEN: u8 = 16;

#[derive(Default, Clone, Copy)]
struct StreamState {
    stream: u64,
    bits: u8,
}

struct FlowResets {
    key: FlowKey,
    client: Direction,
    resets: u64,
    premature: bool,
    first_frame: u64,
}

pub struct TcpReset {
    /// What each live stream showed so far, on its flow's slot.
    streams: PerSlot<StreamState>,
    flows: FastMap<u64, FlowResets>,
    total: u64,
    premature: u64,
    refused: u64,
    by_client: u64,
    flows_with_resets: u64,
    details: Vec<ResetDetail>,
}

impl TcpReset {
    pub fn new(_config: &Config, _options: &Options) -> Self {
        TcpReset {
            streams: PerSlot::default(),
            flows: fast_map(),
            total: 0,
            premature: 0,
            refused: 0,
            by_client: 0,
            flows_with_resets: 0,
            details: Vec::new(),
        }
    }
}

/// The client's direction: the SYN sender, else the side with the higher port.
fn client_dir(bits: u8, key: &FlowKey) -> Direction {
    if bits & SYN_FROM_A != 0 {
        Direction::AtoB
    } else if bits & SYN_FROM_B != 0 {
        Direction::BtoA
    } else if key.a_port >= key.b_port {
        Direction::AtoB
    } else {
        Direction::BtoA
    }
}

impl Analyzer for TcpReset {
    fn packets(&self) -> Kinds {
        Kinds::TCP
    }

    fn prefetches(&self) -> Prefetch {
        Prefetch::Near
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        let Some((key, dir)) = meta.flow else { return };
        let stream = meta.tcp.stream;
        let new = || StreamState { stream, bits: 0 };
        let Some(s) = self.streams.get_or_insert_with(meta, new) else {
            return;
        };
        if s.stream != stream {
            // The 5-tuple was reused for a new stream.
            *s = new();
        }
        let fl = tcp.flags;
        if fl & TCP_RST == 0 {
            if tcp.seg_len > 0 {
                s.bits |= PAYLOAD;
            }
            if fl & (TCP_SYN | TCP_ACK) == TCP_SYN {
                s.bits |= if dir == Direction::AtoB {
                    SYN_FROM_A
                } else {
                    SYN_FROM_B
                };
            } else if fl & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
                s.bits |= SYNACK;
            }
            return;
        }
        let bits = s.bits;
        s.bits |= RESET_SEEN;
        self.total += 1;
        if bits & RESET_SEEN == 0 {
            self.flows_with_resets += 1;
        }
        let premature = bits & PAYLOAD == 0;
        if premature {
            self.premature += 1;
        }
        let client = client_dir(bits, &key);
        let by_client = dir == client;
        if by_client {
            self.by_client += 1;
        }
        let refused = !by_client && bits & (SYN_FROM_A | SYN_FROM_B) != 0 && bits & SYNACK == 0;
        if refused {
            self.refused += 1;
        }
        if let Some(f) = self.flows.get_mut(&stream) {
            f.resets += 1;
        } else if self.flows.len() < MAX_RESET_FLOWS {
            self.flows.insert(
                stream,
                FlowResets {
                    key,
                    client,
                    resets: 1,
                    premature,
                    first_frame: pkt.number,
                },
            );
        }
        if self.details.len() < MAX_FINDINGS {
            let (src, dst) = key.endpoints(dir);
            self.details.push(ResetDetail {
                packet_num: pkt.number,
                timestamp: crate::time::iso_utc(pkt.ts_ns),
                stream,
                src,
                dst,
                sender: if by_client { "client" } else { "server" }.to_string(),
                reset_type: if premature { "premature" } else { "post_data" }.to_string(),
                connection_refused: refused,
                display_filter: format!("tcp.stream == {stream} && tcp.flags.reset == 1"),
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
        self.streams.take(flow.slot);
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut flows: Vec<(u64, FlowResets)> = self.flows.into_iter().collect();
        flows.sort_by(|a, b| b.1.resets.cmp(&a.1.resets).then(a.0.cmp(&b.0)));
        flows.truncate(TOP_RESET_FLOWS);
        let top_reset_flows = flows
            .into_iter()
            .map(|(stream, f)| {
                let (client, server) = f.key.endpoints(f.client);
                ResetFlow {
                    stream,
                    client,
                    server,
                    resets: f.resets,
                    premature: f.premature,
                    first_reset_packet_num: f.first_frame,
                    display_filter: format!("tcp.stream == {stream}"),
                }
            })
            .collect();
        report.tcp_reset = Some(TcpResetReport {
            total_resets: self.total,
            premature_resets: self.premature,
            post_data_resets: self.total - self.premature,
            connection_refused: self.refused,
            resets_by_client: self.by_client,
            resets_by_server: self.total - self.by_client,
            flows_with_resets: self.flows_with_resets,
            reset_details: self.details,
            top_reset_flows,
        });
    }
}
