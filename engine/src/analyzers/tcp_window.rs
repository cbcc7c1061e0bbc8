//! `tcp_window`: zero-window and low-window conditions per TCP stream, in real bytes: the window
//! field scaled by the shift each side announced in its SYN (RFC 7323 section 2.3), as computed by
//! [`crate::tcp`]. v5 compared the raw 16-bit field, so a 2 MB window advertised as 16 with scale
//! 17 looked "low"; that is fixed here.
//!
//! A zero-window period starts with the first zero window a side advertises (Wireshark's
//! `tcp.analysis.zero_window`) and ends with its next non-zero window ("recovered"); a period
//! still open at the end of the capture, or ended by a reset, never recovered. Zero window probes
//! (`tcp.analysis.zero_window_probe`, RFC 9293 section 3.8.6.1, and keep-alive-shaped probes
//! sent towards the closed window, as Linux does) are counted per period.
//!
//! Low windows are only judged on streams whose handshake was captured: without the SYNs the
//! window scale is unknown and the raw field would understate the window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_RST, TCP_SYN};
use crate::flow::{Direction, FlowKey, FlowRecord, PerSlot};
use crate::report::{top_n, Report, MAX_FINDINGS, MAX_RANKED};
use crate::stats::round6;
use crate::tcp::flags;
use crate::Options;

