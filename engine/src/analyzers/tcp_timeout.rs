//! `tcp_timeout`: the state of every TCP stream at the end of the capture, two ways:
//!
//! * v5's categories: closed_fin, closed_rst, syn_timeout / syn_waiting (SYN unanswered, idle
//!   longer than `tcp_idle_threshold` or not), half_open (SYN/ACK but no final ACK),
//!   established_idle / established_no_data (handshake done, no payload), zombie / idle / active
//!   (payload seen, idle longer than `tcp_zombie_threshold`, `tcp_idle_threshold`, or neither).
//!   idle_time = capture end − the stream's last packet. v5 dropped syn_waiting and
//!   established_no_data into an uncounted "other" and merged reused 4-tuples; both fixed.
//! * Zeek's `conn_state` code (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH)
//!   from a per-endpoint state machine as in Zeek's TCP analyzer and
//!   `base/protocols/conn/main.zeek`, with a Zeek-style `history` (uppercase: originator).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::flow::{fast_map, Direction, FastMap, FlowKey};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round6;
use crate::tcp::flags;
use crate::Options;

/// Streams followed at once; past this, the idlest are classified early.
const MAX_STREAMS: usize = 50_000;
/// v5 lists ten connections per problem category.
const LISTED_PER_CATEGORY: usize = 10;
/// History letters kept: each of S H A D F R T W once per side, plus `^`.
const MAX_HISTORY: usize = 17;

