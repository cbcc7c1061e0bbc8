//! `transfers`: what happened to each TCP conversation, and why, as an engineer reads it in
//! Wireshark. The counting sections (`retransmission`, `tcp_window`, `tcp_reset`...) say what
//! the flags are; this analysis turns a stream's packets into causes:
//!
//! - **loss vs reordering vs copies.** A segment below the next expected sequence was either
//!   sent again (a retransmission: loss) or sent earlier and overtaken (reordering). The IPv4
//!   identification, or else the TCP timestamp, tells which: a sender numbers its packets in
//!   the order it sends them, so a segment carrying an identification lower than one already
//!   seen in its direction was sent before it. Spurious retransmissions (the receiver had the
//!   data) are not loss, and frames recorded twice ([`crate::dedup`]) are skipped altogether.
//! - **the handshake**: its RTT (SYN to the ACK of the SYN/ACK, whichever side the capture was
//!   taken on), connections refused (RST to a SYN) and servers that never answer.
//! - **think times**: a server's time from the end of a request to its first answer byte,
//!   minus the path (the server's bare ACK of the request marks the request's arrival, else
//!   one handshake RTT), for request/response services; a client's wait between the handshake
//!   and its first request, when the client speaks first.
//! - **the receiver's window**: `tcp.analysis.window_full` segments, zero windows that reopen,
//!   and zero windows that never do (a stall).
//! - **resets in the middle of a transfer** (data in flight, no FIN before).
//! - **HTTP/1.x answers** 4xx/5xx.
//! - **what limited the transfer**, after T-RAT (Zhang et al., SIGCOMM 2002): `receiver_window`,
//!   `congestion` (loss), `bandwidth` (RTT grows as a queue fills), `latency` (over in a few
//!   round trips) or `application`.
//!
//! Each cause becomes one [`Finding`], aggregated over the streams, naming the worst ones.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::decode::{Packet, TcpInfo, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::finding::{stream_filter, Cause, Evidence, Finding, Severity, MAX_FINDING_FRAMES};
use crate::flow::{endpoint, Direction, FlowKey, FlowRecord, PerSlot};
use crate::report::{Report, MAX_RANKED};
use crate::stats::{round3, Top};
use crate::tcp::flags;
use crate::Options;

const KEY: &str = "transfers";

/// Server ports of request/response services, where the time from a request to its answer is
/// the server's think time. On other ports (interactive shells, push protocols, tunnels) a
/// quiet server is not a slow one.
const REQUEST_RESPONSE_PORTS: &[u16] = &[
    21, 25, 53, 80, 88, 110, 111, 139, 143, 389, 443, 445, 465, 587, 636, 993, 995, 1433, 1521,
    2049, 3128, 3306, 5432, 6379, 8000, 8008, 8080, 8443, 8888, 9200, 11211, 27017,
];

