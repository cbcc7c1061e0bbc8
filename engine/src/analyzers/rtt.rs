//! `rtt`: round-trip time per TCP stream, measured as Wireshark's `tcp.analysis.ack_rtt` (a data
//! segment to the first ACK that covers it, computed by [`crate::tcp`]), with v5's thresholds
//! (`rtt_warning`, `rtt_critical`), per-flow statistics and spikes, and a bounded RTT-over-time
//! series of the worst flows for the HTML chart.
//!
//! Fixed from v5: with `--latency`, v5 dropped the samples below it from every statistic; here the
//! statistics cover every sample and `--latency` only filters the listed measurements.

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{fast_map, Direction, FastMap, FlowKey};
use crate::report::{top_n, Report, MAX_FINDINGS, MAX_RANKED};
use crate::stats::{round3, round6, Distribution};
use crate::Options;

/// Streams with RTT statistics at once; past this, the idlest are finished early (their
/// statistics still count) so memory stays bounded.
const MAX_STREAMS: usize = 50_000;
/// Flows whose RTT series is recorded at once (the candidates for the worst flows' chart).
const MAX_SERIES_FLOWS: usize = 32;
/// Points kept per series; past this, neighbouring points merge (keeping the higher RTT, so a
/// spike stays visible).
const MAX_SERIES_POINTS: usize = 200;
/// Flows drawn in the RTT-over-time chart.
const CHART_FLOWS: usize = 5;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RttGlobalStatistics {
    pub min_rtt_ms: f64,
    pub max_rtt_ms: f64,
    pub mean_rtt_ms: f64,
    pub median_rtt_ms: f64,
    pub p95_rtt_ms: f64,
    pub stdev_rtt_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RttThresholds {
    pub warning_seconds: f64,
    pub critical_seconds: f64,
    /// `--latency`: only measurements at least this long are listed.
    pub latency_filter: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowRttStats {
    pub stream: u64,
    /// "a:port <-> b:port", the first sender first.
    pub flow: String,
    pub measurements_count: u64,
    pub min_rtt_ms: f64,
    pub max_rtt_ms: f64,
    pub mean_rtt_ms: f64,
    pub stdev_rtt_ms: f64,
    /// Measurements above `rtt_warning` (v5's definition).
    pub rtt_spikes: u64,
    /// Measurements above `rtt_critical`.
    pub critical_measurements: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RttMeasurement {
    pub stream: u64,
    /// Frame of the ACK.
    pub ack_packet_num: u64,
    /// Frame of the data segment it acknowledges.
    pub data_packet_num: u64,
    pub timestamp: String,
    pub rtt_ms: f64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RttSeries {
    pub flow: String,
    pub stream: u64,
    /// (seconds since capture start, RTT in ms).
    pub points: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RttReport {
    pub total_measurements: u64,
    pub total_flows: u64,
    pub global_statistics: RttGlobalStatistics,
    pub thresholds: RttThresholds,
    /// Flows with mean above `rtt_warning` or max above `rtt_critical` (v5's rule).
    pub flows_with_high_rtt: u64,
    /// Measurements above `rtt_critical`.
    pub critical_measurements: u64,
    /// Worst flows by mean RTT.
    pub flow_statistics: Vec<FlowRttStats>,
    /// Measurements listed: at least `--latency` when given, else above `rtt_warning`; the first
    /// ones in file order.
    pub measurements: Vec<RttMeasurement>,
    pub measurements_listed_total: u64,
    /// The first measurements above `rtt_critical`.
    pub critical_rtt_details: Vec<RttMeasurement>,
    /// RTT over time for the worst flows (at most 5), for the chart.
    pub rtt_over_time: Vec<RttSeries>,
}

/// Running statistics of one stream (Welford's mean and variance).
#[derive(Clone, Copy)]
struct FlowRtt {
    key: FlowKey,
    first_dir: Direction,
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    spikes: u64,
    critical: u64,
    last_seen: i64,
}

impl FlowRtt {
    fn add(&mut self, ms: f64, warning_ms: f64, critical_ms: f64) {
        self.count += 1;
        let d = ms - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (ms - self.mean);
        self.min = self.min.min(ms);
        self.max = self.max.max(ms);
        if ms > warning_ms {
            self.spikes += 1;
        }
        if ms > critical_ms {
            self.critical += 1;
        }
    }

    fn stdev(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.m2 / (self.count - 1) as f64).sqrt()
        }
    }

    fn label(&self) -> String {
        let (s, d) = self.key.endpoints(self.first_dir);
        format!("{s} <-> {d}")
    }
}

/// A downsampled series: every `stride` samples make one point (the one with the highest RTT).
#[derive(Default)]
struct Series {
    points: Vec<(i64, f64)>,
    stride: u32,
    pending: Option<(i64, f64)>,
    pending_n: u32,
}

impl Series {
    fn add(&mut self, ts: i64, ms: f64) {
        let stride = self.stride.max(1);
        self.pending = match self.pending {
            Some(p) if p.1 >= ms => Some(p),
            _ => Some((ts, ms)),
        };
        self.pending_n += 1;
        if self.pending_n < stride {
            return;
        }
        if let Some(p) = self.pending.take() {
            self.points.push(p);
        }
        self.pending_n = 0;
        if self.points.len() >= MAX_SERIES_POINTS {
            self.points = self
                .points
                .chunks(2)
                .filter_map(|c| c.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)))
                .collect();
            self.stride = stride.saturating_mul(2);
        }
    }

    fn into_points(mut self) -> Vec<(i64, f64)> {
        if let Some(p) = self.pending.take() {
            self.points.push(p);
        }
        self.points
    }
}

pub struct Rtt {
    warning_ms: f64,
    critical_ms: f64,
    warning_s: f64,
    critical_s: f64,
    latency: Option<f64>,
    list_from_ms: f64,
    flows: FastMap<u64, FlowRtt>,
    finished: Vec<(u64, FlowRtt)>,
    total_flows: u64,
    high_rtt_flows: u64,
    all: Distribution,
    critical: u64,
    listed_total: u64,
    listed: Vec<RttMeasurement>,
    critical_listed: Vec<RttMeasurement>,
    series: FastMap<u64, Series>,
    /// Lowest max RTT among the flows with a series, a lower bound kept to avoid rescans.
    series_floor_ms: f64,
}

impl Rtt {
    pub fn new(config: &Config, options: &Options) -> Self {
        let t = &config.thresholds;
        let warning_ms = t.rtt_warning * 1000.0;
        Rtt {
            warning_ms,
            critical_ms: t.rtt_critical * 1000.0,
            warning_s: t.rtt_warning,
            critical_s: t.rtt_critical,
            latency: options.latency,
            list_from_ms: options.latency.map_or(warning_ms, |l| l * 1000.0),
            flows: fast_map(),
            finished: Vec::new(),
            total_flows: 0,
            high_rtt_flows: 0,
            all: Distribution::default(),
            critical: 0,
            listed_total: 0,
            listed: Vec::new(),
            critical_listed: Vec::new(),
            series: fast_map(),
            series_floor_ms: 0.0,
        }
    }

    /// Counts a flow whose statistics are complete and keeps it if it ranks among the worst.
    fn finish_flow(&mut self, stream: u64, f: FlowRtt) {
        self.total_flows += 1;
        if f.mean > self.warning_ms || f.max > self.critical_ms {
            self.high_rtt_flows += 1;
        }
        self.finished.push((stream, f));
        if self.finished.len() >= 4 * MAX_RANKED {
            let kept = top_n(std::mem::take(&mut self.finished), MAX_RANKED, |x| x.1.mean);
            self.finished = kept;
        }
    }

    fn evict(&mut self, now: i64) {
        let gone: Vec<(u64, FlowRtt)> = super::evict::drain_idle(
            &mut self.flows,
            now,
            MAX_STREAMS,
            crate::flow::IDLE_EVICTION_NS,
            |f| f.last_seen,
        );
        for (s, f) in gone {
            self.finish_flow(s, f);
        }
    }

    /// Records the point in the stream's series, admitting the stream when it is among the
    /// highest RTTs seen (replacing the tracked stream with the lowest max).
    fn record_series(&mut self, stream: u64, ts: i64, ms: f64) {
        if let Some(s) = self.series.get_mut(&stream) {
            s.add(ts, ms);
            return;
        }
        if self.series.len() >= MAX_SERIES_FLOWS {
            if ms <= self.series_floor_ms {
                return;
            }
            let flows = &self.flows;
            let max_of = |s: &u64| flows.get(s).map_or(0.0, |f| f.max);
            let lowest = self
                .series
                .keys()
                .copied()
                .min_by(|a, b| max_of(a).total_cmp(&max_of(b)));
            let Some(lowest) = lowest else { return };
            self.series_floor_ms = max_of(&lowest);
            if ms <= self.series_floor_ms {
                return;
            }
            self.series.remove(&lowest);
        }
        let mut s = Series::default();
        s.add(ts, ms);
        self.series.insert(stream, s);
    }

    fn measurement(&self, pkt: &Packet<'_>, stream: u64, frame: u64, ms: f64) -> RttMeasurement {
        RttMeasurement {
            stream,
            ack_packet_num: pkt.number,
            data_packet_num: frame,
            timestamp: crate::time::iso_utc(pkt.ts_ns),
            rtt_ms: round3(ms),
            display_filter: format!("tcp.stream == {stream} && tcp.analysis.ack_rtt"),
        }
    }
}

impl Analyzer for Rtt {
    fn packets(&self) -> Kinds {
        Kinds::TCP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some((rtt_ns, frame)) = meta.tcp.ack_rtt else {
            return;
        };
        let Some((key, dir)) = meta.flow else { return };
        let stream = meta.tcp.stream;
        let ms = rtt_ns.max(0) as f64 / 1e6;
        if self.flows.len() >= MAX_STREAMS && !self.flows.contains_key(&stream) {
            self.evict(pkt.ts_ns);
        }
        let (warning, critical) = (self.warning_ms, self.critical_ms);
        let f = self.flows.entry(stream).or_insert(FlowRtt {
            key,
            // The ACK's sender received the data: the data flowed the other way.
            first_dir: match dir {
                Direction::AtoB => Direction::BtoA,
                Direction::BtoA => Direction::AtoB,
            },
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            spikes: 0,
            critical: 0,
            last_seen: pkt.ts_ns,
        });
        f.add(ms, warning, critical);
        f.last_seen = pkt.ts_ns;
        self.all.add(ms);
        self.record_series(stream, pkt.ts_ns, ms);
        if ms >= self.list_from_ms {
            self.listed_total += 1;
            if self.listed.len() < MAX_FINDINGS {
                let m = self.measurement(pkt, stream, frame, ms);
                self.listed.push(m);
            }
        }
        if ms > self.critical_ms {
            self.critical += 1;
            if self.critical_listed.len() < MAX_FINDINGS {
                let m = self.measurement(pkt, stream, frame, ms);
                self.critical_listed.push(m);
            }
        }
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let start = end.first_ts_ns.unwrap_or(0);
        let mut series: Vec<(u64, FlowRtt, Series)> = std::mem::take(&mut self.series)
            .into_iter()
            .filter_map(|(s, pts)| self.flows.get(&s).map(|f| (s, *f, pts)))
            .collect();
        series.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean).then(a.0.cmp(&b.0)));
        let rtt_over_time = series
            .into_iter()
            .take(CHART_FLOWS)
            .map(|(stream, f, s)| RttSeries {
                flow: f.label(),
                stream,
                points: s
                    .into_points()
                    .into_iter()
                    .map(|(ts, ms)| [round6((ts - start) as f64 / 1e9), round3(ms)])
                    .collect(),
            })
            .collect();
        let mut left: Vec<(u64, FlowRtt)> = self.flows.drain().collect();
        left.sort_by_key(|(s, _)| *s);
        for (s, f) in left {
            self.finish_flow(s, f);
        }
        let mut worst = std::mem::take(&mut self.finished);
        worst.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean).then(a.0.cmp(&b.0)));
        worst.truncate(MAX_RANKED);
        let flow_statistics = worst
            .into_iter()
            .map(|(stream, f)| FlowRttStats {
                stream,
                flow: f.label(),
                measurements_count: f.count,
                min_rtt_ms: round3(f.min),
                max_rtt_ms: round3(f.max),
                mean_rtt_ms: round3(f.mean),
                stdev_rtt_ms: round3(f.stdev()),
                rtt_spikes: f.spikes,
                critical_measurements: f.critical,
                display_filter: format!("tcp.stream == {stream}"),
            })
            .collect();
        let a = &self.all;
        report.rtt = Some(RttReport {
            total_measurements: a.count(),
            total_flows: self.total_flows,
            global_statistics: RttGlobalStatistics {
                min_rtt_ms: round3(a.min()),
                max_rtt_ms: round3(a.max()),
                mean_rtt_ms: round3(a.mean()),
                median_rtt_ms: round3(a.quantile(0.5)),
                p95_rtt_ms: round3(a.quantile(0.95)),
                stdev_rtt_ms: round3(a.stdev()),
            },
            thresholds: RttThresholds {
                warning_seconds: self.warning_s,
                critical_seconds: self.critical_s,
                latency_filter: self.latency,
            },
            flows_with_high_rtt: self.high_rtt_flows,
            critical_measurements: self.critical,
            flow_statistics,
            measurements: self.listed,
            measurements_listed_total: self.listed_total,
            critical_rtt_details: self.critical_listed,
            rtt_over_time,
        });
    }
}
