//! `service_classification`: what each unidirectional TCP/UDP 5-tuple carries. A well-known
//! port decides first (destination port: confidence 1.0, source port: 0.9); otherwise v5's
//! behaviour scores (Moore & Zuev 2005 style features: packet sizes, inter-arrival times,
//! duration, rate) pick VoIP, Streaming, Bulk, Control or Interactive.
//!
//! Fixes over v5: a behaviour label needs a score of at least [`MIN_BEHAVIOUR_CONFIDENCE`] (v5
//! labelled a flow on any score above 0, so a single weak hint such as "50 packets" made a
//! "Streaming" flow); DNS is recognised by its port (v5 looked for a port in a dictionary that
//! never held one, so it always said "Control").
//!
//! Memory: a flow keeps a handful of counters; flows idle for [`crate::flow::DATAGRAM_IDLE_NS`] (UDP) or [`crate::flow::TCP_IDLE_NS`] (TCP) are classified
//! and dropped when the table grows, and only the ranked lists keep per-flow detail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::decode::Packet;
use crate::flow::{Direction, FlowKey, FlowRecord, PerFlow};
use crate::report::{Report, MAX_RANKED};
use crate::stats::{round3, Top};
use crate::Options;

/// Behaviour scores below this leave the flow unclassified.
pub const MIN_BEHAVIOUR_CONFIDENCE: f64 = 0.5;
/// Confidence of a label taken from the destination / source port (v5).
const DST_PORT_CONFIDENCE: f64 = 1.0;
const SRC_PORT_CONFIDENCE: f64 = 0.9;

/// v5's behaviour thresholds (`service_classifier.py`).
const VOIP_SIZE_BYTES: (f64, f64) = (100.0, 300.0);
const VOIP_INTER_ARRIVAL_S: (f64, f64) = (0.01, 0.04);
const VOIP_INTER_ARRIVAL_VARIANCE: f64 = 0.001;
const STREAMING_SIZE_MIN: f64 = 1000.0;
/// v5 compared bytes per second with this value while calling it "1 Mbps".
const STREAMING_BYTES_PER_S_MIN: f64 = 1_000_000.0;
const BULK_SIZE_MIN: f64 = 1200.0;
const BULK_DURATION_MIN_S: f64 = 5.0;
const BULK_BYTES_PER_S_MIN: f64 = 500_000.0;
const CONTROL_SIZE_MAX: f64 = 512.0;
const CONTROL_INTER_ARRIVAL_MIN_S: f64 = 0.5;
const INTERACTIVE_SIZE: (f64, f64) = (200.0, 1200.0);
const INTERACTIVE_DURATION_S: (f64, f64) = (0.1, 30.0);
const INTERACTIVE_PACKETS: (u64, u64) = (5, 100);
const INTERACTIVE_SIZE_VARIANCE_MIN: f64 = 50_000.0;

/// Well-known ports: (port, protocol or 0 for both, service).
const KNOWN_PORTS: &[(u16, u8, &str)] = &[
    (20, 6, "FTP"),
    (21, 6, "FTP"),
    (22, 6, "SSH"),
    (23, 6, "Telnet"),
    (25, 6, "SMTP"),
    (53, 0, "DNS"),
    (67, 17, "DHCP"),
    (68, 17, "DHCP"),
    (80, 6, "HTTP"),
    (110, 6, "POP3"),
    (123, 17, "NTP"),
    (143, 6, "IMAP"),
    (161, 17, "SNMP"),
    (162, 17, "SNMP"),
    (389, 0, "LDAP"),
    (443, 6, "HTTPS"),
    (443, 17, "QUIC"),
    (445, 6, "SMB"),
    (465, 6, "SMTP"),
    (514, 17, "Syslog"),
    (587, 6, "SMTP"),
    (636, 6, "LDAP"),
    (853, 0, "DNS"),
    (993, 6, "IMAP"),
    (995, 6, "POP3"),
    (1433, 6, "MSSQL"),
    (1883, 6, "MQTT"),
    (3306, 6, "MySQL"),
    (3389, 0, "RDP"),
    (5060, 0, "SIP"),
    (5353, 17, "mDNS"),
    (5432, 6, "PostgreSQL"),
    (5671, 6, "RabbitMQ"),
    (5672, 6, "RabbitMQ"),
    (6379, 6, "Redis"),
    (8000, 6, "HTTP"),
    (8080, 6, "HTTP"),
    (8443, 6, "HTTPS"),
    (9092, 6, "Kafka"),
    (9200, 6, "Elasticsearch"),
    (9300, 6, "Elasticsearch"),
    (11211, 0, "Memcached"),
    (15672, 6, "RabbitMQ"),
    (27017, 6, "MongoDB"),
];

