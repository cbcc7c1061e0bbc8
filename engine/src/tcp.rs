//! TCP stream tracking and sequence analysis, following Wireshark's rules
//! (`epan/dissectors/packet-tcp.c`, `tcp_analyze_sequence_number`), so that every flag we raise
//! can be found in Wireshark with `tcp.analysis.*` and counts agree with tshark:
//!
//! * a SYN with a sequence number other than the stream's first one starts a new stream
//!   (`tcp.stream`), as tshark 4.0 does for reused ports;
//! * *lost segment* ("previous segment not captured"): the segment starts beyond the highest
//!   sequence number seen in its direction;
//! * *duplicate ACK*: no data, same window, same seq and ack as the previous segment;
//! * *fast retransmission*: does not advance the sequence, two or more duplicate ACKs came the
//!   other way, the sequence equals their ACK, and it follows the last ACK within 20 ms;
//! * *out-of-order*: does not advance the sequence and follows the highest segment within the
//!   handshake RTT (3 ms when unknown);
//! * *spurious retransmission*: data already acknowledged by the other side;
//! * *retransmission*: any other segment that does not advance the sequence. Like tshark's
//!   `tcp.analysis.retransmission`, fast and spurious retransmissions are retransmissions too.
//!
//! Sequence arithmetic is modulo 2^32 (RFC 793 section 3.3), written with wrapping operations.

use crate::decode::{Packet, TcpInfo, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::flow::Direction;

/// `tcp.analysis.*` flags of one segment.
pub mod flags {
    pub const RETRANSMISSION: u32 = 1 << 0;
    pub const FAST_RETRANSMISSION: u32 = 1 << 1;
    pub const SPURIOUS_RETRANSMISSION: u32 = 1 << 2;
    pub const OUT_OF_ORDER: u32 = 1 << 3;
    pub const LOST_SEGMENT: u32 = 1 << 4;
    pub const DUP_ACK: u32 = 1 << 5;
    pub const ZERO_WINDOW: u32 = 1 << 6;
    pub const ZERO_WINDOW_PROBE: u32 = 1 << 7;
    pub const KEEP_ALIVE: u32 = 1 << 8;
    pub const WINDOW_UPDATE: u32 = 1 << 9;
    pub const ACK_LOST_SEGMENT: u32 = 1 << 10;
    pub const ZERO_WINDOW_PROBE_ACK: u32 = 1 << 11;
    pub const KEEP_ALIVE_ACK: u32 = 1 << 12;
    pub const WINDOW_FULL: u32 = 1 << 13;
    pub const PORTS_REUSED: u32 = 1 << 14;
}

/// Window under which two segments that do not advance the sequence are called out-of-order
/// when the handshake RTT is unknown (Wireshark's default, 3 ms).
const DEFAULT_OOO_THRESHOLD_NS: i64 = 3_000_000;
/// TCP header bytes Wireshark reads before it looks up the stream (ports to window).
const TCP_BYTES_FOR_STREAM: usize = 16;
/// A retransmission this soon after duplicate ACKs is a fast retransmission (Wireshark: 20 ms).
const FAST_RETRANS_WINDOW_NS: i64 = 20_000_000;

/// Result of the analysis of one TCP segment.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpAnalysis {
    /// `tcp.stream`: 0-based index of the stream in order of appearance.
    pub stream: u64,
    pub dir: Option<Direction>,
    pub flags: u32,
    /// For duplicate ACKs: their number in the run (1 for the first duplicate).
    pub dup_ack_num: u32,
    /// For retransmissions: time since the segment that last advanced the sequence, and its frame.
    pub rto_ns: i64,
    pub rto_frame: u64,
    /// Handshake RTT (SYN to the ACK of the SYN/ACK) once known.
    pub initial_rtt_ns: Option<i64>,
    /// This segment completed the handshake (the first time `initial_rtt_ns` is known).
    pub initial_rtt_now: bool,
    /// For ACKs: RTT of the data segment this ACK covers, and that segment's frame.
    pub ack_rtt: Option<(i64, u64)>,
    /// Window in bytes with the window scale of this direction applied (RFC 7323 section 2.3).
    pub window_bytes: u64,
    /// First packet of a new stream.
    pub new_stream: bool,
}

