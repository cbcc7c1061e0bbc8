//! `jitter`: packet delay variation per unidirectional 5-tuple (TCP and UDP, IPv4 and IPv6).
//!
//! RFC 3393 defines IPDV as the difference between the one-way delays of consecutive packets.
//! One capture point does not see send times, so, as v5 (and RFC 3550's interarrival jitter),
//! the delay is replaced by the inter-arrival time: `d_i = t_i − t_{i−1}` and
//! `jitter_i = |d_i − d_{i−1}|`.
//!
//! v5's session rules: a gap over 60 s, a SYN after more than 1 s, or any packet more than
//! 0.1 s after a RST/FIN starts a new session, and differences never span two sessions (so a
//! session yields samples from its third packet on).
//!
//! Severity uses `jitter_warning` and `jitter_critical` from the configuration (v5 hard-coded
//! its values and never reached its "high" level): on the flow's P95, below half the warning
//! "excellent", below the warning "low", below the critical "medium", below twice the critical
//! "high", else "critical". TCP's inter-arrival times include ACK clocking and application
//! pauses, so, as v5 did (100/200 ms for TCP against 30/50 ms for UDP), TCP flows are held to
//! [`TCP_TOLERANCE`] times those thresholds.
//!
//! Memory: a flow keeps running moments and at most [`MAX_SAMPLES_PER_FLOW`] samples (exact
//! quantiles below that, an evenly thinned sample above); flows idle for more than a session gap
//! are closed and summarised when the table grows, so memory follows the live flows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::config::Config;
use crate::decode::{Packet, TCP_FIN, TCP_RST, TCP_SYN};
use crate::finding::{Cause, Evidence, Finding, Severity};
use crate::flow::{Direction, FlowKey, FlowRecord, PerFlow};
use crate::report::{Report, MAX_FINDINGS, MAX_RANKED};
use crate::stats::{round3, Distribution, Summary, Top};
use crate::time::iso_utc;
use crate::Options;

/// Packets a UDP flow needs before it counts as real-time media.
const MIN_MEDIA_PACKETS: u64 = 20;

/// RTP version 2 (RFC 3550 section 5.1) or RTCP (payload types 200-204 in the second byte):
/// version bits 10, a payload type that is assigned (0-34) or dynamic (96-127).
fn looks_like_rtp(payload: &[u8]) -> bool {
    if payload.len() < 12 || payload[0] >> 6 != 2 {
        return false;
    }
    let pt = payload[1] & 0x7f;
    matches!(payload[1], 200..=204) || pt <= 34 || (96..=127).contains(&pt)
}