/// v5: the bottleneck is only judged on streams with at least this many packets...
const BOTTLENECK_MIN_PACKETS: u32 = 30;
/// ...and the low-window share is taken after the first packets (slow start, RFC 5681).
const BOTTLENECK_SKIP_PACKETS: u32 = 20;
/// v5: more zero-window packets than this, or more zero-window time than this, points at the
/// receiving application not reading its socket.
const APP_ZERO_PACKETS: u32 = 5;
const APP_ZERO_NS: i64 = 1_000_000_000;
/// v5: a low window on more than this share of packets (with some zero window) points at the
/// receiver's buffer.
const RECEIVER_LOW_PCT: f64 = 30.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowThresholds {
    pub low_window_threshold: u64,
    pub zero_window_duration: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZeroWindowPeriod {
    pub stream: u64,
    /// The side that advertised the zero window (its receive buffer was full).
    pub advertiser: String,
    pub peer: String,
    pub start_packet_num: u64,
    pub start_timestamp: String,
    /// Frame of the first non-zero window from the advertiser, when it came.
    pub end_packet_num: Option<u64>,
    /// Until the window reopened, or (never recovered) until the reset or the capture end.
    pub duration_seconds: f64,
    pub recovered: bool,
    /// "window_reopened", "reset" or "capture_end".
    pub ended_by: String,
    pub zero_window_probes: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowEvent {
    pub packet_num: u64,
    pub timestamp: String,
    pub stream: u64,
    /// "zero_window", "window_reopened" or "low_window" (first of a run of low windows).
    pub event_type: String,
    pub src: String,
    pub dst: String,
    /// Window in bytes, scaling applied.
    pub window_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowFlowStats {
    pub stream: u64,
    pub flow: String,
    pub packets: u64,
    pub zero_window_packets: u64,
    pub zero_window_periods: u64,
    pub zero_window_duration_seconds: f64,
    pub zero_window_probes: u64,
    pub low_window_packets: u64,
    /// Share of the packets after the first 20 with a low window.
    pub low_window_pct: f64,
    pub min_window_bytes: u64,
    /// "application", "receiver" or "none" (v5's rules, in real bytes).
    pub bottleneck: String,
    /// The side whose small windows limit the flow.
    pub bottleneck_side: Option<String>,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TcpWindowReport {
    pub total_flows: u64,
    /// Streams with at least one zero window.
    pub flows_with_issues: u64,
    pub flows_with_low_window: u64,
    /// Streams whose handshake was not captured: window scale unknown, low windows not judged.
    pub flows_with_unknown_scale: u64,
    pub zero_window_packets: u64,
    pub zero_window_probes: u64,
    pub low_window_packets: u64,
    pub total_window_events: u64,
    pub total_zero_window_periods: u64,
    /// Periods lasting at least `zero_window_duration`, or never recovered.
    pub significant_zero_windows: u64,
    pub never_recovered_zero_windows: u64,
    pub thresholds: WindowThresholds,
    pub bottleneck_distribution: BTreeMap<String, u64>,
    /// The first window events in file order.
    pub window_events: Vec<WindowEvent>,
    /// The first zero-window periods to end (sorted by start frame).
    pub zero_window_periods: Vec<ZeroWindowPeriod>,
    /// Streams with zero or low windows, worst first.
    pub flow_statistics: Vec<WindowFlowStats>,
    /// The longest significant zero-window periods.
    pub critical_zero_windows: Vec<ZeroWindowPeriod>,
}

#[derive(Clone, Copy, Default)]
struct DirIssues {
    zero_start: Option<(i64, u64)>,
    zero_packets: u32,
    zero_periods: u32,
    zero_ns: i64,
    period_probes: u32,
    probes: u32,
    low_packets: u32,
    low_after_skip: u32,
    in_low: bool,
    min_window: Option<u64>,
}

/// Detail kept only for streams that showed a zero or low window.
struct Issues {
    key: FlowKey,
    dirs: [DirIssues; 2],
}

/// What every stream costs: a few bytes.
#[derive(Default)]
struct StreamState {
    stream: u64,
    packets: u32,
    /// Bit 0/1: SYN seen from A/B; bit 2: window scale known.
    syn_bits: u8,
    last_seen: i64,
    issues: Option<Box<Issues>>,
}

const SCALE_KNOWN: u8 = 4;

pub struct TcpWindow {
    low_threshold: u64,
    zero_duration_ns: i64,
    zero_duration_s: f64,
    /// Live streams, on their flow's slot; a stream is counted when its flow ends.
    streams: PerSlot<StreamState>,
    total_flows: u64,
    flows_with_zero: u64,
    flows_with_low: u64,
    unknown_scale: u64,
    zero_packets: u64,
    probes: u64,
    low_packets: u64,
    events_total: u64,
    events: Vec<WindowEvent>,
    periods_total: u64,
    significant: u64,
    never_recovered: u64,
    periods: Vec<ZeroWindowPeriod>,
    critical: Vec<ZeroWindowPeriod>,
    bottlenecks: BTreeMap<String, u64>,
    ranked: Vec<WindowFlowStats>,
}

fn dir_of(i: usize) -> Direction {
    if i == 0 {
        Direction::AtoB
    } else {
        Direction::BtoA
    }
}

impl TcpWindow {
    pub fn new(config: &Config, _options: &Options) -> Self {
        let t = &config.thresholds;
        TcpWindow {
            low_threshold: t.low_window_threshold,
            zero_duration_ns: (t.zero_window_duration * 1e9) as i64,
            zero_duration_s: t.zero_window_duration,
            streams: PerSlot::default(),
            total_flows: 0,
            flows_with_zero: 0,
            flows_with_low: 0,
            unknown_scale: 0,
            zero_packets: 0,
            probes: 0,
            low_packets: 0,
            events_total: 0,
            events: Vec::new(),
            periods_total: 0,
            significant: 0,
            never_recovered: 0,
            periods: Vec::new(),
            critical: Vec::new(),
            bottlenecks: BTreeMap::new(),
            ranked: Vec::new(),
        }
    }

    fn event(
        &mut self,
        pkt: &Packet<'_>,
        stream: u64,
        kind: &str,
        key: &FlowKey,
        dir: Direction,
        window: u64,
    ) {
        self.events_total += 1;
        if self.events.len() < MAX_FINDINGS {
            let (src, dst) = key.endpoints(dir);
            self.events.push(WindowEvent {
                packet_num: pkt.number,
                timestamp: crate::time::iso_utc(pkt.ts_ns),
                stream,
                event_type: kind.to_string(),
                src,
                dst,
                window_bytes: window,
            });
        }
    }

    /// Closes a zero-window period of the side `dir`.
    #[allow(clippy::too_many_arguments)]
    fn close_period(
        &mut self,
        stream: u64,
        key: &FlowKey,
        dir: Direction,
        d: &mut DirIssues,
        end_ts: i64,
        end_frame: Option<u64>,
        ended_by: &str,
    ) {
        let Some((start_ts, start_frame)) = d.zero_start.take() else {
            return;
        };
        let ns = end_ts.saturating_sub(start_ts).max(0);
        d.zero_ns = d.zero_ns.saturating_add(ns);
        let recovered = ended_by == "window_reopened";
        let significant = ns >= self.zero_duration_ns || !recovered;
        self.periods_total += 1;
        if !recovered {
            self.never_recovered += 1;
        }
        if significant {
            self.significant += 1;
        }
        let listed = self.periods.len() < MAX_FINDINGS;
        if !listed && !significant {
            d.period_probes = 0;
            return;
        }
        let (advertiser, peer) = key.endpoints(dir);
        let p = ZeroWindowPeriod {
            stream,
            advertiser,
            peer,
            start_packet_num: start_frame,
            start_timestamp: crate::time::iso_utc(start_ts),
            end_packet_num: end_frame,
            duration_seconds: round6(ns as f64 / 1e9),
            recovered,
            ended_by: ended_by.to_string(),
            zero_window_probes: u64::from(d.period_probes),
            display_filter: format!(
                "tcp.stream == {stream} && (tcp.analysis.zero_window || tcp.analysis.zero_window_probe)"
            ),
        };
        d.period_probes = 0;
        if significant {
            self.critical.push(p.clone());
            if self.critical.len() >= 4 * MAX_RANKED {
                let kept = top_n(std::mem::take(&mut self.critical), MAX_RANKED, |p| {
                    p.duration_seconds
                });
                self.critical = kept;
            }
        }
        if listed {
            self.periods.push(p);
        }
    }

    /// Counts a stream whose packets are over.
    fn finish_stream(&mut self, stream: u64, s: StreamState, end_ts: i64) {
        self.total_flows += 1;
        if s.syn_bits & SCALE_KNOWN == 0 {
            self.unknown_scale += 1;
        }
        let Some(mut issues) = s.issues else {
            crate::stats::count(&mut self.bottlenecks, "none");
            return;
        };
        let key = issues.key;
        for i in 0..2 {
            let mut d = issues.dirs[i];
            self.close_period(stream, &key, dir_of(i), &mut d, end_ts, None, "capture_end");
            issues.dirs[i] = d;
        }
        let [a, b] = issues.dirs;
        let zero_packets = a.zero_packets + b.zero_packets;
        let zero_ns = a.zero_ns.saturating_add(b.zero_ns);
        let low_packets = a.low_packets + b.low_packets;
        let low_after = a.low_after_skip + b.low_after_skip;
        if zero_packets > 0 {
            self.flows_with_zero += 1;
        }
        if low_packets > 0 {
            self.flows_with_low += 1;
        }
        let after = s.packets.saturating_sub(BOTTLENECK_SKIP_PACKETS);
        let low_pct = if after > 0 {
            f64::from(low_after) * 100.0 / f64::from(after)
        } else {
            0.0
        };
        let bottleneck = if s.packets < BOTTLENECK_MIN_PACKETS {
            "none"
        } else if zero_packets > APP_ZERO_PACKETS || zero_ns > APP_ZERO_NS {
            "application"
        } else if low_pct > RECEIVER_LOW_PCT && zero_packets > 0 {
            "receiver"
        } else {
            "none"
        };
        crate::stats::count(&mut self.bottlenecks, bottleneck);
        // The side advertising more zero (then low) windows is the one that limits the flow.
        let worst = if (b.zero_packets, b.low_packets) > (a.zero_packets, a.low_packets) {
            1
        } else {
            0
        };
        let bottleneck_side = (bottleneck != "none").then(|| key.endpoints(dir_of(worst)).0);
        let (x, y) = key.endpoints(Direction::AtoB);
        self.ranked.push(WindowFlowStats {
            stream,
            flow: format!("{x} <-> {y}"),
            packets: u64::from(s.packets),
            zero_window_packets: u64::from(zero_packets),
            zero_window_periods: u64::from(a.zero_periods + b.zero_periods),
            zero_window_duration_seconds: round6(zero_ns as f64 / 1e9),
            zero_window_probes: u64::from(a.probes + b.probes),
            low_window_packets: u64::from(low_packets),
            low_window_pct: crate::stats::round3(low_pct),
            min_window_bytes: a
                .min_window
                .into_iter()
                .chain(b.min_window)
                .min()
                .unwrap_or(0),
            bottleneck: bottleneck.to_string(),
            bottleneck_side,
            display_filter: format!("tcp.stream == {stream}"),
        });
        if self.ranked.len() >= 4 * MAX_RANKED {
            self.rank();
        }
    }

    fn rank(&mut self) {
        let mut r = std::mem::take(&mut self.ranked);
        r.sort_by(|p, q| {
            q.zero_window_duration_seconds
                .total_cmp(&p.zero_window_duration_seconds)
                .then(q.zero_window_packets.cmp(&p.zero_window_packets))
                .then(q.low_window_packets.cmp(&p.low_window_packets))
                .then(p.stream.cmp(&q.stream))
        });
        r.truncate(MAX_RANKED);
        self.ranked = r;
    }
}

impl Analyzer for TcpWindow {
    fn packets(&self) -> Kinds {
        Kinds::TCP
    }

    fn prefetches(&self) -> Prefetch {
        Prefetch::Near
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        if tcp.header_incomplete {
            return;
        }
        let (Some((key, dir)), Some(_)) = (meta.flow, meta.tcp.dir) else {
            return;
        };
        let stream = meta.tcp.stream;
        let ta = &meta.tcp;
        let new = || StreamState {
            stream,
            ..StreamState::default()
        };
        if let Some(s) = self.streams.get_mut(meta).filter(|s| s.stream != stream) {
            // The 5-tuple was reused for a new stream: the old one is over.
            let old = std::mem::replace(s, new());
            let last = old.last_seen;
            self.finish_stream(old.stream, old, last);
        }
        let i = dir.index();
        let window = ta.window_bytes;
        let zero = ta.has(flags::ZERO_WINDOW);
        let keep_alive = ta.has(flags::KEEP_ALIVE);
        let mut probe = ta.has(flags::ZERO_WINDOW_PROBE);
        let rst = tcp.flags & TCP_RST != 0;
        let syn = tcp.flags & TCP_SYN != 0;
        let Some(s) = self.streams.get_or_insert_with(meta, new) else {
            return;
        };
        s.packets = s.packets.saturating_add(1);
        s.last_seen = pkt.ts_ns;
        if syn {
            s.syn_bits |= 1 << i;
            if tcp.flags & TCP_ACK != 0 && s.syn_bits & (1 << (1 - i)) != 0 {
                s.syn_bits |= SCALE_KNOWN;
            }
        }
        let low = s.syn_bits & SCALE_KNOWN != 0
            && !rst
            && !syn
            && window > 0
            && window < self.low_threshold;
        if s.issues.is_none() && !(zero || low || probe) {
            return;
        }
        // Slow path: only streams that showed a window problem get here.
        let packets = s.packets;
        let mut issues = s.issues.take().unwrap_or_else(|| {
            Box::new(Issues {
                key,
                dirs: [DirIssues::default(); 2],
            })
        });
        let mut d = issues.dirs[i];
        // Linux probes a closed window with a keep-alive-shaped segment (sequence one below the
        // next, `tcp_xmit_probe_skb`); towards a zero window it is a window probe.
        if keep_alive && issues.dirs[1 - i].zero_start.is_some() {
            probe = true;
        }
        if probe {
            self.probes += 1;
            // The probe goes towards the side whose window is closed.
            let o = &mut issues.dirs[1 - i];
            o.probes += 1;
            o.period_probes += 1;
        }
        if rst {
            self.close_period(
                stream,
                &key,
                dir,
                &mut d,
                pkt.ts_ns,
                Some(pkt.number),
                "reset",
            );
        } else if zero {
            self.zero_packets += 1;
            d.zero_packets += 1;
            if d.zero_start.is_none() {
                d.zero_start = Some((pkt.ts_ns, pkt.number));
                d.zero_periods += 1;
                self.event(pkt, stream, "zero_window", &key, dir, 0);
            }
        } else if window > 0 && d.zero_start.is_some() {
            self.close_period(
                stream,
                &key,
                dir,
                &mut d,
                pkt.ts_ns,
                Some(pkt.number),
                "window_reopened",
            );
            self.event(pkt, stream, "window_reopened", &key, dir, window);
        }
        if !rst && !syn && (window > 0 || zero) {
            d.min_window = Some(d.min_window.map_or(window, |m| m.min(window)));
        }
        if low {
            self.low_packets += 1;
            d.low_packets += 1;
            if packets > BOTTLENECK_SKIP_PACKETS {
                d.low_after_skip += 1;
            }
            if !d.in_low {
                d.in_low = true;
                self.event(pkt, stream, "low_window", &key, dir, window);
            }
        } else if window >= self.low_threshold {
            d.in_low = false;
        }
        issues.dirs[i] = d;
        if let Some(s) = self.streams.get_mut(meta) {
            s.issues = Some(issues);
        }
    }

    fn prefetch(&self, ahead: &PacketMeta) {
        self.streams.prefetch(ahead);
    }

    fn prefetch_end(&self, ending: &FlowRecord) {
        self.streams.prefetch_slot(ending.slot);
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        if let Some(s) = self.streams.take(flow.slot) {
            let last = s.last_seen;
            self.finish_stream(s.stream, s, last);
        }
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let end_ts = end.last_ts_ns.unwrap_or(0);
        let mut left: Vec<StreamState> = self.streams.drain().map(|(_, s)| s).collect();
        left.sort_by_key(|s| s.stream);
        for s in left {
            self.finish_stream(s.stream, s, end_ts);
        }
        self.rank();
        let mut critical = std::mem::take(&mut self.critical);
        critical.sort_by(|a, b| {
            b.duration_seconds
                .total_cmp(&a.duration_seconds)
                .then(a.start_packet_num.cmp(&b.start_packet_num))
        });
        critical.truncate(MAX_RANKED);
        self.periods.sort_by_key(|p| p.start_packet_num);
        report.tcp_window = Some(TcpWindowReport {
            total_flows: self.total_flows,
            flows_with_issues: self.flows_with_zero,
            flows_with_low_window: self.flows_with_low,
            flows_with_unknown_scale: self.unknown_scale,
            zero_window_packets: self.zero_packets,
            zero_window_probes: self.probes,
            low_window_packets: self.low_packets,
            total_window_events: self.events_total,
            total_zero_window_periods: self.periods_total,
            significant_zero_windows: self.significant,
            never_recovered_zero_windows: self.never_recovered,
            thresholds: WindowThresholds {
                low_window_threshold: self.low_threshold,
                zero_window_duration: self.zero_duration_s,
            },
            bottleneck_distribution: self.bottlenecks,
            window_events: self.events,
            zero_window_periods: self.periods,
            flow_statistics: self.ranked,
            critical_zero_windows: critical,
        });
    }
}