impl TcpAnalysis {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
    pub fn is_retransmission(&self) -> bool {
        self.has(flags::RETRANSMISSION)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct DirState {
    base_seq: Option<u32>,
    /// Highest sequence number seen plus length (0 means unknown, as in Wireshark).
    nextseq: u32,
    nextseq_time: i64,
    nextseq_frame: u64,
    /// Highest continuous sequence seen (Wireshark's `maxseqtobeacked`).
    max_to_ack: u32,
    lastack: u32,
    lastack_time: i64,
    window: u16,
    window_seen: bool,
    dupacknum: u32,
    last_flags: u32,
    /// Window scale announced in this direction's SYN (None until seen).
    wscale: Option<u8>,
    saw_syn: bool,
    /// Oldest data segment not yet acknowledged: (end seq, ts, frame), for ACK RTT.
    unacked: [(u32, i64, u64); UNACKED_SLOTS],
    unacked_len: u8,
}

/// Data segments remembered per direction for ACK RTT; a larger flight only loses RTT samples.
const UNACKED_SLOTS: usize = 8;

#[derive(Debug, Clone, Default)]
struct Conv {
    stream: u64,
    dirs: [DirState; 2],
    saw_fin: bool,
    saw_rst: bool,
    mru_syn_ts: Option<i64>,
    first_rtt_ns: Option<i64>,
    first_rtt_reported: bool,
    last_seen: i64,
}

/// Tracks every TCP stream of a capture. Stream state lives in the slot of its flow in the
/// [`crate::flow::FlowTable`], so finding it costs no second hash lookup.
#[derive(Default)]
pub struct TcpTracker {
    convs: Vec<Option<Box<Conv>>>,
    next_stream: u64,
}

impl TcpTracker {
    /// Number of streams seen (`tcp.stream` values).
    pub fn streams(&self) -> u64 {
        self.next_stream
    }

    /// The flow in `slot` was evicted: its stream state goes too.
    pub fn forget(&mut self, slot: u32) {
        if let Some(c) = self.convs.get_mut(slot as usize) {
            *c = None;
        }
    }

    /// Starts loading the state of the flow in `slot`: `far`, the table entry (for a packet
    /// further ahead); otherwise the conversation behind it (whose entry was loaded by then).
    pub fn prefetch(&self, slot: u32, far: bool) {
        match self.convs.get(slot as usize) {
            Some(entry) if far => crate::flow::prefetch(entry),
            Some(Some(conv)) => crate::flow::prefetch(&**conv),
            _ => {}
        }
    }

    /// Analyses a TCP packet of the flow in `slot` (from [`crate::flow::FlowTable::touch`]).
    pub fn analyze(&mut self, pkt: &Packet<'_>, slot: u32, dir: Direction) -> TcpAnalysis {
        let Some(tcp) = pkt.tcp() else {
            return TcpAnalysis::default();
        };
        // Wireshark reads the ports, sequence, acknowledgement, flags and window (16 bytes)
        // before it finds the conversation: a header cut shorter gets no `tcp.stream`.
        if tcp.header_incomplete && usize::from(tcp.header_captured) < TCP_BYTES_FOR_STREAM {
            return TcpAnalysis::default();
        }
        let mut result = TcpAnalysis {
            dir: Some(dir),
            ..TcpAnalysis::default()
        };
        let fwd = dir.index();
        let is_pure_syn = tcp.flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        let slot = slot as usize;
        if self.convs.len() <= slot {
            self.convs.resize_with(slot + 1, || None);
        }
        let new_needed = match &self.convs[slot] {
            None => true,
            Some(conv) => {
                let reused =
                    is_pure_syn && conv.dirs[fwd].base_seq.is_some_and(|base| tcp.seq != base);
                if reused {
                    result.flags |= flags::PORTS_REUSED;
                }
                reused
            }
        };
        if new_needed {
            self.convs[slot] = Some(Box::new(Conv {
                stream: self.next_stream,
                ..Conv::default()
            }));
            self.next_stream += 1;
            result.new_stream = true;
        }
        let Some(conv) = self.convs[slot].as_deref_mut() else {
            return result;
        };
        conv.last_seen = pkt.ts_ns;
        result.stream = conv.stream;
        if tcp.header_incomplete {
            return result;
        }
        analyze_sequence(conv, fwd, tcp, pkt, &mut result);
        if tcp.flags & TCP_FIN != 0 {
            conv.saw_fin = true;
        }
        if tcp.flags & TCP_RST != 0 {
            conv.saw_rst = true;
        }
        result.initial_rtt_ns = conv.first_rtt_ns;
        result
    }
}

fn gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}
fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
fn le(a: u32, b: u32) -> bool {
    !gt(a, b)
}

fn analyze_sequence(
    conv: &mut Conv,
    fwd: usize,
    tcp: &TcpInfo,
    pkt: &Packet<'_>,
    out: &mut TcpAnalysis,
) {
    let rev = 1 - fwd;
    let (seq, ack, seglen, fl, window) = (tcp.seq, tcp.ack, tcp.seg_len, tcp.flags, tcp.window);
    let now = pkt.ts_ns;
    let syn = fl & TCP_SYN != 0;
    let mut ta: u32 = 0;

    if conv.dirs[fwd].base_seq.is_none() {
        conv.dirs[fwd].base_seq = Some(if syn { seq } else { seq.wrapping_sub(1) });
    }
    if conv.dirs[rev].base_seq.is_none() && fl & TCP_ACK != 0 {
        conv.dirs[rev].base_seq = Some(ack.wrapping_sub(1));
    }
    if syn {
        conv.dirs[fwd].saw_syn = true;
        conv.dirs[fwd].wscale = tcp.wscale;
    }

    // Handshake RTT: from the most recent SYN to the first ACK that is not a SYN/ACK.
    if fl & (TCP_SYN | TCP_ACK) == TCP_SYN {
        conv.mru_syn_ts = Some(now);
    }
    if fl & (TCP_SYN | TCP_ACK) == TCP_ACK && conv.first_rtt_ns.is_none() {
        if let Some(syn_ts) = conv.mru_syn_ts {
            conv.first_rtt_ns = Some(now - syn_ts);
        }
    }
    // tshark shows `tcp.analysis.initial_rtt` on segments without SYN or FIN; a stream counts as
    // measured from the first such segment.
    if conv.first_rtt_ns.is_some() && !conv.first_rtt_reported && fl & (TCP_SYN | TCP_FIN) == 0 {
        conv.first_rtt_reported = true;
        out.initial_rtt_now = true;
    }

    let f = conv.dirs[fwd];
    let r = conv.dirs[rev];
    'fwd: {
        // Zero window probe: one byte at the expected sequence while the peer's window is 0.
        if seglen == 1 && seq == f.nextseq && r.window_seen && r.window == 0 {
            ta |= flags::ZERO_WINDOW_PROBE;
            break 'fwd;
        }
        if window == 0 && fl & (TCP_RST | TCP_FIN | TCP_SYN) == 0 {
            ta |= flags::ZERO_WINDOW;
        }
        if f.nextseq != 0 && gt(seq, f.nextseq) && fl & TCP_RST == 0 {
            ta |= flags::LOST_SEGMENT;
        }
        if seglen <= 1
            && fl & (TCP_FIN | TCP_SYN | TCP_RST) == 0
            && f.nextseq.wrapping_sub(1) == seq
            && f.nextseq != 0
        {
            ta |= flags::KEEP_ALIVE;
        }
        let same_state = seglen == 0
            && seq == f.nextseq
            && ack == f.lastack
            && fl & (TCP_SYN | TCP_FIN | TCP_RST) == 0
            && f.window_seen;
        if same_state && window != 0 && window != f.window {
            ta |= flags::WINDOW_UPDATE;
        }
        if same_state && window != 0 && window == f.window && r.last_flags & flags::KEEP_ALIVE != 0
        {
            ta |= flags::KEEP_ALIVE_ACK;
            break 'fwd;
        }
        if same_state
            && window == 0
            && f.window == 0
            && r.last_flags & flags::ZERO_WINDOW_PROBE != 0
        {
            ta |= flags::ZERO_WINDOW_PROBE_ACK;
            break 'fwd;
        }
        if same_state && window != 0 && window == f.window {
            conv.dirs[fwd].dupacknum = conv.dirs[fwd].dupacknum.wrapping_add(1);
            ta |= flags::DUP_ACK;
            out.dup_ack_num = conv.dirs[fwd].dupacknum;
        }
    }
    // Wireshark resets the duplicate ACK count only when the ACK number moves: a window
    // update between duplicate ACKs does not, so a fast retransmission after it stays fast.
    if ack != f.lastack {
        conv.dirs[fwd].dupacknum = 0;
    }
    // Window full (Wireshark): data up to the right edge of the window the receiver last
    // advertised. Only when the receiver's window scale is known, i.e. its SYN was seen.
    if seglen > 0 && fl & (TCP_SYN | TCP_FIN | TCP_RST) == 0 && r.saw_syn && r.window_seen {
        let scale = match (r.wscale, f.wscale) {
            (Some(s), Some(_)) => u32::from(s.min(14)),
            _ => 0,
        };
        let edge = r.lastack.wrapping_add(u32::from(r.window) << scale);
        if seq.wrapping_add(seglen) == edge {
            ta |= flags::WINDOW_FULL;
        }
    }
    // ACKed unseen segment (Wireshark): beyond the other direction's highest continuous
    // sequence. Once flagged, the boundary drops back to that direction's highest sequence
    // when it can; when it cannot (the other side only sends ACKs), the flag needs that
    // side's duplicate ACK count at 0, which it then puts out of reach, so that one loss is
    // flagged once.
    if r.max_to_ack != 0 && fl & TCP_ACK != 0 && gt(ack, r.max_to_ack) {
        let o = &mut conv.dirs[rev];
        if o.max_to_ack > o.nextseq {
            o.max_to_ack = o.nextseq;
            ta |= flags::ACK_LOST_SEGMENT;
        } else {
            if o.dupacknum == 0 {
                ta |= flags::ACK_LOST_SEGMENT;
            }
            o.dupacknum = u32::MAX;
        }
    }