/// v5's session rules.
const SESSION_GAP_NS: i64 = 60 * 1_000_000_000;
const SYN_GAP_NS: i64 = 1_000_000_000;
const AFTER_RST_FIN_GAP_NS: i64 = 100_000_000;
/// v5: TCP flows get lenient thresholds (its TCP levels, 100/200 ms, are 4× the 30/50 ms
/// defaults of `jitter_warning`/`jitter_critical`).
pub const TCP_TOLERANCE: f64 = 4.0;
/// Samples kept per flow for its quantiles.
pub const MAX_SAMPLES_PER_FLOW: usize = 32;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowJitter {
    pub flow: String,
    pub src: String,
    pub dst: String,
    pub protocol: String,
    pub packet_count: u64,
    pub jitter_samples: u64,
    pub sessions: u64,
    pub mean_ms: f64,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub stdev_ms: f64,
    pub first_packet_time: String,
    pub severity: String,
    /// RTP/RTCP: the only flows whose jitter the diagnosis judges (TCP and other UDP pace
    /// themselves by ACKs and application pauses).
    #[serde(default)]
    pub real_time_media: bool,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JitterThresholds {
    pub jitter_warning_ms: f64,
    pub jitter_critical_ms: f64,
    pub tcp_jitter_warning_ms: f64,
    pub tcp_jitter_critical_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JitterReport {
    /// Unidirectional TCP/UDP flows seen.
    pub total_flows: u64,
    /// Flows with at least one jitter sample (a session of 3 packets or more).
    pub flows_analyzed: u64,
    /// The flows with the highest P95, worst first.
    pub flows_with_jitter: Vec<FlowJitter>,
    /// Flows whose P95 or mean is at or above the (protocol's) warning threshold.
    pub high_jitter_count: u64,
    pub high_jitter_flows: Vec<FlowJitter>,
    /// Every jitter sample of every flow, in ms.
    pub global_statistics: Summary,
    pub severity_distribution: BTreeMap<String, u64>,
    pub thresholds: JitterThresholds,
    pub total_sessions: u64,
    pub sessions_split_by_gap: u64,
    pub sessions_split_by_syn: u64,
    pub sessions_split_by_rst_fin: u64,
}

type Key = (FlowKey, Direction);

#[derive(Debug, Clone)]
struct FlowState {
    first_ns: i64,
    last_ns: i64,
    /// Previous inter-arrival time in this session.
    last_delta_ns: Option<i64>,
    last_rst_fin: bool,
    packets: u64,
    sessions: u64,
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    samples: Vec<f32>,
    /// Every `stride`-th sample is kept once the flow outgrew MAX_SAMPLES_PER_FLOW.
    stride: u64,
    /// UDP datagrams whose payload reads as RTP version 2 (RFC 3550) or RTCP.
    rtp: u64,
}

impl FlowState {
    fn new(ts: i64) -> Self {
        FlowState {
            first_ns: ts,
            last_ns: ts,
            last_delta_ns: None,
            last_rst_fin: false,
            packets: 0,
            sessions: 1,
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: 0.0,
            samples: Vec::new(),
            stride: 1,
            rtp: 0,
        }
    }

    fn add(&mut self, ms: f64) {
        self.count += 1;
        let d = ms - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (ms - self.mean);
        self.min = self.min.min(ms);
        self.max = self.max.max(ms);
        if (self.count - 1) % self.stride != 0 {
            return;
        }
        if self.samples.len() >= MAX_SAMPLES_PER_FLOW {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
            if (self.count - 1) % self.stride != 0 {
                return;
            }
        }
        self.samples.push(ms as f32);
    }
}

/// A closed flow, kept for the ranking without strings.
#[derive(Debug, Clone)]
struct Closed {
    key: Key,
    first_ns: i64,
    packets: u64,
    samples: u64,
    sessions: u64,
    mean: f64,
    median: f64,
    p95: f64,
    p99: f64,
    min: f64,
    max: f64,
    stdev: f64,
    severity: &'static str,
    high: bool,
    /// Real-time media (RTP/RTCP): the only flows whose jitter is a cause.
    media: bool,
}

/// Highest of P95 and mean first, then earliest.
fn worst_first(a: &Closed, b: &Closed) -> std::cmp::Ordering {
    b.p95
        .max(b.mean)
        .total_cmp(&a.p95.max(a.mean))
        .then(a.first_ns.cmp(&b.first_ns))
}

#[cfg(test)]
fn quantile(sorted: &[f32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[rank(sorted.len(), q) - 1])
}

/// Nearest rank (1-based) of quantile `q` among `n` values.
fn rank(n: usize, q: f64) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n)
}

/// The median, 95th and 99th percentiles of `samples` (reordered), as [`quantile`] gives them
/// on the sorted samples: each found by selection, in linear time instead of a sort per flow.
fn median_p95_p99(samples: &mut [f32]) -> [f64; 3] {
    let n = samples.len();
    if n == 0 {
        return [0.0; 3];
    }
    let cmp = |a: &f32, b: &f32| a.total_cmp(b);
    let mut out = [0.0; 3];
    let mut upto = n;
    // Highest first: each selection leaves the smaller values before it for the next.
    for (slot, q) in [(2, 0.99), (1, 0.95), (0, 0.5)] {
        let i = rank(n, q) - 1;
        let v = match i < upto {
            true => *samples[..upto].select_nth_unstable_by(i, cmp).1,
            // The same rank as the quantile above: already in place.
            false => samples[i],
        };
        out[slot] = f64::from(v);
        upto = i;
    }
    out
}

pub struct Jitter {
    warning_ms: f64,
    critical_ms: f64,
    /// Per flow-table slot and direction: no hash lookup per packet.
    flows: PerFlow<FlowState>,
    total_flows: u64,
    analyzed: u64,
    high_count: u64,
    media_flows: u64,
    /// The media flow with the most jitter (ranked flows may all be TCP).
    worst_media: Option<Closed>,
    severity: BTreeMap<&'static str, u64>,
    ranked: Top<Closed>,
    global: Distribution,
    sessions: u64,
    split_gap: u64,
    split_syn: u64,
    split_rst_fin: u64,
}