/// Zeek's TCP endpoint states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Ep {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeoutThresholds {
    pub idle_threshold: f64,
    pub zombie_threshold: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectionState {
    pub stream: u64,
    /// "originator -> responder".
    pub flow: String,
    pub first_seen: String,
    pub last_seen: String,
    pub first_packet_num: u64,
    pub last_packet_num: u64,
    pub duration: f64,
    pub idle_time: f64,
    pub packet_count: u64,
    /// Payload bytes sent by the originator and by the responder.
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    /// v5 category.
    pub state: String,
    /// Zeek `conn_state`.
    pub conn_state: String,
    /// Zeek-style history: S syn, H syn/ack, A pure ack, D data, F fin, R rst, T retransmission,
    /// W zero window; uppercase from the originator, `^` when the originator was inferred from a
    /// SYN/ACK.
    pub history: String,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeoutCategories {
    pub syn_timeout: Vec<ConnectionState>,
    pub syn_timeout_count: u64,
    pub syn_waiting_count: u64,
    pub half_open: Vec<ConnectionState>,
    pub half_open_count: u64,
    pub zombie: Vec<ConnectionState>,
    pub zombie_count: u64,
    pub idle: Vec<ConnectionState>,
    pub idle_count: u64,
    pub established_idle: Vec<ConnectionState>,
    pub established_idle_count: u64,
    pub established_no_data_count: u64,
    pub closed_fin_count: u64,
    pub closed_rst_count: u64,
    pub total_rst_packets: u64,
    pub active_count: u64,
    /// Midstream streams with no handshake, payload or close seen.
    pub other_count: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TcpTimeoutReport {
    pub total_connections: u64,
    /// syn_timeout + half_open + zombie + idle + established_idle (v5's sum).
    pub problematic_count: u64,
    pub capture_duration: f64,
    pub thresholds: TimeoutThresholds,
    pub categories: TimeoutCategories,
    /// Zeek `conn_state` → streams.
    pub conn_state_distribution: BTreeMap<String, u64>,
    /// The first streams in order that did not end cleanly (anything but SF and S1).
    pub connections: Vec<ConnectionState>,
    pub connections_listed_total: u64,
}

const V5_SYN: u8 = 1;
const V5_SYNACK: u8 = 2;
const V5_ACK: u8 = 4;
const V5_DATA: u8 = 8;
const V5_FIN: u8 = 16;
const V5_RST: u8 = 32;

#[derive(Clone, Copy)]
struct Conn {
    key: FlowKey,
    orig: Direction,
    eps: [Ep; 2],
    v5: u8,
    history: [u8; MAX_HISTORY],
    history_len: u8,
    first_ts: i64,
    last_ts: i64,
    first_frame: u64,
    last_frame: u64,
    packets: u64,
    /// Payload bytes per direction index (A→B, B→A).
    bytes: [u64; 2],
}

impl Conn {
    fn note(&mut self, letter: u8, from_orig: bool) {
        let c = if from_orig {
            letter.to_ascii_uppercase()
        } else {
            letter.to_ascii_lowercase()
        };
        let n = usize::from(self.history_len);
        if self.history[..n].contains(&c) || n >= MAX_HISTORY {
            return;
        }
        self.history[n] = c;
        self.history_len += 1;
    }

    fn history(&self) -> &[u8] {
        &self.history[..usize::from(self.history_len)]
    }

    fn orig_idx(&self) -> usize {
        self.orig.index()
    }

    /// Zeek's `conn_state` (base/protocols/conn/main.zeek).
    fn zeek_state(&self) -> &'static str {
        let o = self.orig_idx();
        let (os, rs) = (self.eps[o], self.eps[1 - o]);
        let inactive = |e: Ep| matches!(e, Ep::Inactive | Ep::Partial);
        let (o_inactive, r_inactive) = (inactive(os), inactive(rs));
        let (osize, rsize) = (self.bytes[o], self.bytes[1 - o]);
        if rs == Ep::Reset {
            if matches!(os, Ep::SynSent | Ep::SynAckSent)
                || (os == Ep::Reset && osize == 0 && rsize == 0)
            {
                "REJ"
            } else if o_inactive {
                "RSTRH"
            } else {
                "RSTR"
            }
        } else if os == Ep::Reset {
            if r_inactive {
                if self.syn_then_reset() {
                    "RSTOS0"
                } else {
                    "OTH"
                }
            } else {
                "RSTO"
            }
        } else if rs == Ep::Closed && os == Ep::Closed {
            "SF"
        } else if os == Ep::Closed {
            if r_inactive {
                "SH"
            } else {
                "S2"
            }
        } else if rs == Ep::Closed {
            if o_inactive {
                "SHR"
            } else {
                "S3"
            }
        } else if os == Ep::SynSent && rs == Ep::Inactive {
            "S0"
        } else if os == Ep::Established && rs == Ep::Established {
            "S1"
        } else {
            "OTH"
        }
    }

    /// Zeek's `/\^?S[^HAFGIQ]*R.*/` on the history: an originator SYN, then its RST before any
    /// originator SYN/ACK, ACK or FIN.
    fn syn_then_reset(&self) -> bool {
        let h = self.history();
        let h = h.strip_prefix(b"^").unwrap_or(h);
        let Some(rest) = h.strip_prefix(b"S") else {
            return false;
        };
        for &c in rest {
            match c {
                b'R' => return true,
                b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
                _ => {}
            }
        }
        false
    }
}

pub struct TcpTimeout {
    idle_ns: i64,
    zombie_ns: i64,
    idle_s: f64,
    zombie_s: f64,
    conns: FastMap<u64, Conn>,
    rst_packets: u64,
    total: u64,
    counts: BTreeMap<&'static str, u64>,
    zeek: BTreeMap<String, u64>,
    lists: BTreeMap<&'static str, Vec<ConnectionState>>,
    listed: Vec<ConnectionState>,
    listed_total: u64,
}

impl TcpTimeout {
    pub fn new(config: &Config, _options: &Options) -> Self {
        let t = &config.thresholds;
        TcpTimeout {
            idle_ns: (t.tcp_idle_threshold * 1e9) as i64,
            zombie_ns: (t.tcp_zombie_threshold * 1e9) as i64,
            idle_s: t.tcp_idle_threshold,
            zombie_s: t.tcp_zombie_threshold,
            conns: fast_map(),
            rst_packets: 0,
            total: 0,
            counts: BTreeMap::new(),
            zeek: BTreeMap::new(),
            lists: BTreeMap::new(),
            listed: Vec::new(),
            listed_total: 0,
        }
    }

    /// v5's category (`tcp_timeout.py::_classify_connection`), plus syn_waiting and
    /// established_no_data counted instead of lost.
    fn category(&self, c: &Conn, idle_ns: i64) -> &'static str {
        let v = c.v5;
        let has = |b: u8| v & b != 0;
        if has(V5_FIN) {
            "closed_fin"
        } else if has(V5_RST) {
            "closed_rst"
        } else if has(V5_SYN) && !has(V5_SYNACK) {
            if idle_ns > self.idle_ns {
                "syn_timeout"
            } else {
                "syn_waiting"
            }
        } else if has(V5_SYN) && has(V5_SYNACK) && !has(V5_ACK) {
            "half_open"
        } else if has(V5_SYN) && has(V5_SYNACK) && !has(V5_DATA) {
            if idle_ns > self.idle_ns {
                "established_idle"
            } else {
                "established_no_data"
            }
        } else if has(V5_DATA) {
            if idle_ns > self.zombie_ns {
                "zombie"
            } else if idle_ns > self.idle_ns {
                "idle"
            } else {
                "active"
            }
        } else {
            "other"
        }
    }

    fn finish_conn(&mut self, stream: u64, c: Conn, end_ts: i64) {
        self.total += 1;
        let idle_ns = end_ts.saturating_sub(c.last_ts).max(0);
        let category = self.category(&c, idle_ns);
        let zeek = c.zeek_state();
        *self.counts.entry(category).or_insert(0) += 1;
        crate::stats::count(&mut self.zeek, zeek);
        let listed_by_category = matches!(
            category,
            "syn_timeout" | "half_open" | "zombie" | "idle" | "established_idle"
        );
        let unclean = !matches!(zeek, "SF" | "S1");
        if unclean {
            self.listed_total += 1;
        }
        let want_category = listed_by_category
            && self.lists.get(category).is_none_or(|l| {
                l.len() < LISTED_PER_CATEGORY * 4
                    || l.iter().any(|x| x.idle_time < idle_ns as f64 / 1e9)
            });
        // Streams end in eviction order; the list keeps the lowest stream numbers.
        let want_listed = unclean
            && (self.listed.len() < MAX_FINDINGS || self.listed.iter().any(|x| x.stream > stream));
        if !want_category && !want_listed {
            return;
        }
        let o = c.orig_idx();
        let (src, dst) = c.key.endpoints(c.orig);
        let row = ConnectionState {
            stream,
            flow: format!("{src} -> {dst}"),
            first_seen: crate::time::iso_utc(c.first_ts),
            last_seen: crate::time::iso_utc(c.last_ts),
            first_packet_num: c.first_frame,
            last_packet_num: c.last_frame,
            duration: round6((c.last_ts - c.first_ts).max(0) as f64 / 1e9),
            idle_time: round6(idle_ns as f64 / 1e9),
            packet_count: c.packets,
            orig_bytes: c.bytes[o],
            resp_bytes: c.bytes[1 - o],
            state: category.to_string(),
            conn_state: zeek.to_string(),
            history: String::from_utf8_lossy(c.history()).into_owned(),
            display_filter: format!("tcp.stream == {stream}"),
        };
        if want_category {
            let l = self.lists.entry(category).or_default();
            l.push(row.clone());
            if l.len() >= LISTED_PER_CATEGORY * 4 {
                l.sort_by(|a, b| {
                    b.idle_time
                        .total_cmp(&a.idle_time)
                        .then(a.stream.cmp(&b.stream))
                });
                l.truncate(LISTED_PER_CATEGORY);
            }
        }
        if want_listed {
            self.listed.push(row);
            if self.listed.len() >= MAX_FINDINGS * 4 {
                self.trim_listed();
            }
        }
    }

    fn trim_listed(&mut self) {
        self.listed.sort_by_key(|c| c.stream);
        self.listed.truncate(MAX_FINDINGS);
    }

    fn evict(&mut self, now: i64) {
        let gone: Vec<(u64, Conn)> = super::evict::drain_idle(
            &mut self.conns,
            now,
            MAX_STREAMS,
            crate::flow::IDLE_EVICTION_NS,
            |c| c.last_ts,
        );
        for (s, c) in gone {
            self.finish_conn(s, c, now);
        }
    }
}