    if (seglen > 0 || fl & (TCP_SYN | TCP_FIN) != 0) && ta & flags::KEEP_ALIVE == 0 {
        // A segment of more than one byte starting one byte before the expected sequence (after
        // a possible zero window probe) brings new data: not a retransmission nor out-of-order.
        let seq_not_advanced = f.nextseq != 0
            && lt(seq, f.nextseq)
            && !(seglen > 1 && f.nextseq.wrapping_sub(1) == seq);
        // Wireshark keeps these deltas in unsigned 64-bit integers, so a segment timestamped
        // before the reference (time going backwards in the file) is never "recent".
        let since_ack = now.wrapping_sub(r.lastack_time) as u64;
        let ooo_threshold = conv
            .first_rtt_ns
            .filter(|&v| v > 0)
            .unwrap_or(DEFAULT_OOO_THRESHOLD_NS);
        let since_next = now.wrapping_sub(f.nextseq_time) as u64;
        // tshark 4.0 checks for a spurious retransmission (data the peer already acknowledged)
        // before fast retransmission and out-of-order.
        if seglen > 0 && r.lastack != 0 && le(seq.wrapping_add(seglen), r.lastack) {
            ta |= flags::SPURIOUS_RETRANSMISSION | flags::RETRANSMISSION;
        } else if seq_not_advanced
            && conv.dirs[rev].dupacknum >= 2
            && r.lastack == seq
            && since_ack < FAST_RETRANS_WINDOW_NS as u64
        {
            ta |= flags::FAST_RETRANSMISSION | flags::RETRANSMISSION;
        } else if seq_not_advanced
            && since_next < ooo_threshold as u64
            && f.nextseq
                != seq
                    .wrapping_add(seglen)
                    .wrapping_add(u32::from(fl & (TCP_SYN | TCP_FIN) != 0))
        {
            ta |= flags::OUT_OF_ORDER;
        } else if seq_not_advanced {
            ta |= flags::RETRANSMISSION;
        }
        if ta & flags::RETRANSMISSION != 0 {
            out.rto_ns = now - f.nextseq_time;
            out.rto_frame = f.nextseq_frame;
        }
    }

