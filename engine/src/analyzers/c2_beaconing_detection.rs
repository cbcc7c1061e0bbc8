//! `c2_beaconing_detection`: a host calling home at a steady interval with steady sizes, as
//! command-and-control implants do.
//!
//! Per (source, destination, destination port), TCP and UDP, toward the lower-numbered (service)
//! port. A *beacon* is a burst of packets
//! after at least [`BEACON_GAP_NS`] of silence on that tuple, so a beacon that opens a new TCP
//! connection each time (SYN, request, FIN) counts once, not once per packet as in v5, where the
//! milliseconds between a connection's packets hid every periodic beacon. Intervals between
//! beacons and beacon sizes are kept as running mean and variance (Welford), so a tuple costs a
//! fixed 100 bytes whatever its length.
//!
//! v5's rules: at least `c2_min_beacons` beacons; skipped when the mean interval is under 2 s,
//! within 20 % of a common heartbeat (1, 2, 3, 5, 10, 15, 30, 60 s), or toward a monitoring port;
//! private↔private pairs are left out. Score: interval CV ≤ 0.3 +40, size CV ≤ 0.2 +30,
//! ≥ 20 beacons +20, external destination +10; ≥ 60 is an event, ≥ 90 critical, ≥ 80 high,
//! ≥ 70 medium.

use serde::{Deserialize, Serialize};