/// Zeek's endpoint transitions for one segment from `x` (peer `y`).
fn transition(eps: &mut [Ep; 2], x: usize, fl: u8) {
    let y = 1 - x;
    if fl & TCP_RST != 0 {
        eps[x] = Ep::Reset;
        return;
    }
    let syn = fl & TCP_SYN != 0;
    let ack = fl & TCP_ACK != 0;
    if syn {
        if ack {
            if matches!(eps[x], Ep::Inactive | Ep::SynSent) {
                eps[x] = Ep::SynAckSent;
            }
        } else if eps[x] == Ep::Inactive {
            eps[x] = Ep::SynSent;
        }
    } else {
        match eps[x] {
            Ep::Inactive => eps[x] = Ep::Partial,
            Ep::SynSent | Ep::SynAckSent if ack => {
                eps[x] = Ep::Established;
                if eps[y] == Ep::SynAckSent {
                    eps[y] = Ep::Established;
                }
            }
            _ => {}
        }
    }
    if fl & TCP_FIN != 0 && eps[x] != Ep::Reset {
        eps[x] = Ep::Closed;
    }
}

impl Analyzer for TcpTimeout {
    fn packets(&self) -> Kinds {
        Kinds::TCP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        let Some((key, dir)) = meta.flow else { return };
        let stream = meta.tcp.stream;
        let fl = tcp.flags;
        if fl & TCP_RST != 0 {
            self.rst_packets += 1;
        }
        if self.conns.len() >= MAX_STREAMS && !self.conns.contains_key(&stream) {
            self.evict(pkt.ts_ns);
        }
        let c = self.conns.entry(stream).or_insert_with(|| {
            // The originator sent the first packet, unless that packet is a SYN/ACK.
            let flipped = fl & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK;
            let orig = match (flipped, dir) {
                (false, d) => d,
                (true, Direction::AtoB) => Direction::BtoA,
                (true, Direction::BtoA) => Direction::AtoB,
            };
            let mut c = Conn {
                key,
                orig,
                eps: [Ep::Inactive; 2],
                v5: 0,
                history: [0; MAX_HISTORY],
                history_len: 0,
                first_ts: pkt.ts_ns,
                last_ts: pkt.ts_ns,
                first_frame: pkt.number,
                last_frame: pkt.number,
                packets: 0,
                bytes: [0, 0],
            };
            if flipped {
                c.history[0] = b'^';
                c.history_len = 1;
            }
            c
        });
        let x = dir.index();
        let from_orig = dir == c.orig;
        c.packets += 1;
        c.last_ts = c.last_ts.max(pkt.ts_ns);
        c.last_frame = pkt.number;
        c.bytes[x] = c.bytes[x].saturating_add(u64::from(tcp.seg_len));
        transition(&mut c.eps, x, fl);
        let syn = fl & TCP_SYN != 0;
        let ack = fl & TCP_ACK != 0;
        // v5's progression flags.
        if syn && !ack {
            c.v5 |= V5_SYN;
            c.note(b's', from_orig);
        } else if syn {
            c.v5 |= V5_SYNACK;
            c.note(b'h', from_orig);
        } else if ack {
            if c.v5 & V5_SYNACK != 0 {
                c.v5 |= V5_ACK;
            }
            if tcp.seg_len > 0 {
                c.v5 |= V5_DATA;
            }
        }
        if tcp.seg_len > 0 {
            c.note(b'd', from_orig);
        } else if ack && fl & (TCP_SYN | TCP_FIN | TCP_RST) == 0 {
            c.note(b'a', from_orig);
        }
        if fl & TCP_FIN != 0 {
            c.v5 |= V5_FIN;
            c.note(b'f', from_orig);
        }
        if fl & TCP_RST != 0 {
            c.v5 |= V5_RST;
            c.note(b'r', from_orig);
        }
        if meta.tcp.is_retransmission() {
            c.note(b't', from_orig);
        }
        if meta.tcp.has(flags::ZERO_WINDOW) {
            c.note(b'w', from_orig);
        }
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let end_ts = end.last_ts_ns.unwrap_or(0);
        let mut left: Vec<(u64, Conn)> = self.conns.drain().collect();
        left.sort_by_key(|(s, _)| *s);
        for (s, c) in left {
            self.finish_conn(s, c, end_ts);
        }
        self.trim_listed();
        let count = |k: &str| self.counts.get(k).copied().unwrap_or(0);
        let mut list = |k: &str| {
            let mut l = self.lists.remove(k).unwrap_or_default();
            l.sort_by(|a, b| {
                b.idle_time
                    .total_cmp(&a.idle_time)
                    .then(a.stream.cmp(&b.stream))
            });
            l.truncate(LISTED_PER_CATEGORY);
            l
        };
        let categories = TimeoutCategories {
            syn_timeout: list("syn_timeout"),
            half_open: list("half_open"),
            zombie: list("zombie"),
            idle: list("idle"),
            established_idle: list("established_idle"),
            syn_timeout_count: count("syn_timeout"),
            syn_waiting_count: count("syn_waiting"),
            half_open_count: count("half_open"),
            zombie_count: count("zombie"),
            idle_count: count("idle"),
            established_idle_count: count("established_idle"),
            established_no_data_count: count("established_no_data"),
            closed_fin_count: count("closed_fin"),
            closed_rst_count: count("closed_rst"),
            total_rst_packets: self.rst_packets,
            active_count: count("active"),
            other_count: count("other"),
        };
        let problematic = categories.syn_timeout_count
            + categories.half_open_count
            + categories.zombie_count
            + categories.idle_count
            + categories.established_idle_count;
        report.tcp_timeout = Some(TcpTimeoutReport {
            total_connections: self.total,
            problematic_count: problematic,
            capture_duration: round6(end.duration_s()),
            thresholds: TimeoutThresholds {
                idle_threshold: self.idle_s,
                zombie_threshold: self.zombie_s,
            },
            categories,
            conn_state_distribution: self.zeek,
            connections: self.listed,
            connections_listed_total: self.listed_total,
        });
    }
}
