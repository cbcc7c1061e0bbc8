//! `temporal`: traffic in slots of `temporal_slot_duration` seconds (frames, bytes, TCP, UDP),
//! peaks (slots above mean + 2σ), valleys (below mean − 1.5σ and under 30 % of the mean, only
//! when the mean exceeds 10 frames), the hourly distribution **in UTC** (v5 used the local time
//! of the machine that ran it), periodic sources and a timeline of at most 100 points.
//!
//! Slots run from the first to the last frame, empty ones included (a silent minute is a
//! valley). Past [`MAX_SLOTS`] slots, neighbours are merged two by two and the slot doubles, so
//! memory never depends on the capture's length.
//!
//! Periodicity (v5): for each source, the gaps between its frames, rounded to whole seconds and
//! kept between 1 and 300 s; a gap value seen at least 5 times that makes up at least 30 % of
//! them is a pattern. Only the 20 busiest sources with at least 10 frames are reported. Each
//! source keeps a few counters (Misra–Gries heavy hitters), not its timestamps.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Layer4, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{fast_map, FastMap};
use crate::report::Report;
use crate::stats::round3;
use crate::time::iso_utc;
use crate::Options;

const NS: i64 = 1_000_000_000;
/// Slots kept before neighbours are merged (v5 had no bound).
pub const MAX_SLOTS: usize = 100_000;
/// Shortest slot accepted (a configured 0 would make one slot per frame).
const MIN_SLOT_NS: i64 = NS;
/// v5's report limits.
const MAX_PEAKS: usize = 20;
const MAX_VALLEYS: usize = 10;
const MAX_PATTERNS: usize = 15;
const MAX_TIMELINE_POINTS: usize = 100;
/// v5: peaks above mean + 2σ; valleys below mean − 1.5σ and below 30 % of the mean, looked for
/// only when the mean is above 10 frames per slot.
const PEAK_SIGMAS: f64 = 2.0;
const VALLEY_SIGMAS: f64 = 1.5;
const VALLEY_MEAN_FRACTION: f64 = 0.3;
const VALLEY_MIN_MEAN: f64 = 10.0;
/// v5's periodicity rules.
const PERIODIC_SOURCES: usize = 20;
const PERIODIC_MIN_PACKETS: u64 = 10;
const PERIOD_MIN_S: i64 = 1;
const PERIOD_MAX_S: i64 = 300;
const PERIOD_MIN_OCCURRENCES: u64 = 5;
const PERIOD_MIN_SHARE: f64 = 0.3;
/// Gap values counted per source. Misra–Gries with k counters finds every value above 1/(k+1)
/// of the gaps, so 7 is enough for the 30 % rule; counts are lower bounds (error ≤ n/8).
const PERIOD_COUNTERS: usize = 7;
/// Sources followed for periodicity; past this, sources with fewer than 10 frames are dropped.
const MAX_SOURCES: usize = 50_000;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    packets: u64,
    bytes: u64,
    tcp: u64,
    udp: u64,
}

impl Slot {
    fn add(&mut self, o: &Slot) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.tcp += o.tcp;
        self.udp += o.udp;
    }
}

#[derive(Debug, Clone, Default)]
struct Source {
    packets: u64,
    last_ns: i64,
    /// Gaps between 1 and 300 s.
    gaps: u64,
    /// (gap in seconds, count): 32-bit counts keep a source's entry small (80 bytes), and so
    /// the table, which every IP frame reads.
    counters: [(u16, u32); PERIOD_COUNTERS],
}