/// Think time (ns) from which a response counts as slow.
const SLOW_THINK_NS: i64 = 500_000_000;
/// A client's wait (ns) between the handshake and its first request that counts as slow.
const SLOW_CLIENT_NS: i64 = 500_000_000;
/// Segments this large or larger that never get through suggest a path MTU black hole.
const PMTU_MIN_SEGMENT: u32 = 1000;
/// Data segments a direction needs before its transfer gets a limit.
const LIMIT_MIN_SEGMENTS: u32 = 32;
/// RTT samples a stream needs before its RTT growth is judged.
const BLOAT_MIN_SAMPLES: u32 = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransferFlow {
    pub stream: u64,
    pub client: String,
    pub server: String,
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub duration_seconds: f64,
    pub handshake_rtt_ms: Option<f64>,
    /// Segments sent again because the first copy was lost (spurious ones and copies excluded).
    pub lost_segments: u64,
    /// Segments overtaken by ones sent after them.
    pub reordered_segments: u64,
    /// Frames recorded twice by the capture.
    pub duplicate_frames: u64,
    pub window_full: u64,
    pub zero_window_seconds: f64,
    /// The window scale shifts of the handshake, `client/server` (`0/0` when either side does not
    /// offer scaling); `unknown` when the handshake is not in the capture, as in Wireshark. The
    /// window of such a flow is never judged: no window full, no low window.
    pub window_scale: String,
    /// Path RTT of the data: by its ACKs (Karn: unambiguous samples only) when the capture is
    /// at the sender, by the TCP timestamps echoed when it is at the receiver; lowest and mean.
    pub ack_rtt_min_ms: Option<f64>,
    pub ack_rtt_mean_ms: Option<f64>,
    /// The server's longest think time over the requests.
    pub server_think_ms: Option<f64>,
    /// The client's wait between the handshake and its first request.
    pub client_wait_ms: Option<f64>,
    pub http_responses: u64,
    pub http_errors: u64,
    /// What limited the transfer: application, receiver_window, congestion, bandwidth or latency
    /// (none for streams with little data).
    pub limit: Option<String>,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransfersReport {
    pub total_streams: u64,
    pub streams_with_data: u64,
    /// Streams by what limited them.
    pub limits: BTreeMap<String, u64>,
    /// Streams whose handshake is not in the capture: window scale unknown, window not judged.
    pub streams_with_unknown_window_scale: u64,
    pub lost_segments: u64,
    pub reordered_segments: u64,
    pub duplicate_frames: u64,
    pub data_segments: u64,
    pub http_responses: u64,
    pub http_status_codes: BTreeMap<String, u64>,
    /// The streams that moved the most bytes.
    pub flows: Vec<TransferFlow>,
}

/// A capture time or duration that may be unknown, in 8 bytes (an `Option<i64>` takes 16, and
/// a stream holds a dozen): [`i64::MIN`], never a time of a capture, is "unknown". A live
/// stream's state is then 10 cache lines, not 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ns(i64);

impl Default for Ns {
    fn default() -> Self {
        Ns(i64::MIN)
    }
}

impl Ns {
    fn get(self) -> Option<i64> {
        (self.0 != i64::MIN).then_some(self.0)
    }

    fn set(&mut self, v: i64) {
        // A time at i64::MIN (before 1677) reads as unknown; clamped, it stays known.
        self.0 = v.max(i64::MIN + 1);
    }

    fn take(&mut self) -> Option<i64> {
        std::mem::take(self).get()
    }
}

/// One direction of a stream.
#[derive(Debug, Clone, Copy, Default)]
struct Side {
    packets: u32,
    data_segs: u32,
    bytes: u64,
    first_data_ts: Ns,
    last_data_ts: i64,
    last_ts: Ns,
    /// Highest IPv4 identification seen (in send order, modulo 2^16).
    max_ident: Option<u16>,
    /// Highest TCP TSval seen.
    max_tsval: Option<u32>,
    /// Highest sequence number sent plus length.
    seq_end: Option<u32>,
    /// Highest acknowledgement number sent (the other side's data received).
    max_ack: Option<u32>,
    lost: u32,
    reordered: u32,
    dups: u32,
    window_full: u32,
    first_lost_frame: u64,
    first_lost_ts: Ns,
    first_reorder_frame: u64,
    fin: bool,
    /// This side advertises a zero window since (ts, frame).
    zero_since: Ns,
    zero_since_frame: u64,
    zero_ns: i64,
    zero_frame: u64,
    zero_windows: u32,
    /// Largest data segment sent, smallest one sent again, and the largest step of this
    /// side's ACK number (how much of the peer's data one ACK confirmed at most).
    max_seg: u32,
    min_lost_len: u32,
    max_ack_step: u32,
    /// A TSval this side sent, and when, until the peer's data echoes it.
    ts_probe: Option<(u32, i64)>,
    last_probe: Option<u32>,
    /// This side's SYN was seen, with its window scale option if any.
    syn_wscale: Option<Option<u8>>,
}

/// RTT samples: lowest, sum, count.
#[derive(Debug, Clone, Copy, Default)]
struct RttStats {
    min: i64,
    sum: i64,
    n: u32,
}

impl RttStats {
    fn add(&mut self, rtt: i64) {
        if self.n == 0 || rtt < self.min {
            self.min = rtt;
        }
        self.sum += rtt;
        self.n += 1;
    }

    fn mean(&self) -> i64 {
        if self.n == 0 {
            0
        } else {
            self.sum / i64::from(self.n)
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    stream: u64,
    key: Option<FlowKey>,
    /// Side index (0 = a → b) of the client.
    client: usize,
    client_known: bool,
    sides: [Side; 2],
    first_ts: i64,
    last_ts: i64,
    syn_frame: u64,
    syns: u32,
    synack: bool,
    handshake_ns: Ns,
    handshake_done_ts: Ns,
    refused_frame: u64,
    rst_frame: u64,
    aborted: bool,
    /// RTT of the data by its ACKs (the full path when the capture is at the sender).
    ack_rtt: RttStats,
    /// RTT from a TCP timestamp sent to the data that echoes it (the full path when the
    /// capture is at the receiver).
    echo_rtt: RttStats,
    // Request/response.
    awaiting: bool,
    request_ts: i64,
    request_frame: u64,
    bare_ack_ts: Ns,
    think_max_ns: i64,
    think_frame: u64,
    slow_responses: u32,
    responses: u32,
    server_spoke_first: bool,
    client_spoke: bool,
    client_wait_ns: Ns,
    client_wait_frame: u64,
    http: bool,
    http_responses: u32,
    http_errors: u32,
    http_error_frame: u64,
    http_worst_status: u16,
}

fn side(dir: Direction) -> usize {
    match dir {
        Direction::AtoB => 0,
        Direction::BtoA => 1,
    }
}

/// `a` comes after `b` in sequence space (RFC 1982 arithmetic on 32 bits).
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// `a` was numbered after `b` (16-bit identification space).
fn ident_after(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

/// The HTTP/1.x status code at the start of a payload.
fn http_status(payload: &[u8]) -> Option<u16> {
    let rest = payload.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

fn is_http_request(payload: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS.iter().any(|m| payload.starts_with(m))
}

impl Stream {
    fn server(&self) -> usize {
        1 - self.client
    }

    fn endpoints(&self) -> (String, String) {
        let Some(k) = self.key else {
            return Default::default();
        };
        let a = endpoint(k.a, k.a_port);
        let b = endpoint(k.b, k.b_port);
        if self.client == 0 {
            (a, b)
        } else {
            (b, a)
        }
    }

    fn host(&self, s: usize) -> String {
        self.key
            .map(|k| if s == 0 { k.a } else { k.b }.to_string())
            .unwrap_or_default()
    }

    fn server_port(&self) -> u16 {
        self.key
            .map(|k| {
                if self.server() == 0 {
                    k.a_port
                } else {
                    k.b_port
                }
            })
            .unwrap_or(0)
    }

    fn request_response(&self) -> bool {
        self.http || REQUEST_RESPONSE_PORTS.contains(&self.server_port())
    }

    fn lost(&self) -> u32 {
        self.sides[0].lost + self.sides[1].lost
    }

    fn data_segs(&self) -> u32 {
        self.sides[0].data_segs + self.sides[1].data_segs
    }

    fn bytes(&self) -> u64 {
        self.sides[0].bytes + self.sides[1].bytes
    }

    /// The sender whose full-size segments never get through while small ones do: a hop
    /// drops packets above some size without an ICMP "fragmentation needed" (RFC 2923).
    fn blackholed(&self) -> Option<usize> {
        (0..2).find(|&s| {
            let me = &self.sides[s];
            let acker = &self.sides[1 - s];
            me.lost >= 3
                && me.min_lost_len >= PMTU_MIN_SEGMENT
                && acker.max_ack_step > 0
                && acker.max_ack_step < me.min_lost_len
                && match (me.seq_end, acker.max_ack) {
                    (Some(end), Some(ack)) => seq_after(end, ack),
                    _ => false,
                }
        })
    }

    /// The sender of a stream whose peer never answered after its first retransmission.
    fn silent_peer(&self) -> Option<usize> {
        (0..2).find(|&s| {
            let me = &self.sides[s];
            let peer = &self.sides[1 - s];
            me.lost >= 2
                && me
                    .first_lost_ts
                    .get()
                    .is_some_and(|t| peer.last_ts.get().is_none_or(|p| p < t))
        })
    }

    /// The path's RTT as this capture point sees it: of the two measures, the one that
    /// spans the path (the other one only spans the capturing host's own reaction time).
    fn path_rtt(&self) -> &RttStats {
        if self.echo_rtt.mean() > self.ack_rtt.mean() {
            &self.echo_rtt
        } else {
            &self.ack_rtt
        }
    }

    fn rtt_mean_ns(&self) -> Option<i64> {
        let r = self.path_rtt();
        (r.n > 0).then(|| r.mean())
    }

    /// RTT far above its own floor while data flows: a queue filling at a bottleneck.
    fn rtt_inflated(&self) -> bool {
        let r = self.path_rtt();
        r.n >= BLOAT_MIN_SAMPLES && r.mean() >= 3 * r.min.max(1) && r.mean() - r.min >= 100_000_000
    }

    /// A standing queue: RTT well above its floor for a long transfer, the sender held at the
    /// bottleneck's rate.
    fn rtt_queued(&self) -> bool {
        let r = self.path_rtt();
        let bulk = self.sides[0].bytes.max(self.sides[1].bytes);
        r.n >= BLOAT_MIN_SAMPLES
            && bulk >= 1_000_000
            && self.last_ts - self.first_ts >= 2_000_000_000
            && r.mean() >= 2 * r.min.max(1)
            && r.mean() - r.min >= 20_000_000
    }

    /// The window scale shifts `client/server`, or `unknown` without the handshake (RFC 7323:
    /// scaling is on only when both SYNs carry the option; shifts above 14 count as 14).
    fn window_scale(&self, client: usize, server: usize) -> String {
        match (self.sides[client].syn_wscale, self.sides[server].syn_wscale) {
            (Some(Some(c)), Some(Some(s))) => format!("{}/{}", c.min(14), s.min(14)),
            (Some(_), Some(_)) => "0/0".to_string(),
            _ => "unknown".to_string(),
        }
    }

    /// T-RAT's verdict on the direction that carried the most data.
    fn limit(&self) -> Option<&'static str> {
        let bulk = if self.sides[0].bytes >= self.sides[1].bytes {
            0
        } else {
            1
        };
        let sender = &self.sides[bulk];
        let receiver = &self.sides[1 - bulk];
        if sender.data_segs < LIMIT_MIN_SEGMENTS {
            return None;
        }
        let segs = f64::from(sender.data_segs);
        let duration = (sender.last_data_ts - sender.first_data_ts.get().unwrap_or(0)).max(0);
        let rtt = self.handshake_ns.get().or(self.rtt_mean_ns()).unwrap_or(0);
        Some(
            if receiver.zero_windows > 0 || f64::from(sender.window_full) / segs >= 0.1 {
                "receiver_window"
            } else if f64::from(sender.lost) / segs >= 0.01 && sender.lost >= 2 {
                "congestion"
            } else if self.rtt_inflated() || self.rtt_queued() {
                "bandwidth"
            } else if rtt > 0 && duration <= 6 * rtt {
                "latency"
            } else {
                "application"
            },
        )
    }
}

/// The causes' running totals over ended streams.
struct Totals {
    streams: u64,
    streams_with_data: u64,
    data_segs: u64,
    lost: u64,
    lost_frames: Vec<u64>,
    lost_streams: Top<(u64, u64, String)>,
    loss_hosts: Vec<String>,
    silent: Vec<(u64, u64, u64, String)>,
    reordered: u64,
    reorder_frames: Vec<u64>,
    reorder_streams: Vec<u64>,
    dups: u64,
    handshake_rtts: Vec<(i64, u64, u64, String)>,
    refused: BTreeMap<String, Group>,
    unanswered: BTreeMap<String, Group>,
    aborted: Vec<(u64, u64, u64, String)>,
    think: Vec<(i64, u64, u64, String)>,
    slow_responses: u64,
    responses: u64,
    client_waits: BTreeMap<String, ClientWaits>,
    http_responses: u64,
    http_errors: u64,
    http_streams: Vec<u64>,
    http_frames: Vec<u64>,
    http_codes: BTreeMap<String, u64>,
    stalls: Vec<(i64, u64, u64, String, String)>,
    zero_recovered_ns: i64,
    zero_recovered: u64,
    zero_frames: Vec<u64>,
    zero_streams: Vec<u64>,
    window_full: u64,
    window_full_segs: u64,
    window_full_streams: Vec<u64>,
    bloat: Vec<(i64, i64, u64, u64, String)>,
    /// Streams whose big segments vanish: (smallest lost, largest ACK step, retransmissions,
    /// stream, first frame, sender, flow).
    blackholes: Vec<(u32, u32, u64, u64, u64, String, String)>,
    /// Long transfers with a standing queue: (bytes, ns, min RTT, mean RTT, stream, flow).
    queued: Vec<(u64, i64, i64, i64, u64, String)>,
    /// Hosts exchanging data with peers, both ends on unregistered ports (peer-to-peer).
    peers: BTreeMap<IpAddr, PeerTraffic>,
    limits: BTreeMap<String, u64>,
    unknown_scale: u64,
    flows: Top<TransferFlow>,
}

/// Connections to one server port that failed the same way.
#[derive(Default)]
struct Group {
    ports: Vec<u16>,
    attempts: u64,
    syns: u64,
    clients: Vec<String>,
    streams: Vec<u64>,
    frames: Vec<u64>,
}

impl Group {
    fn add(&mut self, client: String, port: u16, stream: u64, frame: u64, syns: u32) {
        self.attempts += 1;
        if !self.ports.contains(&port) && self.ports.len() < 64 {
            self.ports.push(port);
        }
        self.syns += u64::from(syns);
        if !self.clients.contains(&client) {
            self.clients.push(client);
        }
        push_capped(&mut self.streams, stream);
        push_capped(&mut self.frames, frame);
    }

    /// Many hosts trying several ports of one server: someone else's probes hitting closed or
    /// filtered ports (worms, scanners), not a service this network needs.
    fn is_probing(&self) -> bool {
        self.clients.len() >= 5 && self.ports.len() >= 3
    }
}

/// A host's peer-to-peer exchanges (both ends on ports ≥ 1024).
#[derive(Default)]
struct PeerTraffic {
    sent: u64,
    received: u64,
    peers: Vec<IpAddr>,
    streams: Vec<u64>,
    first_ts: i64,
    last_ts: i64,
}

/// Hosts followed for peer-to-peer traffic (a bound on memory; the first ones seen).
const MAX_PEER_HOSTS: usize = 4096;
/// Peers from which a host's uploads compete for its link.
const MIN_UPLOAD_PEERS: usize = 10;

#[derive(Default)]
struct ClientWaits {
    connections: u64,
    waited: u64,
    worst: (i64, u64, u64),
}

fn push_capped(v: &mut Vec<u64>, x: u64) {
    if v.len() < MAX_FINDING_FRAMES && x != 0 {
        v.push(x);
    }
}

fn most_bytes_first(a: &TransferFlow, b: &TransferFlow) -> std::cmp::Ordering {
    (b.bytes_to_client + b.bytes_to_server)
        .cmp(&(a.bytes_to_client + a.bytes_to_server))
        .then(a.stream.cmp(&b.stream))
}

fn most_lost_first(a: &(u64, u64, String), b: &(u64, u64, String)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1))
}

pub struct Transfers {
    streams: PerSlot<Stream>,
    t: Totals,
}

impl Transfers {
    pub fn new(_options: &Options) -> Self {
        Transfers {
            streams: PerSlot::default(),
            t: Totals {
                streams: 0,
                streams_with_data: 0,
                data_segs: 0,
                lost: 0,
                lost_frames: Vec::new(),
                lost_streams: Top::new(MAX_FINDING_FRAMES, most_lost_first),
                loss_hosts: Vec::new(),
                silent: Vec::new(),
                reordered: 0,
                reorder_frames: Vec::new(),
                reorder_streams: Vec::new(),
                dups: 0,
                handshake_rtts: Vec::new(),
                refused: BTreeMap::new(),
                unanswered: BTreeMap::new(),
                aborted: Vec::new(),
                think: Vec::new(),
                slow_responses: 0,
                responses: 0,
                client_waits: BTreeMap::new(),
                http_responses: 0,
                http_errors: 0,
                http_streams: Vec::new(),
                http_frames: Vec::new(),
                http_codes: BTreeMap::new(),
                stalls: Vec::new(),
                zero_recovered_ns: 0,
                zero_recovered: 0,
                zero_frames: Vec::new(),
                zero_streams: Vec::new(),
                window_full: 0,
                window_full_segs: 0,
                window_full_streams: Vec::new(),
                bloat: Vec::new(),
                queued: Vec::new(),
                blackholes: Vec::new(),
                peers: BTreeMap::new(),
                limits: BTreeMap::new(),
                unknown_scale: 0,
                flows: Top::new(MAX_RANKED, most_bytes_first),
            },
        }
    }

    fn packet(s: &mut Stream, pkt: &Packet<'_>, tcp: &TcpInfo, meta: &PacketMeta, dir: usize) {
        let ta = &meta.tcp;
        let ts = pkt.ts_ns;
        s.last_ts = s.last_ts.max(ts);
        let payload = tcp.seg_len;
        if tcp.has(TCP_SYN) && !tcp.has(TCP_ACK) {
            if s.syns == 0 {
                s.syn_frame = pkt.number;
            }
            s.syns += 1;
            s.client = dir;
            s.client_known = true;
        } else if tcp.has(TCP_SYN) && !s.client_known {
            s.client = 1 - dir;
            s.client_known = true;
        }
        if tcp.has(TCP_SYN) && tcp.has(TCP_ACK) {
            s.synack = true;
        }
        if tcp.has(TCP_SYN) {
            s.sides[dir].syn_wscale = Some(tcp.wscale);
        }
        if !s.client_known && s.sides[0].packets + s.sides[1].packets == 0 {
            // No handshake in the capture: the side on the higher port is most likely the client.
            let k = meta.flow.map(|(k, _)| k);
            s.client = usize::from(k.is_some_and(|k| k.b_port > k.a_port));
            s.client_known = k.is_some_and(|k| k.a_port < 1024 || k.b_port < 1024);
        }
        if let Some(rtt) = ta.initial_rtt_ns.filter(|_| ta.initial_rtt_now) {
            s.handshake_ns.set(rtt);
            s.handshake_done_ts.set(ts);
        }
        if let Some((rtt, _)) = ta.ack_rtt {
            s.ack_rtt.add(rtt);
        }
        if let Some((tsval, tsecr)) = tcp.timestamps {
            // The peer's data echoing a timestamp this capture saw leave: one path RTT.
            let peer = &mut s.sides[1 - dir];
            if let Some((sent, at)) = peer.ts_probe.filter(|_| tcp.seg_len > 0) {
                if !seq_after(sent, tsecr) && tsecr != 0 {
                    s.echo_rtt.add(ts - at);
                    peer.ts_probe = None;
                }
            }
            let me = &mut s.sides[dir];
            if me.ts_probe.is_none() && me.last_probe != Some(tsval) {
                me.ts_probe = Some((tsval, ts));
                me.last_probe = Some(tsval);
            }
        }
        let ident = pkt.ip().filter(|ip| !ip.is_v6()).map(|ip| ip.ident);
        let tsval = tcp.timestamps.map(|(v, _)| v);
        let me = &mut s.sides[dir];
        me.packets += 1;
        me.last_ts.set(ts);
        // Window state of this side as a receiver.
        if !tcp.has(TCP_SYN) && !tcp.has(TCP_RST) {
            if tcp.window == 0 {
                if me.zero_since.get().is_none() {
                    me.zero_since.set(ts);
                    me.zero_since_frame = pkt.number;
                    me.zero_windows += 1;
                    if me.zero_frame == 0 {
                        me.zero_frame = pkt.number;
                    }
                }
            } else if let Some(since) = me.zero_since.take() {
                me.zero_ns += ts - since;
            }
        }
        if tcp.has(TCP_ACK) && !tcp.header_incomplete {
            me.max_ack = Some(match me.max_ack {
                Some(a) if !seq_after(tcp.ack, a) => a,
                Some(a) => {
                    me.max_ack_step = me.max_ack_step.max(tcp.ack.wrapping_sub(a));
                    tcp.ack
                }
                None => tcp.ack,
            });
        }
        if tcp.has(TCP_FIN) {
            me.fin = true;
        }
        // Was this segment sent before one already seen in its direction?
        let sent_earlier = match (ident, me.max_ident, tsval, me.max_tsval) {
            (Some(i), Some(max), _, _) if i != 0 => ident_after(max, i),
            (_, _, Some(v), Some(max)) => seq_after(max, v),
            _ => false,
        };
        if let Some(i) = ident.filter(|&i| i != 0) {
            if me.max_ident.is_none_or(|m| ident_after(i, m)) {
                me.max_ident = Some(i);
            }
        }
        if let Some(v) = tsval {
            if me.max_tsval.is_none_or(|m| seq_after(v, m)) {
                me.max_tsval = Some(v);
            }
        }
        if payload > 0 {
            me.data_segs += 1;
            me.bytes += u64::from(payload);
            me.max_seg = me.max_seg.max(payload);
            if me.first_data_ts.get().is_none() {
                me.first_data_ts.set(ts);
            }
            me.last_data_ts = ts;
            let end = tcp.seq.wrapping_add(payload);
            if me.seq_end.is_none_or(|e| seq_after(end, e)) {
                me.seq_end = Some(end);
            }
            if ta.has(flags::WINDOW_FULL) {
                me.window_full += 1;
            }
            let below_next = ta.is_retransmission() || ta.has(flags::OUT_OF_ORDER);
            if below_next && !ta.has(flags::SPURIOUS_RETRANSMISSION) {
                if sent_earlier {
                    me.reordered += 1;
                    if me.first_reorder_frame == 0 {
                        me.first_reorder_frame = pkt.number;
                    }
                } else if ta.is_retransmission() || ident.is_some() || tsval.is_some() {
                    me.lost += 1;
                    if me.min_lost_len == 0 || payload < me.min_lost_len {
                        me.min_lost_len = payload;
                    }
                    if me.first_lost_frame == 0 {
                        me.first_lost_frame = pkt.number;
                        me.first_lost_ts.set(ts);
                    }
                } else {
                    // Out of order with nothing to tell when it was sent: as Wireshark says.
                    me.reordered += 1;
                    if me.first_reorder_frame == 0 {
                        me.first_reorder_frame = pkt.number;
                    }
                }
            }
        }
        if tcp.has(TCP_RST) {
            let peer = 1 - dir;
            if !s.synack && s.syns > 0 && dir != s.client {
                s.refused_frame = pkt.number;
            } else if s.rst_frame == 0 && !s.sides[dir].fin {
                // Data in flight either way when the reset comes: the transfer was cut.
                let in_flight = |from: usize| {
                    let sender = &s.sides[from];
                    let acker = &s.sides[1 - from];
                    match (sender.seq_end, acker.max_ack) {
                        (Some(end), Some(ack)) => seq_after(end, ack),
                        (Some(_), None) => sender.bytes > 0,
                        _ => false,
                    }
                };
                // Or the side that resets was sending data a moment ago: it cut its own answer.
                let me = &s.sides[dir];
                let was_sending = me.bytes > 0
                    && ts - me.last_data_ts < 1_000_000_000
                    && me.last_data_ts >= s.sides[peer].last_data_ts;
                if (in_flight(dir) || in_flight(peer) || was_sending) && s.bytes() > 0 {
                    s.aborted = true;
                }
                s.rst_frame = pkt.number;
            }
        }
        Self::exchange(s, pkt, tcp, dir, ts);
    }

    /// Requests and answers: think times, the client's first wait, HTTP status codes.
    fn exchange(s: &mut Stream, pkt: &Packet<'_>, tcp: &TcpInfo, dir: usize, ts: i64) {
        if !s.client_known {
            return;
        }
        let from_client = dir == s.client;
        let payload = tcp.seg_len;
        if from_client {
            if payload > 0 {
                if !s.client_spoke {
                    s.client_spoke = true;
                    s.http = is_http_request(pkt.tcp_payload);
                    if let (false, Some(done)) = (s.server_spoke_first, s.handshake_done_ts.get()) {
                        s.client_wait_ns.set(ts - done);
                        s.client_wait_frame = pkt.number;
                    }
                }
                s.awaiting = true;
                s.request_ts = ts;
                s.request_frame = pkt.number;
                s.bare_ack_ts = Ns::default();
            }
            return;
        }
        if payload == 0 {
            if s.awaiting && tcp.has(TCP_ACK) && !tcp.has(TCP_FIN) && !tcp.has(TCP_RST) {
                let acked = s.sides[s.client]
                    .seq_end
                    .is_some_and(|end| !seq_after(end, tcp.ack));
                if acked && s.bare_ack_ts.get().is_none() {
                    s.bare_ack_ts.set(ts);
                }
            }
            return;
        }
        if !s.client_spoke {
            s.server_spoke_first = true;
        }
        if let Some(code) = http_status(pkt.tcp_payload) {
            s.http = true;
            s.http_responses += 1;
            if code >= 400 {
                s.http_errors += 1;
                if s.http_error_frame == 0 {
                    s.http_error_frame = pkt.number;
                }
                s.http_worst_status = s.http_worst_status.max(code);
            }
        }
        if s.awaiting {
            s.awaiting = false;
            let arrived = s
                .bare_ack_ts
                .get()
                .unwrap_or(s.request_ts + s.handshake_ns.get().unwrap_or(0));
            let think = (ts - arrived).max(0);
            s.responses += 1;
            if think >= SLOW_THINK_NS {
                s.slow_responses += 1;
            }
            if think > s.think_max_ns {
                s.think_max_ns = think;
                s.think_frame = pkt.number;
            }
        }
    }

    fn close(&mut self, s: Stream) {
        let t = &mut self.t;
        t.streams += 1;
        let (client, server) = s.endpoints();
        let flow_name = format!("{client} → {server}");
        let (c, sv) = (s.client, s.server());
        if s.data_segs() > 0 {
            t.streams_with_data += 1;
        }
        t.data_segs += u64::from(s.data_segs());
        // A path MTU black hole, then loss and reordering.
        let blackholed = s.blackholed();
        if let Some(sender) = blackholed {
            let d = &s.sides[sender];
            t.blackholes.push((
                d.min_lost_len,
                s.sides[1 - sender].max_ack_step,
                u64::from(d.lost),
                s.stream,
                d.first_lost_frame,
                s.host(sender),
                flow_name.clone(),
            ));
        }
        let lost = if blackholed.is_some() { 0 } else { s.lost() };
        if lost > 0 {
            t.lost += u64::from(lost);
            t.lost_streams
                .push((u64::from(lost), s.stream, flow_name.clone()));
            for side in 0..2 {
                let d = &s.sides[side];
                if d.lost > 0 {
                    push_capped(&mut t.lost_frames, d.first_lost_frame);
                    let h = s.host(side);
                    if t.loss_hosts.len() < MAX_FINDING_FRAMES && !t.loss_hosts.contains(&h) {
                        t.loss_hosts.push(h);
                    }
                }
            }
            if let Some(sender) = s.silent_peer() {
                t.silent.push((
                    u64::from(s.sides[sender].lost),
                    s.stream,
                    s.sides[sender].first_lost_frame,
                    flow_name.clone(),
                ));
            }
        }
        let reordered = s.sides[0].reordered + s.sides[1].reordered;
        if reordered > 0 {
            t.reordered += u64::from(reordered);
            push_capped(&mut t.reorder_streams, s.stream);
            for d in &s.sides {
                push_capped(&mut t.reorder_frames, d.first_reorder_frame);
            }
        }
        t.dups += u64::from(s.sides[0].dups + s.sides[1].dups);
        // The handshake.
        let server_key = s.host(sv);
        let port = s.server_port();
        if let Some(rtt) = s.handshake_ns.get() {
            t.handshake_rtts
                .push((rtt, s.stream, s.syn_frame, flow_name.clone()));
        }
        if s.refused_frame != 0 {
            t.refused.entry(server_key.clone()).or_default().add(
                s.host(c),
                port,
                s.stream,
                s.refused_frame,
                s.syns,
            );
        } else if s.syns > 0 && !s.synack && s.rst_frame == 0 {
            t.unanswered.entry(server_key).or_default().add(
                s.host(c),
                port,
                s.stream,
                s.syn_frame,
                s.syns,
            );
        }
        if s.aborted {
            t.aborted
                .push((s.bytes(), s.stream, s.rst_frame, flow_name.clone()));
        }
        // Think times.
        if s.request_response() && s.responses > 0 {
            t.responses += u64::from(s.responses);
            t.slow_responses += u64::from(s.slow_responses);
            if s.think_max_ns >= SLOW_THINK_NS {
                t.think
                    .push((s.think_max_ns, s.stream, s.think_frame, flow_name.clone()));
            }
        }
        if let Some(wait) = s.client_wait_ns.get().filter(|_| s.request_response()) {
            let w = t.client_waits.entry(s.host(c)).or_default();
            w.connections += 1;
            if wait >= SLOW_CLIENT_NS {
                w.waited += 1;
                if wait > w.worst.0 {
                    w.worst = (wait, s.stream, s.client_wait_frame);
                }
            }
        }
        // HTTP.
        if s.http_responses > 0 {
            t.http_responses += u64::from(s.http_responses);
            t.http_errors += u64::from(s.http_errors);
            if s.http_errors > 0 {
                push_capped(&mut t.http_streams, s.stream);
                push_capped(&mut t.http_frames, s.http_error_frame);
                let code = s.http_worst_status.to_string();
                *t.http_codes.entry(code).or_insert(0) += u64::from(s.http_errors);
            }
        }
        // The receiver's window.
        for side in 0..2 {
            let d = s.sides[side];
            if let (Some(since), frame) = (d.zero_since.get(), d.zero_since_frame) {
                let stalled = s.last_ts - since;
                t.stalls
                    .push((stalled, s.stream, frame, s.host(side), flow_name.clone()));
            }
            if d.zero_ns > 0 || (d.zero_windows > 0 && d.zero_since.get().is_none()) {
                t.zero_recovered += u64::from(d.zero_windows);
                t.zero_recovered_ns += d.zero_ns;
                push_capped(&mut t.zero_frames, d.zero_frame);
                push_capped(&mut t.zero_streams, s.stream);
            }
            if d.window_full > 0 {
                t.window_full += u64::from(d.window_full);
                t.window_full_segs += u64::from(d.data_segs);
                push_capped(&mut t.window_full_streams, s.stream);
            }
        }
        if let Some(k) = s.key.filter(|k| k.a_port >= 1024 && k.b_port >= 1024) {
            for (me, peer, sent, received) in [
                (k.a, k.b, s.sides[0].bytes, s.sides[1].bytes),
                (k.b, k.a, s.sides[1].bytes, s.sides[0].bytes),
            ] {
                if sent + received == 0
                    || (t.peers.len() >= MAX_PEER_HOSTS && !t.peers.contains_key(&me))
                {
                    continue;
                }
                let p = t.peers.entry(me).or_insert_with(|| PeerTraffic {
                    first_ts: s.first_ts,
                    last_ts: s.last_ts,
                    ..PeerTraffic::default()
                });
                p.sent += sent;
                p.received += received;
                p.first_ts = p.first_ts.min(s.first_ts);
                p.last_ts = p.last_ts.max(s.last_ts);
                if !p.peers.contains(&peer) && p.peers.len() < 256 {
                    p.peers.push(peer);
                }
                push_capped(&mut p.streams, s.stream);
            }
        }
        if s.rtt_queued() && !s.rtt_inflated() {
            let bulk = if s.sides[0].bytes >= s.sides[1].bytes {
                0
            } else {
                1
            };
            let d = &s.sides[bulk];
            t.queued.push((
                d.bytes,
                (d.last_data_ts - d.first_data_ts.get().unwrap_or(d.last_data_ts)).max(1),
                s.path_rtt().min,
                s.path_rtt().mean(),
                s.stream,
                flow_name.clone(),
            ));
        }
        if s.rtt_inflated() {
            t.bloat.push((
                s.path_rtt().min,
                s.rtt_mean_ns().unwrap_or(0),
                s.stream,
                u64::from(s.path_rtt().n),
                flow_name.clone(),
            ));
        }
        let limit = s.limit();
        let window_scale = s.window_scale(c, sv);
        if window_scale == "unknown" {
            t.unknown_scale += 1;
        }
        if let Some(l) = limit {
            *t.limits.entry(l.to_string()).or_insert(0) += 1;
        }
        let ms = |ns: i64| round3(ns as f64 / 1e6);
        t.flows.push(TransferFlow {
            stream: s.stream,
            client,
            server,
            bytes_to_server: s.sides[c].bytes,
            bytes_to_client: s.sides[sv].bytes,
            duration_seconds: round3((s.last_ts - s.first_ts).max(0) as f64 / 1e9),
            handshake_rtt_ms: s.handshake_ns.get().map(ms),
            lost_segments: u64::from(lost),
            reordered_segments: u64::from(reordered),
            duplicate_frames: u64::from(s.sides[0].dups + s.sides[1].dups),
            window_full: u64::from(s.sides[0].window_full + s.sides[1].window_full),
            zero_window_seconds: round3((s.sides[0].zero_ns + s.sides[1].zero_ns) as f64 / 1e9),
            window_scale,
            ack_rtt_min_ms: (s.path_rtt().n > 0).then(|| ms(s.path_rtt().min)),
            ack_rtt_mean_ms: s.rtt_mean_ns().map(ms),
            server_think_ms: (s.responses > 0).then(|| ms(s.think_max_ns)),
            client_wait_ms: s.client_wait_ns.get().map(ms),
            http_responses: u64::from(s.http_responses),
            http_errors: u64::from(s.http_errors),
            limit: limit.map(str::to_string),
            display_filter: format!("tcp.stream == {}", s.stream),
        });
    }

    fn findings(&mut self) -> Vec<Finding> {
        let t = &mut self.t;
        let mut out = Vec::new();
        // Loss.
        if t.lost > 0 {
            let rate = t.lost as f64 * 100.0 / t.data_segs.max(1) as f64;
            let mut sev =
                Severity::by_thresholds(rate, [Some(0.5), Some(2.0), Some(5.0), Some(15.0)]);
            if t.lost == 1 {
                sev = sev.min(Severity::Low);
            }
            let silent = std::mem::take(&mut t.silent);
            if !silent.is_empty() {
                sev = sev.max(Severity::High);
            }
            let worst = t.lost_streams.take_sorted();
            let streams: Vec<u64> = worst.iter().map(|w| w.1).collect();
            let mut summary = format!(
                "{:.1} % of data segments were lost and sent again ({} of {}) on {} stream{}, worst {}",
                rate,
                t.lost,
                t.data_segs,
                worst.len(),
                plural(worst.len()),
                worst.first().map(|w| w.2.as_str()).unwrap_or("")
            );
            if let Some((n, _, frame, flow)) = silent.first() {
                summary.push_str(&format!(
                    "; on {flow} the peer never answered {n} retransmissions (from frame {frame})"
                ));
            }
            out.push(
                Finding::new(KEY, sev, summary)
                    .cause(Cause::PacketLoss)
                    .evidence(
                        Evidence::new()
                            .with("lost_segments", t.lost as f64)
                            .with("data_segments", t.data_segs as f64)
                            .with("loss_rate_pct", round3(rate))
                            .with("unanswered_retransmission_streams", silent.len() as f64),
                    )
                    .streams(streams.clone())
                    .hosts(t.loss_hosts.clone())
                    .frames(t.lost_frames.clone())
                    .filter(format!(
                        "({}) && tcp.analysis.retransmission && !tcp.analysis.spurious_retransmission",
                        stream_filter(&streams)
                    )),
            );
        }
        // Reordering.
        if t.reordered > 0 {
            let rate = t.reordered as f64 * 100.0 / t.data_segs.max(1) as f64;
            let mut sev = Severity::by_thresholds(rate, [Some(0.5), Some(3.0), Some(10.0), None]);
            if t.reordered < 2 {
                sev = Severity::Info;
            }
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "{} segments ({:.1} % of data) arrived after segments sent later: reordered on the path, not lost",
                        t.reordered, rate
                    ),
                )
                .cause(Cause::Reordering)
                .evidence(
                    Evidence::new()
                        .with("reordered_segments", t.reordered as f64)
                        .with("data_segments", t.data_segs as f64)
                        .with("reordering_rate_pct", round3(rate)),
                )
                .streams(t.reorder_streams.clone())
                .frames(t.reorder_frames.clone())
                .filter("tcp.analysis.out_of_order"),
            );
        }
        // Latency: the median handshake RTT over the streams.
        if !t.handshake_rtts.is_empty() {
            t.handshake_rtts.sort_by_key(|r| std::cmp::Reverse(r.0));
            let median = t.handshake_rtts[t.handshake_rtts.len() / 2].0;
            let ms = median as f64 / 1e6;
            let sev = Severity::by_thresholds(ms, [Some(200.0), Some(300.0), Some(600.0), None]);
            let worst = &t.handshake_rtts[..t.handshake_rtts.len().min(MAX_FINDING_FRAMES)];
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "Round-trip time {:.0} ms (median of {} handshakes, worst {:.0} ms on {})",
                        ms,
                        t.handshake_rtts.len(),
                        worst[0].0 as f64 / 1e6,
                        worst[0].3
                    ),
                )
                .cause(Cause::HighLatency)
                .evidence(
                    Evidence::new()
                        .with("median_handshake_rtt_ms", round3(ms))
                        .with("max_handshake_rtt_ms", round3(worst[0].0 as f64 / 1e6))
                        .with("handshakes", t.handshake_rtts.len() as f64),
                )
                .streams(worst.iter().map(|w| w.1))
                .frames(worst.iter().map(|w| w.2))
                .filter("tcp.analysis.initial_rtt"),
            );
        }
        // Refused and unanswered connections, by server port.
        for (cause, groups, what) in [
            (
                Cause::ConnectionRefused,
                std::mem::take(&mut t.refused),
                "refused (RST to the SYN)",
            ),
            (
                Cause::ServerUnreachable,
                std::mem::take(&mut t.unanswered),
                "never answered",
            ),
        ] {
            let mut groups: Vec<(String, Group)> = groups.into_iter().collect();
            groups.sort_by_key(|(_, g)| std::cmp::Reverse(g.attempts));
            let probes: u64 = groups
                .iter()
                .filter(|(_, g)| g.is_probing())
                .map(|(_, g)| g.attempts)
                .sum();
            let real: Vec<&(String, Group)> =
                groups.iter().filter(|(_, g)| !g.is_probing()).collect();
            if let Some((server, g)) = real.first() {
                let attempts: u64 = real.iter().map(|(_, g)| g.attempts).sum();
                let retried = g.syns > g.attempts;
                let sev = match cause {
                    Cause::ServerUnreachable if g.attempts >= 3 && retried => Severity::High,
                    Cause::ServerUnreachable if retried => Severity::Medium,
                    Cause::ServerUnreachable => Severity::Low,
                    _ if attempts >= 10 => Severity::High,
                    _ => Severity::Medium,
                };
                out.push(
                    Finding::new(
                        KEY,
                        sev,
                        format!(
                            "{attempts} connection{} {what}, {} of them to {server} port{} {} ({} SYNs from {})",
                            plural(attempts as usize),
                            g.attempts,
                            plural(g.ports.len()),
                            g.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
                            g.syns,
                            g.clients.join(", ")
                        ),
                    )
                    .cause(cause)
                    .evidence(
                        Evidence::new()
                            .with("connections", attempts as f64)
                            .with("syns", g.syns as f64)
                            .with("servers", real.len() as f64),
                    )
                    .streams(g.streams.clone())
                    .hosts([server.clone()])
                    .frames(g.frames.clone())
                    .filter(stream_filter(&g.streams)),
                );
            }
            if probes > 0 {
                let (_, g) = groups
                    .iter()
                    .find(|(_, g)| g.is_probing())
                    .expect("a probe");
                out.push(
                    Finding::new(
                        KEY,
                        Severity::Info,
                        format!(
                            "{probes} unsolicited connection attempts from {} hosts {what}: probes of closed or filtered ports",
                            g.clients.len()
                        ),
                    )
                    .evidence(Evidence::new().with("connections", probes as f64))
                    .streams(g.streams.clone())
                    .frames(g.frames.clone())
                    .filter(stream_filter(&g.streams)),
                );
            }
        }
        // Resets in the middle of a transfer.
        if !t.aborted.is_empty() {
            t.aborted.sort_by_key(|a| std::cmp::Reverse(a.0));
            let top = &t.aborted[..t.aborted.len().min(MAX_FINDING_FRAMES)];
            let sev = if top[0].0 >= 10_000 {
                Severity::High
            } else {
                Severity::Medium
            };
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "{} connection{} reset with data in flight, worst {} after {} bytes (RST frame {})",
                        t.aborted.len(),
                        plural(t.aborted.len()),
                        top[0].3,
                        top[0].0,
                        top[0].2
                    ),
                )
                .cause(Cause::ConnectionAborted)
                .evidence(
                    Evidence::new()
                        .with("aborted_connections", t.aborted.len() as f64)
                        .with("bytes_before_reset", top[0].0 as f64),
                )
                .streams(top.iter().map(|a| a.1))
                .frames(top.iter().map(|a| a.2))
                .filter(format!(
                    "({}) && tcp.flags.reset == 1",
                    stream_filter(&top.iter().map(|a| a.1).collect::<Vec<_>>())
                )),
            );
        }
        // Server think time.
        if !t.think.is_empty() {
            t.think.sort_by_key(|a| std::cmp::Reverse(a.0));
            let top = &t.think[..t.think.len().min(MAX_FINDING_FRAMES)];
            let worst_s = top[0].0 as f64 / 1e9;
            let mut sev = Severity::by_thresholds(worst_s, [Some(0.5), Some(1.0), Some(3.0), None]);
            if t.responses >= 10 && t.slow_responses * 10 <= t.responses {
                sev = sev.min(Severity::Low);
            }
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "The server took up to {:.2} s to answer a request ({} of {} answers slower than {:.1} s), worst on {}",
                        worst_s,
                        t.slow_responses,
                        t.responses,
                        SLOW_THINK_NS as f64 / 1e9,
                        top[0].3
                    ),
                )
                .cause(Cause::SlowServer)
                .evidence(
                    Evidence::new()
                        .with("max_think_time_s", round3(worst_s))
                        .with("slow_answers", t.slow_responses as f64)
                        .with("answers", t.responses as f64),
                )
                .streams(top.iter().map(|a| a.1))
                .frames(top.iter().map(|a| a.2))
                .filter(stream_filter(&top.iter().map(|a| a.1).collect::<Vec<_>>())),
            );
        }
        // Client wait.
        for (host, w) in std::mem::take(&mut t.client_waits) {
            if w.waited == 0 {
                continue;
            }
            let (wait, stream, frame) = w.worst;
            let worst_s = wait as f64 / 1e9;
            let most = w.waited * 2 >= w.connections;
            let sev = if most {
                Severity::by_thresholds(worst_s, [Some(0.5), Some(1.0), Some(5.0), None])
            } else {
                Severity::Info
            };
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "Client {host} waited up to {worst_s:.2} s after the handshake before its request ({} of {} connections)",
                        w.waited, w.connections
                    ),
                )
                .cause(Cause::SlowClient)
                .evidence(
                    Evidence::new()
                        .with("max_wait_s", round3(worst_s))
                        .with("connections_waiting", w.waited as f64)
                        .with("connections", w.connections as f64),
                )
                .streams([stream])
                .hosts([host])
                .frames([frame])
                .filter(format!("tcp.stream == {stream}")),
            );
        }
        // HTTP errors.
        if t.http_errors > 0 {
            let rate = t.http_errors as f64 / t.http_responses.max(1) as f64;
            let sev = if rate >= 0.5 {
                Severity::Medium
            } else if rate >= 0.2 && t.http_errors >= 3 {
                Severity::Low
            } else {
                Severity::Info
            };
            let codes: Vec<String> = t
                .http_codes
                .iter()
                .map(|(c, n)| format!("{n}×{c}"))
                .collect();
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "{} of {} HTTP answers failed the request ({})",
                        t.http_errors,
                        t.http_responses,
                        codes.join(", ")
                    ),
                )
                .cause(Cause::HttpErrors)
                .evidence(
                    Evidence::new()
                        .with("http_errors", t.http_errors as f64)
                        .with("http_responses", t.http_responses as f64),
                )
                .streams(t.http_streams.clone())
                .frames(t.http_frames.clone())
                .filter("http.response.code >= 400"),
            );
        }
        // Zero windows that never reopened.
        t.stalls.sort_by_key(|s| std::cmp::Reverse(s.0));
        if let Some((stalled, stream, frame, host, flow)) = t.stalls.first() {
            let secs = *stalled as f64 / 1e9;
            let sev = Severity::by_thresholds(secs, [Some(0.2), Some(0.5), Some(1.0), Some(10.0)]);
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "{host} closed its receive window (frame {frame}) and never reopened it: {flow} stalled {secs:.1} s until the capture ends"
                    ),
                )
                .cause(Cause::ZeroWindowStall)
                .evidence(
                    Evidence::new()
                        .with("stall_seconds", round3(secs))
                        .with("stalled_streams", t.stalls.len() as f64),
                )
                .streams(t.stalls.iter().take(MAX_FINDING_FRAMES).map(|s| s.1))
                .hosts([host.clone()])
                .frames(t.stalls.iter().take(MAX_FINDING_FRAMES).map(|s| s.2))
                .filter(format!("tcp.stream == {stream} && tcp.analysis.zero_window")),
            );
        }
        // The receive window limiting the sender.
        let wf_share = t.window_full as f64 / t.window_full_segs.max(1) as f64;
        if t.zero_recovered > 0 || t.window_full > 0 {
            let mut sev = Severity::Info;
            if t.zero_recovered > 0 {
                sev = Severity::Low;
            }
            if t.window_full >= 10 {
                sev = sev.max(Severity::by_thresholds(
                    wf_share,
                    [Some(0.05), Some(0.2), None, None],
                ));
            }
            if t.zero_recovered_ns >= 1_000_000_000 {
                sev = sev.max(Severity::Medium);
            }
            let mut streams = t.zero_streams.clone();
            for s in &t.window_full_streams {
                if !streams.contains(s) {
                    streams.push(*s);
                }
            }
            streams.truncate(MAX_FINDING_FRAMES);
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "The receiver's window held the sender back: {} window-full segments ({:.0} % of those streams' data), {} zero window{} that reopened after {:.3} s in all",
                        t.window_full,
                        wf_share * 100.0,
                        t.zero_recovered,
                        plural(t.zero_recovered as usize),
                        t.zero_recovered_ns as f64 / 1e9
                    ),
                )
                .cause(Cause::ReceiveWindowLimited)
                .evidence(
                    Evidence::new()
                        .with("window_full", t.window_full as f64)
                        .with("window_full_share_pct", round3(wf_share * 100.0))
                        .with("zero_windows_recovered", t.zero_recovered as f64)
                        .with("zero_window_seconds", round3(t.zero_recovered_ns as f64 / 1e9)),
                )
                .streams(streams)
                .frames(t.zero_frames.clone())
                .filter("tcp.analysis.window_full || tcp.analysis.zero_window"),
            );
        }
        // Uploads to many peers at once: they share, and fill, the host's link.
        let uploader = t
            .peers
            .iter()
            .filter(|(_, p)| {
                p.peers.len() >= MIN_UPLOAD_PEERS && p.sent >= 32_768 && p.sent >= 3 * p.received
            })
            .max_by_key(|(_, p)| p.sent);
        if let Some((host, p)) = uploader {
            let secs = ((p.last_ts - p.first_ts) as f64 / 1e9).max(0.001);
            let kbps = p.sent as f64 * 8.0 / secs / 1000.0;
            out.push(
                Finding::new(
                    KEY,
                    Severity::Low,
                    format!(
                        "{host} uploads to {} peers at once (peer-to-peer, both ends on unregistered ports): {} bytes up against {} down, about {kbps:.0} kbit/s, which takes the link's capacity from everything else",
                        p.peers.len(),
                        p.sent,
                        p.received
                    ),
                )
                .cause(Cause::BandwidthLimited)
                .evidence(
                    Evidence::new()
                        .with("peers", p.peers.len() as f64)
                        .with("bytes_up", p.sent as f64)
                        .with("bytes_down", p.received as f64)
                        .with("upload_kbps", round3(kbps)),
                )
                .streams(p.streams.clone())
                .hosts([host.to_string()])
                .filter(format!(
                    "{}.src == {host} && tcp.len > 0 && tcp.srcport >= 1024 && tcp.dstport >= 1024",
                    if host.is_ipv6() { "ipv6" } else { "ip" }
                )),
            );
        }
        // Path MTU black holes.
        if let Some((size, step, n, stream, frame, host, flow)) = t.blackholes.first() {
            out.push(
                Finding::new(
                    KEY,
                    Severity::High,
                    format!(
                        "Segments of {size} bytes and more from {host} never get through on {flow} ({n} retransmissions from frame {frame}) while smaller ones are acknowledged (at most {step} bytes at once): a hop drops big packets without ICMP"
                    ),
                )
                .cause(Cause::PmtuBlackhole)
                .evidence(
                    Evidence::new()
                        .with("smallest_lost_segment", f64::from(*size))
                        .with("largest_ack_step", f64::from(*step))
                        .with("retransmissions", *n as f64)
                        .with("streams", t.blackholes.len() as f64),
                )
                .streams(t.blackholes.iter().take(MAX_FINDING_FRAMES).map(|b| b.3))
                .hosts([host.clone()])
                .frames(t.blackholes.iter().take(MAX_FINDING_FRAMES).map(|b| b.4))
                .filter(format!(
                    "tcp.stream == {stream} && tcp.analysis.retransmission && tcp.len >= {size}"
                )),
            );
        }
        // Long transfers held at a bottleneck's rate.
        if !t.queued.is_empty() {
            t.queued.sort_by_key(|q| std::cmp::Reverse(q.0));
            let (bytes, ns, min, mean, stream, flow) = &t.queued[0];
            let rate = *bytes as f64 / (*ns as f64 / 1e9) / 1000.0;
            out.push(
                Finding::new(
                    KEY,
                    Severity::Low,
                    format!(
                        "{flow} ran at {rate:.0} kB/s with a standing queue: RTT {:.0} ms on average against {:.0} ms at best, the sender held at a bottleneck's rate",
                        *mean as f64 / 1e6,
                        *min as f64 / 1e6
                    ),
                )
                .cause(Cause::BandwidthLimited)
                .evidence(
                    Evidence::new()
                        .with("rate_kB_per_s", round3(rate))
                        .with("min_rtt_ms", round3(*min as f64 / 1e6))
                        .with("mean_rtt_ms", round3(*mean as f64 / 1e6))
                        .with("queued_transfers", t.queued.len() as f64),
                )
                .streams(t.queued.iter().take(MAX_FINDING_FRAMES).map(|q| q.4))
                .filter(format!("tcp.stream == {stream}")),
            );
        }
        // RTT growing under load.
        if !t.bloat.is_empty() {
            t.bloat.sort_by_key(|b| std::cmp::Reverse(b.1 - b.0));
            let (min, mean, stream, samples, flow) = &t.bloat[0];
            let sev = Severity::by_thresholds(
                (*mean - *min) as f64 / 1e6,
                [Some(100.0), Some(250.0), Some(1000.0), None],
            );
            out.push(
                Finding::new(
                    KEY,
                    sev,
                    format!(
                        "RTT rose from {:.0} ms to {:.0} ms on average while {flow} was sending: a queue filling at a bottleneck",
                        *min as f64 / 1e6,
                        *mean as f64 / 1e6
                    ),
                )
                .cause(Cause::Bufferbloat)
                .evidence(
                    Evidence::new()
                        .with("min_rtt_ms", round3(*min as f64 / 1e6))
                        .with("mean_rtt_ms", round3(*mean as f64 / 1e6))
                        .with("rtt_samples", *samples as f64),
                )
                .streams(t.bloat.iter().take(MAX_FINDING_FRAMES).map(|b| b.2))
                .filter(format!("tcp.stream == {stream} && tcp.analysis.ack_rtt")),
            );
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl Analyzer for Transfers {
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
        let new = || Stream {
            stream,
            key: Some(key),
            first_ts: pkt.ts_ns,
            last_ts: pkt.ts_ns,
            ..Stream::default()
        };
        let Some(s) = self.streams.get_or_insert_with(meta, new) else {
            return;
        };
        if s.stream != stream {
            let ended = std::mem::replace(s, new());
            self.close(ended);
        }
        let Some(s) = self.streams.get_or_insert_with(meta, new) else {
            return;
        };
        if meta.duplicate_of != 0 {
            s.sides[side(dir)].dups += 1;
            return;
        }
        Self::packet(s, pkt, tcp, meta, side(dir));
    }

    fn prefetch(&self, ahead: &PacketMeta) {
        self.streams.prefetch(ahead);
    }

    fn prefetch_end(&self, ending: &FlowRecord) {
        self.streams.prefetch_slot(ending.slot);
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        if let Some(s) = self.streams.take(flow.slot) {
            self.close(s);
        }
    }

    fn finish(mut self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut left: Vec<Stream> = self.streams.drain().map(|(_, s)| s).collect();
        left.sort_by_key(|s| s.stream);
        for s in left {
            self.close(s);
        }
        let findings = self.findings();
        report.findings.extend(findings);
        let t = &mut self.t;
        report.transfers = Some(TransfersReport {
            total_streams: t.streams,
            streams_with_data: t.streams_with_data,
            limits: std::mem::take(&mut t.limits),
            streams_with_unknown_window_scale: t.unknown_scale,
            lost_segments: t.lost,
            reordered_segments: t.reordered,
            duplicate_frames: t.dups,
            data_segments: t.data_segs,
            http_responses: t.http_responses,
            http_status_codes: std::mem::take(&mut t.http_codes),
            flows: t.flows.take_sorted(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_lines_are_read_and_other_payloads_are_not() {
        assert_eq!(http_status(b"HTTP/1.1 403 Forbidden\r\n"), Some(403));
        assert_eq!(http_status(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(http_status(b"HTTP/1.1 2x0 OK"), None);
        assert_eq!(http_status(b"GET / HTTP/1.1"), None);
        assert!(is_http_request(b"POST /flashmail.asp HTTP/1.1"));
        assert!(!is_http_request(b"USER admin\r\n"));
    }

    #[test]
    fn identifications_and_sequences_compare_across_the_wrap() {
        assert!(ident_after(2, 0xfffe));
        assert!(!ident_after(0xfffe, 2));
        assert!(seq_after(5, u32::MAX - 5));
        assert!(!seq_after(u32::MAX - 5, 5));
    }

    #[test]
    fn many_hosts_trying_a_closed_port_once_each_are_probes_not_a_failing_service() {
        let mut g = Group::default();
        for i in 0..6 {
            g.add(format!("10.0.0.{i}"), 1000 + i as u16, i, i + 1, 1);
        }
        assert!(g.is_probing());
        let mut one = Group::default();
        for i in 0..9 {
            one.add("10.0.0.1".into(), 80, i, i + 1, 10);
        }
        assert!(!one.is_probing());
    }
}