    let mut nextseq = seq.wrapping_add(seglen);
    if fl & (TCP_SYN | TCP_FIN) != 0 {
        nextseq = nextseq.wrapping_add(1);
    }
    let d = &mut conv.dirs[fwd];
    if (gt(nextseq, d.nextseq) || d.nextseq == 0) && ta & flags::ZERO_WINDOW_PROBE == 0 {
        d.nextseq = nextseq;
        d.nextseq_time = now;
        d.nextseq_frame = pkt.number;
    }
    if (seq == d.max_to_ack || d.max_to_ack == 0) && ta & flags::ZERO_WINDOW_PROBE == 0 {
        d.max_to_ack = d.nextseq;
    }
    // Remember unacknowledged data for ACK RTT (Wireshark's tcp.analysis.ack_rtt).
    if seglen > 0 && ta & flags::RETRANSMISSION == 0 && (d.unacked_len as usize) < UNACKED_SLOTS {
        d.unacked[d.unacked_len as usize] = (seq.wrapping_add(seglen), now, pkt.number);
        d.unacked_len += 1;
    }
    d.window = window;
    d.window_seen = true;
    d.lastack = ack;
    d.lastack_time = now;
    d.last_flags = ta;
    let scale = match (d.wscale, conv.dirs[rev].wscale) {
        (Some(s), Some(_)) if !syn => u32::from(s.min(14)),
        _ => 0,
    };
    out.window_bytes = u64::from(window) << scale;