use super::security::{
    addr_key, excluded, ip_field, is_internal, key_addr, worst_first, Severity, SeverityBreakdown,
};
use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{fast_map, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round3;
use crate::Options;

/// Silence that separates two beacons on one tuple.
const BEACON_GAP_NS: i64 = 1_000_000_000;
/// v5: shorter mean intervals are interactive traffic, not beacons.
const MIN_MEAN_INTERVAL_S: f64 = 2.0;
/// v5's common heartbeats and its ±20 % tolerance.
const HEARTBEATS_S: [f64; 8] = [1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0, 60.0];
const HEARTBEAT_TOLERANCE: f64 = 0.2;
/// DNS, NTP, SNMP, syslog, mDNS, SSDP, NetBIOS, Nagios NRPE, node exporter, Zabbix.
const MONITORING_PORTS: [u16; 13] = [
    53, 123, 137, 138, 161, 162, 514, 1900, 5353, 5666, 9100, 10050, 10051,
];
const INTERVAL_CV_MAX: f64 = 0.3;
const SIZE_CV_MAX: f64 = 0.2;
const MANY_BEACONS: u64 = 20;
const MIN_SCORE: u32 = 60;
/// Tuples followed; past this, tuples silent for [`IDLE_NS`] are dropped, then new tuples are
/// not followed.
const MAX_TUPLES: usize = 50_000;
const IDLE_NS: i64 = 600 * 1_000_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BeaconEvent {
    pub source_ip: String,
    pub destination_ip: String,
    pub destination_port: u16,
    pub protocol: String,
    pub severity: Severity,
    pub score: u32,
    pub beacon_count: u64,
    pub packet_count: u64,
    pub mean_interval: f64,
    pub interval_cv: f64,
    pub mean_size_bytes: f64,
    pub size_cv: f64,
    pub external_destination: bool,
    pub start_time: String,
    pub duration: f64,
    pub first_packet: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BeaconThresholds {
    pub min_beacons: u64,
    pub beacon_gap_seconds: f64,
    pub min_mean_interval: f64,
    pub interval_cv_max: f64,
    pub size_cv_max: f64,
    pub min_score: u32,
    pub known_heartbeats: Vec<f64>,
    pub monitoring_ports: Vec<u16>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct C2BeaconingReport {
    pub total_beacons_detected: u64,
    pub severity_breakdown: SeverityBreakdown,
    /// Worst first, at most `MAX_FINDINGS`.
    pub beaconing_events: Vec<BeaconEvent>,
    /// Tuples with enough beacons that a skip rule (heartbeat, short interval) set aside.
    pub skipped_periodic: u64,
    pub tuples_not_tracked: u64,
    pub detection_thresholds: BeaconThresholds,
}

/// Running mean and variance (Welford, 1962).
#[derive(Default, Clone, Copy)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn add(&mut self, v: f64) {
        self.n += 1;
        let d = v - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (v - self.mean);
    }
    fn cv(&self) -> f64 {
        if self.n < 2 || self.mean <= 0.0 {
            return 0.0;
        }
        (self.m2 / (self.n - 1) as f64).sqrt() / self.mean
    }
}

#[derive(Default, Clone, Copy)]
struct Tuple {
    packets: u64,
    beacons: u64,
    first_ns: i64,
    last_ns: i64,
    beacon_start_ns: i64,
    beacon_bytes: u64,
    first_frame: u64,
    intervals: Welford,
    sizes: Welford,
}

pub struct C2BeaconingDetection {
    min_beacons: u64,
    include_localhost: bool,
    tuples: FastMap<(u128, u128, u16, u8), Tuple>,
    not_tracked: u64,
    /// No new pruning of a full table before this frame: a prune that frees nothing is not
    /// tried again on every packet (a flood of new tuples made that quadratic).
    prune_after: u64,
}

impl C2BeaconingDetection {
    pub fn new(config: &Config, options: &Options) -> Self {
        C2BeaconingDetection {
            min_beacons: config.thresholds.c2_min_beacons,
            include_localhost: options.include_localhost,
            tuples: fast_map(),
            not_tracked: 0,
            prune_after: 0,
        }
    }

    /// The event for a tuple, `Err(())` when a skip rule set it aside, `Ok(None)` when it is not
    /// periodic enough.
    fn event(&self, key: &(u128, u128, u16, u8), t: &Tuple) -> Result<Option<BeaconEvent>, ()> {
        let mut sizes = t.sizes;
        if t.beacon_bytes > 0 {
            sizes.add(t.beacon_bytes as f64);
        }
        if t.beacons < self.min_beacons {
            return Ok(None);
        }
        let mean = t.intervals.mean;
        if mean < MIN_MEAN_INTERVAL_S
            || HEARTBEATS_S
                .iter()
                .any(|h| (mean - h).abs() <= h * HEARTBEAT_TOLERANCE)
        {
            return Err(());
        }
        let (src, dst, port, proto) = *key;
        let (src, dst) = (key_addr(src), key_addr(dst));
        let external = !is_internal(dst);
        let interval_cv = t.intervals.cv();
        let size_cv = sizes.cv();
        let mut score = 0;
        if interval_cv <= INTERVAL_CV_MAX {
            score += 40;
        }
        if size_cv <= SIZE_CV_MAX {
            score += 30;
        }
        if t.beacons >= MANY_BEACONS {
            score += 20;
        }
        if external {
            score += 10;
        }
        if score < MIN_SCORE {
            return Ok(None);
        }
        let severity = match score {
            s if s >= 90 => Severity::Critical,
            s if s >= 80 => Severity::High,
            s if s >= 70 => Severity::Medium,
            _ => Severity::Low,
        };
        let proto_name = if proto == 6 { "tcp" } else { "udp" };
        Ok(Some(BeaconEvent {
            source_ip: src.to_string(),
            destination_ip: dst.to_string(),
            destination_port: port,
            protocol: proto_name.to_uppercase(),
            severity,
            score,
            beacon_count: t.beacons,
            packet_count: t.packets,
            mean_interval: round3(mean),
            interval_cv: round3(interval_cv),
            mean_size_bytes: round3(sizes.mean),
            size_cv: round3(size_cv),
            external_destination: external,
            start_time: crate::time::iso_utc(t.first_ns),
            duration: round3((t.last_ns - t.first_ns) as f64 / 1e9),
            first_packet: t.first_frame,
            display_filter: format!(
                "{} && {} && {proto_name}.dstport == {port}",
                ip_field(src, "src"),
                ip_field(dst, "dst")
            ),
        }))
    }
}

impl Analyzer for C2BeaconingDetection {
    fn packets(&self) -> Kinds {
        Kinds::TCP | Kinds::UDP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, _meta: &PacketMeta) {
        let (sport, dport, proto) = match (pkt.tcp(), pkt.udp()) {
            (Some(t), _) => (t.src_port, t.dst_port, 6u8),
            (_, Some(u)) => (u.src_port, u.dst_port, 17u8),
            _ => return,
        };
        // The side with the lower port is the service: replies toward an ephemeral port are not
        // beacons, and leaving them out halves the table.
        if sport < dport || MONITORING_PORTS.contains(&dport) {
            return;
        }
        let Some(ip) = pkt.ip() else { return };
        if excluded(ip, self.include_localhost) || (is_internal(ip.src) && is_internal(ip.dst)) {
            return;
        }
        let key = (addr_key(ip.src), addr_key(ip.dst), dport, proto);
        let now = pkt.ts_ns;
        if self.tuples.len() >= MAX_TUPLES && !self.tuples.contains_key(&key) {
            if pkt.number >= self.prune_after {
                self.tuples.retain(|_, t| now - t.last_ns < IDLE_NS);
                self.prune_after = pkt.number + (MAX_TUPLES / 4) as u64;
            }
            if self.tuples.len() >= MAX_TUPLES {
                self.not_tracked += 1;
                return;
            }
        }
        let bytes = u64::from(pkt.wire_len);
        let t = self.tuples.entry(key).or_default();
        if t.packets == 0 {
            t.first_ns = now;
            t.first_frame = pkt.number;
            t.beacon_start_ns = now;
            t.beacons = 1;
        } else if now - t.last_ns >= BEACON_GAP_NS {
            t.intervals.add((now - t.beacon_start_ns) as f64 / 1e9);
            t.sizes.add(t.beacon_bytes as f64);
            t.beacon_bytes = 0;
            t.beacon_start_ns = now;
            t.beacons += 1;
        }
        t.packets += 1;
        t.beacon_bytes += bytes;
        t.last_ns = now;
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut skipped = 0;
        let mut events = Vec::new();
        for (k, t) in &self.tuples {
            match self.event(k, t) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => {}
                Err(()) => skipped += 1,
            }
        }
        worst_first(
            &mut events,
            |e| e.severity,
            |e| e.beacon_count as f64,
            |e| e.first_packet,
        );
        let severity_breakdown = SeverityBreakdown::of(events.iter().map(|e| &e.severity));
        let total = events.len() as u64;
        events.truncate(MAX_FINDINGS);
        report.c2_beaconing_detection = Some(C2BeaconingReport {
            total_beacons_detected: total,
            severity_breakdown,
            beaconing_events: events,
            skipped_periodic: skipped,
            tuples_not_tracked: self.not_tracked,
            detection_thresholds: BeaconThresholds {
                min_beacons: self.min_beacons,
                beacon_gap_seconds: BEACON_GAP_NS as f64 / 1e9,
                min_mean_interval: MIN_MEAN_INTERVAL_S,
                interval_cv_max: INTERVAL_CV_MAX,
                size_cv_max: SIZE_CV_MAX,
                min_score: MIN_SCORE,
                known_heartbeats: HEARTBEATS_S.to_vec(),
                monitoring_ports: MONITORING_PORTS.to_vec(),
            },
        });
    }
}