fn known_port(port: u16, proto: u8) -> Option<&'static str> {
    KNOWN_PORTS
        .iter()
        .find(|(p, pr, _)| *p == port && (*pr == 0 || *pr == proto))
        .map(|(_, _, s)| *s)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClassifiedFlow {
    pub flow: String,
    pub src: String,
    pub dst: String,
    pub protocol: String,
    pub service_type: String,
    /// "port" or "behaviour".
    pub method: String,
    pub confidence: f64,
    pub reasons: Vec<String>,
    pub packet_count: u64,
    pub bytes: u64,
    pub avg_packet_size: f64,
    pub flow_duration: f64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceTotals {
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClassificationSummary {
    pub total_flows: u64,
    pub classified_count: u64,
    pub unclassified_count: u64,
    /// Percent.
    pub classification_rate: f64,
    pub classified_by_port: u64,
    pub classified_by_behaviour: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceClassificationReport {
    pub total_flows: u64,
    /// Flows per service.
    pub service_classifications: BTreeMap<String, u64>,
    pub service_statistics: BTreeMap<String, ServiceTotals>,
    pub classification_summary: ClassificationSummary,
    /// The largest classified flows (by bytes).
    pub classified_flows: Vec<ClassifiedFlow>,
    /// The largest flows nothing recognised.
    pub unknown_flows: Vec<ClassifiedFlow>,
}

type Key = (FlowKey, Direction);

#[derive(Debug, Clone, Copy)]
struct FlowState {
    first_ns: i64,
    last_ns: i64,
    packets: u64,
    bytes: u64,
    size_sum_sq: f64,
    gap_sum_s: f64,
    gap_sum_sq: f64,
}

/// Features of a finished flow (v5's `_calculate_flow_statistics`).
#[derive(Debug, Clone, Copy)]
struct Features {
    tcp: bool,
    packets: u64,
    duration: f64,
    avg_size: f64,
    size_variance: f64,
    avg_gap: f64,
    gap_variance: f64,
    bytes_per_s: f64,
}

fn sample_variance(n: u64, sum: f64, sum_sq: f64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let n = n as f64;
    ((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0)
}

impl Features {
    fn of(f: &FlowState, tcp: bool) -> Self {
        let duration = (f.last_ns - f.first_ns).max(0) as f64 / 1e9;
        let gaps = f.packets.saturating_sub(1);
        Features {
            tcp,
            packets: f.packets,
            duration,
            avg_size: f.bytes as f64 / f.packets.max(1) as f64,
            size_variance: sample_variance(f.packets, f.bytes as f64, f.size_sum_sq),
            avg_gap: if gaps > 0 {
                f.gap_sum_s / gaps as f64
            } else {
                0.0
            },
            gap_variance: sample_variance(gaps, f.gap_sum_s, f.gap_sum_sq),
            bytes_per_s: if duration > 0.0 {
                f.bytes as f64 / duration
            } else {
                0.0
            },
        }
    }
}

fn between(v: f64, (lo, hi): (f64, f64)) -> bool {
    lo <= v && v <= hi
}

/// v5's behaviour scores, best first on ties in v5's order.
fn behaviour(x: &Features) -> Option<(&'static str, f64, &'static [&'static str])> {
    let mut best: Option<(&'static str, f64, &'static [&'static str])> = None;
    let mut consider = |name: &'static str, score: f64, reasons: &'static [&'static str]| {
        if score > best.as_ref().map(|b| b.1).unwrap_or(0.0) {
            best = Some((name, score, reasons));
        }
    };
    if !x.tcp {
        let mut s = 0.0;
        if between(x.avg_size, VOIP_SIZE_BYTES) {
            s += 0.4;
        }
        if x.avg_gap > 0.0 && between(x.avg_gap, VOIP_INTER_ARRIVAL_S) {
            s += 0.3;
            if x.gap_variance < VOIP_INTER_ARRIVAL_VARIANCE {
                s += 0.2;
            }
        }
        if x.packets >= 20 {
            s += 0.1;
        }
        consider("VoIP", s, &["small packets", "constant rate", "UDP"]);
    }
    let mut s = 0.0;
    if x.avg_size >= STREAMING_SIZE_MIN {
        s += 0.4;
    }
    if x.bytes_per_s >= STREAMING_BYTES_PER_S_MIN {
        s += 0.3;
    }
    if x.duration >= 2.0 {
        s += 0.2;
    }
    if x.packets >= 50 {
        s += 0.1;
    }
    consider("Streaming", s, &["large packets", "sustained throughput"]);
    if x.tcp {
        let mut s = 0.0;
        if x.avg_size >= BULK_SIZE_MIN {
            s += 0.4;
        }
        if x.duration >= BULK_DURATION_MIN_S {
            s += 0.3;
        }
        if x.packets >= 100 {
            s += 0.2;
        }
        if x.bytes_per_s >= BULK_BYTES_PER_S_MIN {
            s += 0.1;
        }
        consider("Bulk", s, &["large packets", "long duration", "TCP"]);
    } else {
        let mut s = 0.0;
        if x.avg_size <= CONTROL_SIZE_MAX {
            s += 0.4;
        }
        if x.avg_gap >= CONTROL_INTER_ARRIVAL_MIN_S {
            s += 0.3;
        }
        if x.packets < 50 {
            s += 0.2;
        }
        if x.duration < 10.0 || x.packets < 10 {
            s += 0.1;
        }
        consider("Control", s, &["small packets", "sporadic", "UDP"]);
    }
    if x.tcp {
        let mut s = 0.0;
        if between(x.avg_size, INTERACTIVE_SIZE) {
            s += 0.3;
        }
        if between(x.duration, INTERACTIVE_DURATION_S) {
            s += 0.2;
        }
        if (INTERACTIVE_PACKETS.0..=INTERACTIVE_PACKETS.1).contains(&x.packets) {
            s += 0.3;
        }
        if x.size_variance > INTERACTIVE_SIZE_VARIANCE_MIN {
            s += 0.2;
        }
        consider("Interactive", s, &["moderate size", "TCP"]);
    }
    best.filter(|b| b.1 >= MIN_BEHAVIOUR_CONFIDENCE - 1e-9)
}

/// Service, method, confidence, reasons.
type Label = (&'static str, &'static str, f64, &'static [&'static str]);

/// A finished flow kept for the ranked lists (no strings until the report is written).
#[derive(Debug, Clone)]
struct Closed {
    key: Key,
    state: FlowState,
    service: Option<Label>,
}

pub struct ServiceClassification {
    /// Per flow-table slot and direction: no hash lookup per packet.
    flows: PerFlow<FlowState>,
    total: u64,
    by_port: u64,
    by_behaviour: u64,
    services: BTreeMap<&'static str, ServiceTotals>,
    classified: Top<Closed>,
    unknown: Top<Closed>,
}

impl ServiceClassification {
    pub fn new(_options: &Options) -> Self {
        ServiceClassification {
            flows: PerFlow::default(),
            total: 0,
            by_port: 0,
            by_behaviour: 0,
            services: BTreeMap::new(),
            classified: Top::new(MAX_RANKED, largest_first),
            unknown: Top::new(MAX_RANKED, largest_first),
        }
    }

    fn close(&mut self, key: Key, f: FlowState) {
        self.total += 1;
        let (k, dir) = key;
        let (_, sport, _, dport) = k.oriented(dir);
        let tcp = k.proto == 6;
        let service: Option<Label> = if let Some(s) = known_port(dport, k.proto) {
            self.by_port += 1;
            Some((s, "port", DST_PORT_CONFIDENCE, &["destination port"]))
        } else if let Some(s) = known_port(sport, k.proto) {
            self.by_port += 1;
            Some((s, "port", SRC_PORT_CONFIDENCE, &["source port"]))
        } else if let Some((s, c, r)) = behaviour(&Features::of(&f, tcp)) {
            self.by_behaviour += 1;
            Some((s, "behaviour", c, r))
        } else {
            None
        };
        let name = service.as_ref().map(|s| s.0).unwrap_or("Unknown");
        let t = self.services.entry(name).or_default();
        t.flows += 1;
        t.packets += f.packets;
        t.bytes += f.bytes;
        let list = if service.is_some() {
            &mut self.classified
        } else {
            &mut self.unknown
        };
        list.push(Closed {
            key,
            state: f,
            service,
        });
    }

    fn close_both(&mut self, key: FlowKey, states: [Option<FlowState>; 2]) {
        for (dir, state) in [Direction::AtoB, Direction::BtoA].into_iter().zip(states) {
            if let Some(f) = state {
                self.close((key, dir), f);
            }
        }
    }
}

/// Most bytes first, then earliest.
fn largest_first(a: &Closed, b: &Closed) -> std::cmp::Ordering {
    b.state
        .bytes
        .cmp(&a.state.bytes)
        .then(a.state.first_ns.cmp(&b.state.first_ns))
}

fn to_report(c: &Closed) -> ClassifiedFlow {
    let (k, dir) = c.key;
    let (src, sport, dst, dport) = k.oriented(dir);
    let proto = if k.proto == 6 { "tcp" } else { "udp" };
    let ipf = if src.is_ipv6() { "ipv6" } else { "ip" };
    let (s, d) = k.endpoints(dir);
    let f = &c.state;
    let (service, method, confidence, reasons) = match &c.service {
        Some((s, m, conf, r)) => (*s, *m, *conf, r.iter().map(|r| r.to_string()).collect()),
        None => ("Unknown", "", 0.0, Vec::new()),
    };
    ClassifiedFlow {
        flow: format!("{s} -> {d} ({})", proto.to_uppercase()),
        src: s,
        dst: d,
        protocol: proto.to_uppercase(),
        service_type: service.to_string(),
        method: method.to_string(),
        confidence: round3(confidence),
        reasons,
        packet_count: f.packets,
        bytes: f.bytes,
        avg_packet_size: round3(f.bytes as f64 / f.packets.max(1) as f64),
        flow_duration: round3((f.last_ns - f.first_ns).max(0) as f64 / 1e9),
        display_filter: format!(
            "{ipf}.src == {src} && {proto}.srcport == {sport} && {ipf}.dst == {dst} && {proto}.dstport == {dport}"
        ),
    }
}

impl Analyzer for ServiceClassification {
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
        if pkt.tcp().is_none() && pkt.udp().is_none() {
            return;
        }
        let ts = pkt.ts_ns;
        let size = f64::from(pkt.wire_len);
        let Some(state) = self.flows.direction(meta) else {
            return;
        };
        match state {
            Some(f) => {
                let gap = ts.saturating_sub(f.last_ns).max(0) as f64 / 1e9;
                f.gap_sum_s += gap;
                f.gap_sum_sq += gap * gap;
                f.packets += 1;
                f.bytes += u64::from(pkt.wire_len);
                f.size_sum_sq += size * size;
                f.last_ns = f.last_ns.max(ts);
            }
            None => {
                *state = Some(FlowState {
                    first_ns: ts,
                    last_ns: ts,
                    packets: 1,
                    bytes: u64::from(pkt.wire_len),
                    size_sum_sq: size * size,
                    gap_sum_s: 0.0,
                    gap_sum_sq: 0.0,
                });
            }
        }
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
        let (classified, unknown) = (self.classified.take_sorted(), self.unknown.take_sorted());
        let classified_count = self.by_port + self.by_behaviour;
        report.service_classification = Some(ServiceClassificationReport {
            total_flows: self.total,
            service_classifications: self
                .services
                .iter()
                .map(|(k, v)| (k.to_string(), v.flows))
                .collect(),
            service_statistics: self
                .services
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            classification_summary: ClassificationSummary {
                total_flows: self.total,
                classified_count,
                unclassified_count: self.total - classified_count,
                classification_rate: round3(
                    classified_count as f64 * 100.0 / self.total.max(1) as f64,
                ),
                classified_by_port: self.by_port,
                classified_by_behaviour: self.by_behaviour,
            },
            classified_flows: classified.iter().map(to_report).collect(),
            unknown_flows: unknown.iter().map(to_report).collect(),
        });
    }
}