impl Jitter {
    pub fn new(config: &Config, _options: &Options) -> Self {
        Jitter {
            warning_ms: config.thresholds.jitter_warning * 1000.0,
            critical_ms: config.thresholds.jitter_critical * 1000.0,
            flows: PerFlow::default(),
            total_flows: 0,
            analyzed: 0,
            high_count: 0,
            media_flows: 0,
            worst_media: None,
            severity: BTreeMap::new(),
            ranked: Top::new(MAX_FINDINGS, worst_first),
            global: Distribution::default(),
            sessions: 0,
            split_gap: 0,
            split_syn: 0,
            split_rst_fin: 0,
        }
    }

    fn limits(&self, proto: u8) -> (f64, f64) {
        if proto == 6 {
            (
                self.warning_ms * TCP_TOLERANCE,
                self.critical_ms * TCP_TOLERANCE,
            )
        } else {
            (self.warning_ms, self.critical_ms)
        }
    }

    fn close_both(&mut self, key: FlowKey, states: [Option<FlowState>; 2]) {
        for (dir, state) in [Direction::AtoB, Direction::BtoA].into_iter().zip(states) {
            if let Some(f) = state {
                self.close((key, dir), f);
            }
        }
    }

    fn close(&mut self, key: Key, f: FlowState) {
        self.sessions += f.sessions;
        if f.count == 0 {
            return;
        }
        self.analyzed += 1;
        let mut s = f.samples;
        let [median, p95, p99] = median_p95_p99(&mut s);
        let (warning, critical) = self.limits(key.0.proto);
        let severity = if p95 < warning / 2.0 {
            "excellent"
        } else if p95 < warning {
            "low"
        } else if p95 < critical {
            "medium"
        } else if p95 < critical * 2.0 {
            "high"
        } else {
            "critical"
        };
        *self.severity.entry(severity).or_insert(0) += 1;
        let high = p95 >= warning || f.mean >= warning;
        if high {
            self.high_count += 1;
        }
        let media =
            key.0.proto == 17 && f.packets >= MIN_MEDIA_PACKETS && f.rtp * 10 >= f.packets * 8;
        if media {
            self.media_flows += 1;
        }
        let closed = Closed {
            media,
            key,
            first_ns: f.first_ns,
            packets: f.packets,
            samples: f.count,
            sessions: f.sessions,
            mean: f.mean,
            median,
            p95,
            p99,
            min: f.min,
            max: f.max,
            stdev: if f.count >= 2 {
                (f.m2 / (f.count - 1) as f64).sqrt()
            } else {
                0.0
            },
            severity,
            high,
        };
        if media && self.worst_media.as_ref().is_none_or(|w| w.p95 < closed.p95) {
            self.worst_media = Some(closed.clone());
        }
        self.ranked.push(closed);
    }

    fn to_report(&self, c: &Closed) -> FlowJitter {
        let (k, dir) = c.key;
        let (src, sport, dst, dport) = k.oriented(dir);
        let proto = if k.proto == 6 { "tcp" } else { "udp" };
        let ipf = if src.is_ipv6() { "ipv6" } else { "ip" };
        let (s, d) = k.endpoints(dir);
        FlowJitter {
            flow: format!("{s} -> {d} ({})", proto.to_uppercase()),
            src: s,
            dst: d,
            protocol: proto.to_uppercase(),
            packet_count: c.packets,
            jitter_samples: c.samples,
            sessions: c.sessions,
            mean_ms: round3(c.mean),
            median_ms: round3(c.median),
            p95_ms: round3(c.p95),
            p99_ms: round3(c.p99),
            min_ms: round3(c.min),
            max_ms: round3(c.max),
            stdev_ms: round3(c.stdev),
            first_packet_time: iso_utc(c.first_ns),
            severity: c.severity.to_string(),
            real_time_media: c.media,
            display_filter: format!(
                "{ipf}.src == {src} && {proto}.srcport == {sport} && {ipf}.dst == {dst} && {proto}.dstport == {dport}"
            ),
        }
    }
}

impl Analyzer for Jitter {
    fn packets(&self) -> Kinds {
        Kinds::TCP | Kinds::UDP
    }