    // ACK RTT: this ACK covers the oldest data segments of the other direction.
    if fl & TCP_ACK != 0 {
        let o = &mut conv.dirs[rev];
        let n = o.unacked_len as usize;
        let covered = o.unacked[..n]
            .iter()
            .take_while(|(end, _, _)| le(*end, ack))
            .count();
        if covered > 0 {
            let (_, ts, frame) = o.unacked[covered - 1];
            out.ack_rtt = Some((now - ts, frame));
            o.unacked.copy_within(covered..n, 0);
            o.unacked_len = (n - covered) as u8;
        }
    }
    out.flags |= ta;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Frame;
    use crate::decode::{decode, linktype, TCP_PSH};

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];

    /// One raw IPv4/TCP frame: (time in µs, from client?, seq, ack, flags, payload length).
    fn segment(from_client: bool, seq: u32, ack: u32, flags: u8, len: usize) -> Vec<u8> {
        let (src, dst, sp, dp) = if from_client {
            (CLIENT, SERVER, 40000u16, 80u16)
        } else {
            (SERVER, CLIENT, 80, 40000)
        };
        let total = (40 + len) as u16;
        let mut b = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 6, 0, 0];
        b[2..4].copy_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&src);
        b.extend_from_slice(&dst);
        b.extend_from_slice(&sp.to_be_bytes());
        b.extend_from_slice(&dp.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ack.to_be_bytes());
        b.extend_from_slice(&[0x50, flags, 0x10, 0x00, 0, 0, 0, 0]);
        b.resize(40 + len, b'x');
        b
    }

    /// Runs the segments through a tracker and returns the flags of each.
    fn run(segments: &[(i64, bool, u32, u32, u8, usize)]) -> Vec<u32> {
        let mut tracker = TcpTracker::default();
        let mut table = crate::flow::FlowTable::default();
        segments
            .iter()
            .enumerate()
            .map(|(i, &(us, c, seq, ack, fl, len))| {
                let data = segment(c, seq, ack, fl, len);
                let frame = Frame {
                    number: i as u64 + 1,
                    ts_ns: us * 1000,
                    ts_known: true,
                    linktype: linktype::RAW,
                    data: &data,
                    wire_len: data.len() as u32,
                    record: (0, 0),
                };
                let pkt = decode(&frame);
                let (key, dir) = crate::flow::FlowKey::of_packet(&pkt).expect("flow");
                let touch = table.touch(key, dir, pkt.ts_ns, pkt.number, pkt.wire_len);
                tracker.analyze(&pkt, touch.slot, dir).flags
            })
            .collect()
    }

    const SYN_ACK: u8 = TCP_SYN | TCP_ACK;
    const DATA: u8 = TCP_PSH | TCP_ACK;

    #[test]
    fn acknowledged_data_is_spurious_even_within_the_out_of_order_window() {
        // Handshake RTT 30 ms; data 1..=3000 acknowledged, then a copy of 1001..2001 comes
        // 20 ms after the highest segment: tshark 4.0 checks spurious before out-of-order.
        let f = run(&[
            (0, true, 0, 0, TCP_SYN, 0),
            (10_000, false, 0, 1, SYN_ACK, 0),
            (30_000, true, 1, 1, TCP_ACK, 0),
            (100_000, false, 1, 1, DATA, 1000),
            (100_001, false, 1001, 1, DATA, 1000),
            (100_002, false, 2001, 1, DATA, 1000),
            (110_000, true, 1, 3001, TCP_ACK, 0),
            (120_000, false, 1001, 1, DATA, 1000),
        ]);
        let last = f[7];
        assert!(last & flags::SPURIOUS_RETRANSMISSION != 0, "{last:#x}");
        assert!(last & flags::RETRANSMISSION != 0);
        assert!(last & flags::OUT_OF_ORDER == 0);
    }

    #[test]
    fn new_data_starting_one_byte_early_is_not_out_of_order() {
        let f = run(&[
            (0, true, 0, 0, TCP_SYN, 0),
            (10_000, false, 0, 1, SYN_ACK, 0),
            (20_000, true, 1, 1, TCP_ACK, 0),
            (1_000_000, true, 1, 1, DATA, 100),
            (1_001_000, true, 100, 1, DATA, 10),
            // A real out-of-order segment for contrast.
            (1_002_000, true, 50, 1, DATA, 10),
        ]);
        assert_eq!(f[4] & (flags::OUT_OF_ORDER | flags::RETRANSMISSION), 0);
        assert!(f[5] & flags::OUT_OF_ORDER != 0, "{:#x}", f[5]);
    }
}
