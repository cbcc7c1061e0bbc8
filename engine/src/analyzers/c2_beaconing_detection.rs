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
//!
//! Beacons inside one long-lived TCP session (new, `beacon_type` "in_session"): an implant that
//! keeps its connection open checks in with a small data segment at a steady interval, which the
//! tuple view above cannot see (one connection, ACKs in between). Per TCP flow, from its client
//! side (the higher port; with equal ports, the side that sent data first), a beacon is a burst of data segments of at most
//! [`MAX_BEACON_BYTES`] payload after at least [`BEACON_GAP_NS`] without data from that side
//! (not the first burst: that is the session's greeting or login);
//! pure ACKs and keep-alives (0 or 1 byte) are not data, retransmissions are not counted, larger
//! bursts (uploads) are not beacons. Internal pairs count (an internal controller is common), the
//! heartbeat rule does not apply (implants use round intervals), but a flow whose check-ins are
//! mostly answered with data within [`REPLY_NS`] is a request/response keep-alive of the
//! application and is set aside. Same score, +10 when interval and size CVs are both at most
//! [`VERY_REGULAR_CV`]. A session lives as long as its flow: when the flow ends, only a session
//! with enough beacons to be reported is kept, so memory follows the live flows.
//!
//! Never beacons, in either view: group destinations (multicast, broadcast: SSDP, mDNS, NetBIOS
//! announcements) and the monitoring ports (DNS, NTP...) on either side.

use serde::{Deserialize, Serialize};

use super::security::{
    addr_key, excluded, ip_field, is_group, is_internal, key_addr, worst_first, Severity,
    SeverityBreakdown,
};
use super::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::config::Config;
use crate::decode::{Packet, TcpInfo};
use crate::finding::{Cause, Evidence, Finding, MAX_FINDING_FRAMES};
use crate::flow::{fast_map, FastMap, FlowRecord, PerSlot};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round3;
use crate::Options;

/// Silence that separates two beacons on one tuple.
pub const BEACON_GAP_NS: i64 = 1_000_000_000;
/// v5: shorter mean intervals are interactive traffic, not beacons.
const MIN_MEAN_INTERVAL_S: f64 = 2.0;
/// v5's common heartbeats and its ±20 % tolerance.
const HEARTBEATS_S: [f64; 8] = [1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0, 60.0];
const HEARTBEAT_TOLERANCE: f64 = 0.2;
/// DNS, DHCP, NTP, SNMP, syslog, mDNS, LLMNR, SSDP, WS-Discovery, NetBIOS, Nagios NRPE, node
/// exporter, Zabbix.
const MONITORING_PORTS: [u16; 17] = [
    53, 67, 68, 123, 137, 138, 161, 162, 514, 1900, 3702, 5353, 5355, 5666, 9100, 10050, 10051,
];
const INTERVAL_CV_MAX: f64 = 0.3;
const SIZE_CV_MAX: f64 = 0.2;
const MANY_BEACONS: u64 = 20;
const MIN_SCORE: u32 = 60;
/// Tuples followed; past this, tuples silent for [`IDLE_NS`] are dropped, then new tuples are
/// not followed.
const MAX_TUPLES: usize = 50_000;
const IDLE_NS: i64 = 600 * 1_000_000_000;
/// In-session beacons: the most payload bytes of one check-in burst.
pub const MAX_BEACON_BYTES: u64 = 256;
/// Data from the peer this soon after a check-in answers it.
pub const REPLY_NS: i64 = 1_000_000_000;
/// Both CVs at most this: a machine's clock, not a person.
pub const VERY_REGULAR_CV: f64 = 0.05;

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
    /// "connections" (bursts on a tuple) or "in_session" (check-ins inside one TCP session).
    pub beacon_type: String,
    /// In-session beacons: check-ins answered with data by the peer (a keep-alive exchange).
    pub answered_beacons: u64,
    /// Frames of the first beacons.
    pub beacon_frames: Vec<u64>,
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

/// Check-ins of one TCP flow from its client side.
#[derive(Default, Clone)]
struct Session {
    /// The client's side of the flow (`Direction::index`).
    client: usize,
    first_ns: i64,
    first_frame: u64,
    /// Last data segment from the client side.
    last_data_ns: i64,
    burst_start_ns: i64,
    burst_frame: u64,
    burst_bytes: u64,
    burst_answered: bool,
    /// Bursts ended so far (the first, the session's greeting or login, is never a beacon).
    bursts: u64,
    /// Start of the previous beacon.
    prev_beacon_ns: Option<i64>,
    beacons: u64,
    answered: u64,
    data_packets: u64,
    intervals: Welford,
    sizes: Welford,
    frames: Vec<u64>,
}

