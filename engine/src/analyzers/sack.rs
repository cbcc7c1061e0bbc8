//! `sack`: Selective Acknowledgment use (RFC 2018): SACK-permitted negotiation in the handshake,
//! segments carrying SACK blocks, and D-SACK (RFC 2883 section 4): the first block reports data
//! received twice, either below the cumulative ACK or inside the second block. v5 shipped this
//! section as an empty placeholder.

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_SYN};
use crate::flow::{fast_map, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round3;
use crate::Options;

/// Streams whose SACK negotiation or use is tracked; past this, new streams are only counted
/// in the packet totals.
const MAX_STREAMS: usize = 400_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SackEvent {
    pub packet_num: u64,
    pub timestamp: String,
    pub stream: u64,
    pub src: String,
    pub dst: String,
    pub ack: u32,
    /// (left edge, right edge) of each block, absolute sequence numbers.
    pub blocks: Vec<[u32; 2]>,
    pub is_dsack: bool,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SackReport {
    pub total_tcp_packets: u64,
    /// Segments with at least one SACK block.
    pub sack_packets: u64,
    pub sack_usage_pct: f64,
    pub dsack_packets: u64,
    /// D-SACK segments per SACK segment, percent.
    pub dsack_rate: f64,
    pub syn_with_sack_permitted: u64,
    pub synack_with_sack_permitted: u64,
    /// Streams where both SYN and SYN/ACK offered SACK.
    pub flows_sack_negotiated: u64,
    pub flows_using_sack: u64,
    pub flows_with_dsack: u64,
    pub total_sack_events: u64,
    /// The first SACK segments in file order.
    pub sack_events: Vec<SackEvent>,
}

const SYN_PERMITTED: u8 = 1;
const SYNACK_PERMITTED: u8 = 2;
const NEGOTIATED: u8 = 4;
const USED: u8 = 8;
const DSACK: u8 = 16;

fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// RFC 2883 section 4: the first block is a D-SACK when it lies at or below the cumulative ACK,
/// or inside the second block.
pub fn is_dsack(ack: u32, blocks: &[(u32, u32)]) -> bool {
    let Some(&(l1, r1)) = blocks.first() else {
        return false;
    };
    if le(r1, ack) {
        return true;
    }
    blocks
        .get(1)
        .is_some_and(|&(l2, r2)| le(l2, l1) && le(r1, r2))
}

pub struct Sack {
    streams: FastMap<u64, u8>,
    tcp_packets: u64,
    sack_packets: u64,
    dsack_packets: u64,
    syn_permitted: u64,
    synack_permitted: u64,
    negotiated: u64,
    using: u64,
    with_dsack: u64,
    events: Vec<SackEvent>,
}

impl Sack {
    pub fn new(_config: &Config, _options: &Options) -> Self {
        Sack {
            streams: fast_map(),
            tcp_packets: 0,
            sack_packets: 0,
            dsack_packets: 0,
            syn_permitted: 0,
            synack_permitted: 0,
            negotiated: 0,
            using: 0,
            with_dsack: 0,
            events: Vec::new(),
        }
    }

    fn bits(&mut self, stream: u64) -> Option<&mut u8> {
        if self.streams.len() >= MAX_STREAMS && !self.streams.contains_key(&stream) {
            return None;
        }
        Some(self.streams.entry(stream).or_insert(0))
    }
}

impl Analyzer for Sack {
    fn packets(&self) -> Kinds {
        Kinds::TCP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        self.tcp_packets += 1;
        let stream = meta.tcp.stream;
        if tcp.flags & TCP_SYN != 0 {
            if !tcp.sack_permitted {
                return;
            }
            let synack = tcp.flags & TCP_ACK != 0;
            if synack {
                self.synack_permitted += 1;
            } else {
                self.syn_permitted += 1;
            }
            let mut negotiated = false;
            if let Some(b) = self.bits(stream) {
                *b |= if synack {
                    SYNACK_PERMITTED
                } else {
                    SYN_PERMITTED
                };
                if *b & (SYN_PERMITTED | SYNACK_PERMITTED) == SYN_PERMITTED | SYNACK_PERMITTED
                    && *b & NEGOTIATED == 0
                {
                    *b |= NEGOTIATED;
                    negotiated = true;
                }
            }
            if negotiated {
                self.negotiated += 1;
            }
            return;
        }
        let n = usize::from(tcp.sack_blocks).min(tcp.sack.len());
        if n == 0 {
            return;
        }
        let blocks = &tcp.sack[..n];
        self.sack_packets += 1;
        let dsack = is_dsack(tcp.ack, blocks);
        if dsack {
            self.dsack_packets += 1;
        }
        let (mut first_use, mut first_dsack) = (false, false);
        if let Some(b) = self.bits(stream) {
            first_use = *b & USED == 0;
            first_dsack = dsack && *b & DSACK == 0;
            *b |= USED | if dsack { DSACK } else { 0 };
        }
        if first_use {
            self.using += 1;
        }
        if first_dsack {
            self.with_dsack += 1;
        }
        if self.events.len() < MAX_FINDINGS {
            let (src, dst) = meta.flow.map(|(k, d)| k.endpoints(d)).unwrap_or_default();
            self.events.push(SackEvent {
                packet_num: pkt.number,
                timestamp: crate::time::iso_utc(pkt.ts_ns),
                stream,
                src,
                dst,
                ack: tcp.ack,
                blocks: blocks.iter().map(|&(l, r)| [l, r]).collect(),
                is_dsack: dsack,
                display_filter: format!("tcp.stream == {stream} && tcp.options.sack_le"),
            });
        }
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        report.sack = Some(SackReport {
            total_tcp_packets: self.tcp_packets,
            sack_packets: self.sack_packets,
            sack_usage_pct: round3(
                self.sack_packets as f64 * 100.0 / self.tcp_packets.max(1) as f64,
            ),
            dsack_packets: self.dsack_packets,
            dsack_rate: round3(self.dsack_packets as f64 * 100.0 / self.sack_packets.max(1) as f64),
            syn_with_sack_permitted: self.syn_permitted,
            synack_with_sack_permitted: self.synack_permitted,
            flows_sack_negotiated: self.negotiated,
            flows_using_sack: self.using,
            flows_with_dsack: self.with_dsack,
            total_sack_events: self.sack_packets,
            sack_events: self.events,
        });
    }
}