impl Source {
    fn add_gap(&mut self, secs: u16) {
        self.gaps += 1;
        if let Some(c) = self.counters.iter_mut().find(|c| c.0 == secs && c.1 > 0) {
            c.1 = c.1.saturating_add(1);
        } else if let Some(c) = self.counters.iter_mut().find(|c| c.1 == 0) {
            *c = (secs, 1);
        } else {
            for c in &mut self.counters {
                c.1 -= 1;
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlotPoint {
    pub timestamp: String,
    pub packets: u64,
    pub bytes: u64,
    pub tcp_packets: u64,
    pub udp_packets: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HourCount {
    /// Hour of day in UTC (0–23).
    pub hour: u8,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeriodicPattern {
    pub source_ip: String,
    pub interval_seconds: u64,
    /// Gaps of that length (a lower bound, see the module notes).
    pub occurrences: u64,
    /// Share of the source's 1–300 s gaps, in percent.
    pub share_pct: f64,
    pub packet_count: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TemporalSummary {
    pub total_packets: u64,
    pub total_bytes: u64,
    pub tcp_packets: u64,
    pub udp_packets: u64,
    pub duration_seconds: f64,
    pub peaks_detected: u64,
    pub valleys_detected: u64,
    pub periodic_patterns_detected: u64,
    /// Busiest hour of day, UTC.
    pub busiest_hour_utc: Option<u8>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlotStats {
    /// Slot length used (the configured one, doubled each time the capture outgrew MAX_SLOTS).
    pub slot_duration_seconds: f64,
    pub total_slots: u64,
    pub avg_packets_per_slot: f64,
    pub std_packets_per_slot: f64,
    pub max_packets_per_slot: u64,
    pub min_packets_per_slot: u64,
    pub avg_bytes_per_slot: f64,
    pub peak_threshold_packets: f64,
    pub valley_threshold_packets: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TemporalReport {
    pub summary: TemporalSummary,
    pub slot_stats: SlotStats,
    pub hourly_distribution: Vec<HourCount>,
    pub peaks: Vec<SlotPoint>,
    pub valleys: Vec<SlotPoint>,
    pub periodic_patterns: Vec<PeriodicPattern>,
    pub timeline: Vec<SlotPoint>,
}

pub struct Temporal {
    slot_ns: i64,
    /// Start of slot 0 (a multiple of the configured slot, as v5's `int(ts / slot)`).
    origin_ns: Option<i64>,
    slots: Vec<Slot>,
    hours: [(u64, u64); 24],
    sources: FastMap<IpAddr, Source>,
    /// IP frames seen, and the count at which the source table may be pruned again.
    seen: u64,
    next_prune_at: u64,
    totals: Slot,
}

impl Temporal {
    pub fn new(config: &Config, _options: &Options) -> Self {
        Temporal {
            slot_ns: ((config.thresholds.temporal_slot_duration * 1e9) as i64).max(MIN_SLOT_NS),
            origin_ns: None,
            slots: Vec::new(),
            hours: [(0, 0); 24],
            sources: fast_map(),
            seen: 0,
            next_prune_at: 0,
            totals: Slot::default(),
        }
    }

    /// Halves the number of slots by merging neighbours; the slot doubles.
    fn coarsen(&mut self) {
        let merged: Vec<Slot> = self
            .slots
            .chunks(2)
            .map(|pair| {
                let mut s = pair[0];
                if let Some(o) = pair.get(1) {
                    s.add(o);
                }
                s
            })
            .collect();
        self.slots = merged;
        self.slot_ns = self.slot_ns.saturating_mul(2);
    }

    fn point(&self, i: usize, s: &Slot) -> SlotPoint {
        let start = self
            .origin_ns
            .unwrap_or(0)
            .saturating_add((i as i64).saturating_mul(self.slot_ns));
        SlotPoint {
            timestamp: iso_utc(start),
            packets: s.packets,
            bytes: s.bytes,
            tcp_packets: s.tcp,
            udp_packets: s.udp,
        }
    }
}

impl Analyzer for Temporal {
    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        if !pkt.ts_known {
            return;
        }
        let ts = pkt.ts_ns;
        let origin = *self
            .origin_ns
            .get_or_insert_with(|| ts.div_euclid(self.slot_ns) * self.slot_ns);
        // A frame before the first one (clock going back) counts in slot 0.
        let mut i = (ts.saturating_sub(origin).max(0) / self.slot_ns) as usize;
        while i >= MAX_SLOTS {
            self.coarsen();
            i = (ts.saturating_sub(origin).max(0) / self.slot_ns) as usize;
        }
        if i >= self.slots.len() {
            self.slots.resize(i + 1, Slot::default());
        }
        let len = u64::from(pkt.wire_len);
        let (tcp, udp) = match meta.layer4 {
            Some(Layer4::Tcp) => (1, 0),
            Some(Layer4::Udp) => (0, 1),
            _ => (0, 0),
        };
        let one = Slot {
            packets: 1,
            bytes: len,
            tcp,
            udp,
        };
        self.slots[i].add(&one);
        self.totals.add(&one);
        let hour = (ts.div_euclid(3600 * NS)).rem_euclid(24) as usize;
        self.hours[hour].0 += 1;
        self.hours[hour].1 += len;

        let Some(ip) = pkt.ip() else { return };
        self.seen += 1;
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&ip.src) {
            // Prune at most once per MAX_SOURCES frames, so a table full of busy sources does
            // not cost a sweep per frame; until then new sources are not followed.
            if self.seen < self.next_prune_at {
                return;
            }
            self.sources
                .retain(|_, s| s.packets >= PERIODIC_MIN_PACKETS);
            self.next_prune_at = self.seen + MAX_SOURCES as u64;
            if self.sources.len() >= MAX_SOURCES {
                return;
            }
        }
        let s = self.sources.entry(ip.src).or_insert(Source {
            last_ns: ts,
            ..Source::default()
        });
        if s.packets > 0 {
            let gap_s = (ts.saturating_sub(s.last_ns) + NS / 2).div_euclid(NS);
            if (PERIOD_MIN_S..=PERIOD_MAX_S).contains(&gap_s) {
                s.add_gap(gap_s as u16);
            }
        }
        s.packets += 1;
        s.last_ns = ts;
    }

    fn finish(self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let n = self.slots.len();
        let mean = if n > 0 {
            self.totals.packets as f64 / n as f64
        } else {
            0.0
        };
        let std = if n >= 2 {
            let ss: f64 = self
                .slots
                .iter()
                .map(|s| (s.packets as f64 - mean).powi(2))
                .sum();
            (ss / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let peak_threshold = mean + PEAK_SIGMAS * std;
        let valley_threshold = (mean > VALLEY_MIN_MEAN)
            .then(|| (mean - VALLEY_SIGMAS * std).min(mean * VALLEY_MEAN_FRACTION));
        let mut peaks: Vec<(usize, Slot)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| n >= 2 && s.packets as f64 > peak_threshold)
            .map(|(i, s)| (i, *s))
            .collect();
        let peaks_detected = peaks.len() as u64;
        peaks.sort_by(|a, b| b.1.packets.cmp(&a.1.packets).then(a.0.cmp(&b.0)));
        peaks.truncate(MAX_PEAKS);
        let mut valleys: Vec<(usize, Slot)> = match valley_threshold {
            Some(v) => self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| (s.packets as f64) < v)
                .map(|(i, s)| (i, *s))
                .collect(),
            None => Vec::new(),
        };
        let valleys_detected = valleys.len() as u64;
        valleys.sort_by(|a, b| a.1.packets.cmp(&b.1.packets).then(a.0.cmp(&b.0)));
        valleys.truncate(MAX_VALLEYS);

        // Timeline: consecutive slots summed into at most 100 points.
        let per = n.div_ceil(MAX_TIMELINE_POINTS).max(1);
        let timeline: Vec<SlotPoint> = self
            .slots
            .chunks(per)
            .enumerate()
            .map(|(j, chunk)| {
                let mut s = Slot::default();
                for c in chunk {
                    s.add(c);
                }
                self.point(j * per, &s)
            })
            .collect();

        // Periodicity on the busiest sources.
        let mut busiest: Vec<(&IpAddr, &Source)> = self
            .sources
            .iter()
            .filter(|(_, s)| s.packets >= PERIODIC_MIN_PACKETS)
            .collect();
        busiest.sort_by(|a, b| b.1.packets.cmp(&a.1.packets).then(a.0.cmp(b.0)));
        busiest.truncate(PERIODIC_SOURCES);
        let mut patterns: Vec<PeriodicPattern> = Vec::new();
        for (ip, s) in busiest {
            let best = s
                .counters
                .iter()
                .filter(|c| c.1 > 0)
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
            let Some(&(secs, count)) = best else { continue };
            let count = u64::from(count);
            let share = count as f64 / s.gaps.max(1) as f64;
            if count >= PERIOD_MIN_OCCURRENCES && share >= PERIOD_MIN_SHARE {
                let field = if ip.is_ipv6() { "ipv6.src" } else { "ip.src" };
                patterns.push(PeriodicPattern {
                    source_ip: ip.to_string(),
                    interval_seconds: u64::from(secs),
                    occurrences: count,
                    share_pct: round3(share * 100.0),
                    packet_count: s.packets,
                    display_filter: format!("{field} == {ip}"),
                });
            }
        }
        let periodic_detected = patterns.len() as u64;
        patterns.truncate(MAX_PATTERNS);

        let hourly: Vec<HourCount> = self
            .hours
            .iter()
            .enumerate()
            .filter(|(_, h)| h.0 > 0)
            .map(|(h, &(packets, bytes))| HourCount {
                hour: h as u8,
                packets,
                bytes,
            })
            .collect();
        let busiest_hour = hourly
            .iter()
            .max_by(|a, b| a.packets.cmp(&b.packets).then(b.hour.cmp(&a.hour)))
            .map(|h| h.hour);
        let max = self.slots.iter().map(|s| s.packets).max().unwrap_or(0);
        let min = self.slots.iter().map(|s| s.packets).min().unwrap_or(0);
        report.temporal = Some(TemporalReport {
            summary: TemporalSummary {
                total_packets: self.totals.packets,
                total_bytes: self.totals.bytes,
                tcp_packets: self.totals.tcp,
                udp_packets: self.totals.udp,
                duration_seconds: round3(end.duration_s()),
                peaks_detected,
                valleys_detected,
                periodic_patterns_detected: periodic_detected,
                busiest_hour_utc: busiest_hour,
            },
            slot_stats: SlotStats {
                slot_duration_seconds: self.slot_ns as f64 / 1e9,
                total_slots: n as u64,
                avg_packets_per_slot: round3(mean),
                std_packets_per_slot: round3(std),
                max_packets_per_slot: max,
                min_packets_per_slot: min,
                avg_bytes_per_slot: round3(if n > 0 {
                    self.totals.bytes as f64 / n as f64
                } else {
                    0.0
                }),
                peak_threshold_packets: round3(peak_threshold),
                valley_threshold_packets: valley_threshold.map(round3),
            },
            hourly_distribution: hourly,
            peaks: peaks.iter().map(|(i, s)| self.point(*i, s)).collect(),
            valleys: valleys.iter().map(|(i, s)| self.point(*i, s)).collect(),
            periodic_patterns: patterns,
            timeline,
        });
    }
}