impl Session {
    /// Ends the open burst: a beacon when it was small.
    fn close_burst(&mut self) {
        if self.burst_bytes == 0 {
            return;
        }
        self.bursts += 1;
        if self.bursts > 1 && self.burst_bytes <= MAX_BEACON_BYTES {
            if let Some(prev) = self.prev_beacon_ns {
                self.intervals
                    .add((self.burst_start_ns - prev) as f64 / 1e9);
            }
            self.sizes.add(self.burst_bytes as f64);
            self.prev_beacon_ns = Some(self.burst_start_ns);
            self.beacons += 1;
            if self.burst_answered {
                self.answered += 1;
            }
            if self.frames.len() < MAX_FINDING_FRAMES {
                self.frames.push(self.burst_frame);
            }
        }
        self.burst_bytes = 0;
        self.burst_answered = false;
    }
}

/// (client, server, client port, server port).
type SessionKey = (u128, u128, u16, u16);

/// The key of a flow's session, from its flow record.
fn session_key(flow: &FlowRecord, s: &Session) -> SessionKey {
    let k = &flow.key;
    let (a, b) = (addr_key(k.a), addr_key(k.b));
    if s.client == 0 {
        (a, b, k.a_port, k.b_port)
    } else {
        (b, a, k.b_port, k.a_port)
    }
}