    fn prefetches(&self) -> Prefetch {
        Prefetch::Near
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        if meta.flow.is_none() {
            return;
        }
        let flags = match (pkt.tcp(), pkt.udp()) {
            (Some(t), _) => t.flags,
            (_, Some(_)) => 0,
            _ => return,
        };
        let ts = pkt.ts_ns;
        let rtp = pkt.udp().is_some_and(|u| looks_like_rtp(u.payload));
        let Some(state) = self.flows.direction(meta) else {
            return;
        };
        let f = state.get_or_insert_with(|| {
            self.total_flows += 1;
            FlowState::new(ts)
        });
        if f.packets > 0 {
            let gap = ts.saturating_sub(f.last_ns).max(0);
            let split = if gap > SESSION_GAP_NS {
                self.split_gap += 1;
                true
            } else if flags & TCP_SYN != 0 && gap > SYN_GAP_NS {
                self.split_syn += 1;
                true
            } else if f.last_rst_fin && gap > AFTER_RST_FIN_GAP_NS {
                self.split_rst_fin += 1;
                true
            } else {
                false
            };
            if split {
                f.sessions += 1;
                f.last_delta_ns = None;
            } else {
                if let Some(prev) = f.last_delta_ns {
                    let ms = (gap - prev).abs() as f64 / 1e6;
                    f.add(ms);
                    self.global.add(ms);
                }
                f.last_delta_ns = Some(gap);
            }
        }
        f.packets += 1;
        f.rtp += u64::from(rtp);
        f.last_ns = ts;
        f.last_rst_fin = flags & (TCP_RST | TCP_FIN) != 0;
    }

    fn prefetch(&self, ahead: &PacketMeta) {
        self.flows.prefetch(ahead);
    }

    fn prefetch_end(&self, ending: &FlowRecord) {
        self.flows.prefetch_slot(ending.slot);
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        if let Some(states) = self.flows.take(flow.slot) {
            self.close_both(flow.key, states);
        }
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        for (flow, states) in self.flows.drain_live(end.flows) {
            self.close_both(flow.key, states);
        }
        let ranked = self.ranked.take_sorted();
        if let Some(worst) = &self.worst_media {
            let sev = Severity::by_thresholds(
                worst.p95,
                [
                    Some(self.warning_ms / 2.0),
                    Some(self.warning_ms),
                    Some(self.critical_ms),
                    Some(self.critical_ms * 4.0),
                ],
            );
            let r = self.to_report(worst);
            report.findings.push(
                Finding::new(
                    "jitter",
                    sev,
                    format!(
                        "Real-time media {} varies its packet spacing by {:.1} ms at the 95th percentile (mean {:.1} ms) over {} packets",
                        r.flow, worst.p95, worst.mean, worst.packets
                    ),
                )
                .cause(Cause::Jitter)
                .evidence(
                    Evidence::new()
                        .with("p95_jitter_ms", round3(worst.p95))
                        .with("mean_jitter_ms", round3(worst.mean))
                        .with("media_flows", self.media_flows as f64),
                )
                .hosts([r.src.clone(), r.dst.clone()])
                .filter(r.display_filter.clone()),
            );
        }
        let flows_with_jitter = ranked
            .iter()
            .take(MAX_RANKED)
            .map(|c| self.to_report(c))
            .collect();
        let high_jitter_flows = ranked
            .iter()
            .filter(|c| c.high)
            .map(|c| self.to_report(c))
            .collect();
        report.jitter = Some(JitterReport {
            total_flows: self.total_flows,
            flows_analyzed: self.analyzed,
            flows_with_jitter,
            high_jitter_count: self.high_count,
            high_jitter_flows,
            global_statistics: self.global.summary(),
            severity_distribution: self
                .severity
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            thresholds: JitterThresholds {
                jitter_warning_ms: round3(self.warning_ms),
                jitter_critical_ms: round3(self.critical_ms),
                tcp_jitter_warning_ms: round3(self.warning_ms * TCP_TOLERANCE),
                tcp_jitter_critical_ms: round3(self.critical_ms * TCP_TOLERANCE),
            },
            total_sessions: self.sessions,
            sessions_split_by_gap: self.split_gap,
            sessions_split_by_syn: self.split_syn,
            sessions_split_by_rst_fin: self.split_rst_fin,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_quantiles_equal_those_of_the_sorted_samples() {
        // Sizes where two quantiles share a rank (1, 2, 20) and where they do not; repeats.
        for n in [1usize, 2, 3, 19, 20, 21, 100, 257] {
            let mut samples: Vec<f32> = (0..n).map(|i| ((i * 7919) % 97) as f32 / 4.0).collect();
            let mut sorted = samples.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let expected = [0.5, 0.95, 0.99].map(|q| quantile(&sorted, q));
            assert_eq!(median_p95_p99(&mut samples), expected, "{n} samples");
        }
        assert_eq!(median_p95_p99(&mut []), [0.0; 3]);
    }
}