pub struct C2BeaconingDetection {
    min_beacons: u64,
    include_localhost: bool,
    tuples: FastMap<(u128, u128, u16, u8), Tuple>,
    /// The live flows' sessions.
    sessions: PerSlot<Session>,
    /// Sessions of ended flows with enough beacons to be reported.
    ended: Vec<(SessionKey, Session)>,
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
            sessions: PerSlot::default(),
            ended: Vec::new(),
            not_tracked: 0,
            prune_after: 0,
        }
    }

    /// Follows the data segments of a TCP flow for in-session beacons.
    fn on_session_packet(&mut self, tcp: &TcpInfo, pkt: &Packet<'_>, meta: &PacketMeta) {
        let now = pkt.ts_ns;
        let Some((_, dir)) = meta.flow else { return };
        if tcp.seg_len == 0 {
            return;
        }
        let dir = dir.index();
        let from_client = match tcp.src_port.cmp(&tcp.dst_port) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                self.sessions.get_mut(meta).is_none_or(|s| s.client == dir)
            }
        };
        if !from_client {
            // From the server side: data soon after a check-in answers it.
            if let Some(s) = self.sessions.get_mut(meta) {
                if s.burst_bytes > 0 && now - s.last_data_ns <= REPLY_NS {
                    s.burst_answered = true;
                }
            }
            return;
        }
        if tcp.seg_len < 2 {
            return;
        }
        let new = || Session {
            client: dir,
            ..Session::default()
        };
        let Some(s) = self.sessions.get_or_insert_with(meta, new) else {
            return;
        };
        if s.data_packets == 0 {
            s.first_ns = now;
            s.first_frame = pkt.number;
        }
        if s.data_packets == 0 || now - s.last_data_ns >= BEACON_GAP_NS {
            s.close_burst();
            s.burst_start_ns = now;
            s.burst_frame = pkt.number;
        }
        s.data_packets += 1;
        s.burst_bytes += u64::from(tcp.seg_len);
        s.last_data_ns = now;
    }

    /// Keeps a session of a flow that ended when it has enough beacons to be reported.
    fn end_session(&mut self, flow: &FlowRecord, mut s: Session) {
        s.close_burst();
        if s.beacons >= self.min_beacons {
            self.ended.push((session_key(flow, &s), s));
        }
    }

    /// The in-session event of a flow, `Err(())` when it is a keep-alive exchange.
    fn session_event(&self, key: &SessionKey, s: &Session) -> Result<Option<BeaconEvent>, ()> {
        let mut s = s.clone();
        s.close_burst();
        if s.beacons < self.min_beacons || s.intervals.mean < MIN_MEAN_INTERVAL_S {
            return Ok(None);
        }
        if s.answered * 2 > s.beacons {
            return Err(());
        }
        let (interval_cv, size_cv) = (s.intervals.cv(), s.sizes.cv());
        let (src, dst, sport, dport) = *key;
        let (src, dst) = (key_addr(src), key_addr(dst));
        let external = !is_internal(dst);
        let mut score = 0;
        if interval_cv <= INTERVAL_CV_MAX {
            score += 40;
        }
        if size_cv <= SIZE_CV_MAX {
            score += 30;
        }
        if interval_cv <= VERY_REGULAR_CV && size_cv <= VERY_REGULAR_CV {
            score += 10;
        }
        if s.beacons >= MANY_BEACONS {
            score += 20;
        }
        if external {
            score += 10;
        }
        if score < MIN_SCORE {
            return Ok(None);
        }
        Ok(Some(BeaconEvent {
            source_ip: src.to_string(),
            destination_ip: dst.to_string(),
            destination_port: dport,
            protocol: "TCP".to_string(),
            severity: severity_of(score),
            score,
            beacon_count: s.beacons,
            packet_count: s.data_packets,
            mean_interval: round3(s.intervals.mean),
            interval_cv: round3(interval_cv),
            mean_size_bytes: round3(s.sizes.mean),
            size_cv: round3(size_cv),
            external_destination: external,
            beacon_type: "in_session".to_string(),
            answered_beacons: s.answered,
            beacon_frames: s.frames.clone(),
            start_time: crate::time::iso_utc(s.first_ns),
            duration: round3((s.last_data_ns - s.first_ns) as f64 / 1e9),
            first_packet: s.first_frame,
            display_filter: format!(
                "{} && {} && tcp.srcport == {sport} && tcp.dstport == {dport} && tcp.len > 1",
                ip_field(src, "src"),
                ip_field(dst, "dst")
            ),
        }))
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
        let severity = severity_of(score);
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
            beacon_type: "connections".to_string(),
            answered_beacons: 0,
            beacon_frames: vec![t.first_frame],
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

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let (sport, dport, proto) = match (pkt.tcp(), pkt.udp()) {
            (Some(t), _) => (t.src_port, t.dst_port, 6u8),
            (_, Some(u)) => (u.src_port, u.dst_port, 17u8),
            _ => return,
        };
        if MONITORING_PORTS.contains(&dport) || MONITORING_PORTS.contains(&sport) {
            return;
        }
        let Some(ip) = pkt.ip() else { return };
        if excluded(ip, self.include_localhost) || is_group(ip.dst) || is_group(ip.src) {
            return;
        }
        if let Some(tcp) = pkt.tcp() {
            if !meta.tcp.is_retransmission() {
                self.on_session_packet(tcp, pkt, meta);
            }
        }
        // The side with the lower port is the service: replies toward an ephemeral port are not
        // beacons, and leaving them out halves the table.
        if sport < dport || (is_internal(ip.src) && is_internal(ip.dst)) {
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

    fn prefetches(&self) -> Prefetch {
        Prefetch::Near
    }

    fn prefetch(&self, ahead: &PacketMeta) {
        self.sessions.prefetch(ahead);
    }

    fn prefetch_end(&self, ending: &FlowRecord) {
        self.sessions.prefetch_slot(ending.slot);
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        if let Some(s) = self.sessions.take(flow.slot) {
            self.end_session(flow, s);
        }
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        for (flow, s) in self.sessions.drain_live(end.flows) {
            self.end_session(flow, s);
        }
        let mut skipped = 0;
        let mut events = Vec::new();
        for (k, s) in &self.ended {
            match self.session_event(k, s) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => {}
                Err(()) => skipped += 1,
            }
        }
        for (k, t) in &self.tuples {
            match self.event(k, t) {
                // A tuple whose beacons were found inside its session is reported once.
                Ok(Some(e))
                    if events.iter().any(|s| {
                        s.source_ip == e.source_ip
                            && s.destination_ip == e.destination_ip
                            && s.destination_port == e.destination_port
                    }) => {}
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
        report.findings.extend(events.iter().map(finding));
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

fn severity_of(score: u32) -> Severity {
    match score {
        s if s >= 90 => Severity::Critical,
        s if s >= 80 => Severity::High,
        s if s >= 70 => Severity::Medium,
        _ => Severity::Low,
    }
}

/// The typed finding of one beaconing host.
fn finding(e: &BeaconEvent) -> Finding {
    let how = if e.beacon_type == "in_session" {
        "check-ins inside one TCP session"
    } else {
        "connections"
    };
    let summary = format!(
        "{} beacons to {}:{} ({}, {how}): {} beacons every {:.1} s (interval CV {:.2}), {:.0} bytes each (size CV {:.2})",
        e.source_ip,
        e.destination_ip,
        e.destination_port,
        e.protocol,
        e.beacon_count,
        e.mean_interval,
        e.interval_cv,
        e.mean_size_bytes,
        e.size_cv
    );
    let evidence = Evidence::new()
        .with("beacons", e.beacon_count as f64)
        .with("mean_interval_s", e.mean_interval)
        .with("interval_cv", e.interval_cv)
        .with("mean_size_bytes", e.mean_size_bytes)
        .with("size_cv", e.size_cv)
        .with("score", e.score)
        .with("external", u8::from(e.external_destination));
    Finding::new("c2_beaconing_detection", e.severity, summary)
        .cause(Cause::C2Beaconing)
        .evidence(evidence)
        .hosts([e.source_ip.clone(), e.destination_ip.clone()])
        .frames(e.beacon_frames.iter().copied())
        .filter(e.display_filter.clone())
}
