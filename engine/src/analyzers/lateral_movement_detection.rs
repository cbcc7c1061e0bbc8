//! `lateral_movement_detection`: an internal host opening administration sessions on other
//! internal hosts (RPC 135, NetBIOS 139, SMB 445, RPC over HTTP 593, RDP 3389, WinRM 5985/5986,
//! SSH 22), the way an intruder spreads after the first foothold (MITRE ATT&CK TA0008).
//!
//! Pure SYNs from internal to internal addresses, per source. Three findings, as in v5:
//! * `multi_target_admin`: at least `lateral_min_targets` distinct targets;
//! * `admin_protocol_spread`: at least 3 distinct administration protocols across at least 2
//!   targets;
//! * `rapid_movement`: at least `lateral_min_targets` new targets within `lateral_window`
//!   seconds (SYNs repeated to one target within 5 s count once, v5's de-duplication).
//!
//! The section lists each kind; the typed findings are one per source, at its worst severity.
//! A source that reached at least [`SWEEP_TARGETS`] targets of which fewer than half answered
//! with a SYN/ACK is sweeping the network for open ports, a port scan (reported by
//! `port_scan_detection`), not moving into hosts: its events are at most low.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::security::{excluded, ip_field, is_internal, worst_first, Severity, SeverityBreakdown};
use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_SYN};
use crate::finding::{Cause, Evidence, Finding};
use crate::flow::{fast_map, table_cap, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round3;
use crate::Options;

const ADMIN_PORTS: [u16; 8] = [135, 139, 445, 593, 3389, 5985, 5986, 22];
/// Targets remembered per source; a source past this is already well over every threshold.
const MAX_TARGETS_PER_SOURCE: usize = 64;
/// Sources followed; past this new sources are not followed.
const MAX_SOURCES: usize = table_cap(1 << 14);
/// v5: SYNs to one target closer than this are one contact.
const DEDUP_NS: i64 = 5_000_000_000;
const MIN_PROTOCOLS: u32 = 3;
const MIN_SPREAD_TARGETS: usize = 2;
/// Targets from which a mostly unanswered source is a sweep.
pub const SWEEP_TARGETS: usize = 10;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LateralEvent {
    pub source_ip: String,
    /// "multi_target_admin", "admin_protocol_spread" or "rapid_movement".
    pub movement_type: String,
    pub severity: Severity,
    pub target_count: u64,
    pub target_ips: Vec<String>,
    pub protocols: Vec<String>,
    /// For rapid movement: targets first contacted within the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets_in_window: Option<u64>,
    pub connection_attempts: u64,
    pub start_time: String,
    pub duration: f64,
    pub first_packet: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LateralThresholds {
    pub min_targets: u64,
    pub time_window: f64,
    pub min_protocols: u32,
    pub admin_ports: Vec<u16>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LateralMovementReport {
    pub total_movements_detected: u64,
    pub severity_breakdown: SeverityBreakdown,
    pub movement_type_breakdown: BTreeMap<String, u64>,
    /// Worst first, at most `MAX_FINDINGS`.
    pub lateral_movement_events: Vec<LateralEvent>,
    pub sources_not_tracked: u64,
    pub detection_thresholds: LateralThresholds,
}

struct Target {
    ip: IpAddr,
    first_ns: i64,
    last_syn_ns: i64,
    /// The target answered with a SYN/ACK from an administration port.
    answered: bool,
}

#[derive(Default)]
struct Source {
    targets: Vec<Target>,
    /// Bit i: ADMIN_PORTS[i] was contacted.
    ports: u8,
    attempts: u64,
    first_ns: i64,
    last_ns: i64,
    first_frame: u64,
}

pub struct LateralMovementDetection {
    min_targets: u64,
    window_ns: i64,
    include_localhost: bool,
    sources: FastMap<IpAddr, Source>,
    not_tracked: u64,
}

fn protocol_name(port: u16) -> &'static str {
    match port {
        135 | 593 => "MSRPC",
        139 => "NetBIOS",
        445 => "SMB",
        3389 => "RDP",
        5985 | 5986 => "WinRM",
        22 => "SSH",
        _ => "other",
    }
}

impl LateralMovementDetection {
    pub fn new(config: &Config, options: &Options) -> Self {
        let t = &config.thresholds;
        LateralMovementDetection {
            min_targets: t.lateral_min_targets,
            window_ns: (t.lateral_window * 1e9) as i64,
            include_localhost: options.include_localhost,
            sources: fast_map(),
            not_tracked: 0,
        }
    }

    fn events(&self, src: IpAddr, s: &Source) -> Vec<LateralEvent> {
        let mut protocols: Vec<String> = Vec::new();
        for (i, p) in ADMIN_PORTS.iter().enumerate() {
            let name = protocol_name(*p).to_string();
            if s.ports & (1 << i) != 0 && !protocols.contains(&name) {
                protocols.push(name);
            }
        }
        let n = s.targets.len() as u64;
        let base = LateralEvent {
            source_ip: src.to_string(),
            target_count: n,
            target_ips: s
                .targets
                .iter()
                .take(10)
                .map(|t| t.ip.to_string())
                .collect(),
            protocols: protocols.clone(),
            connection_attempts: s.attempts,
            start_time: crate::time::iso_utc(s.first_ns),
            duration: round3((s.last_ns - s.first_ns) as f64 / 1e9),
            first_packet: s.first_frame,
            display_filter: format!(
                "{} && tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport in {{{}}}",
                ip_field(src, "src"),
                ADMIN_PORTS.map(|p| p.to_string()).join(" ")
            ),
            ..Default::default()
        };
        let mut out = Vec::new();
        if n >= self.min_targets {
            let severity = match n {
                n if n >= 10 => Severity::Critical,
                n if n >= 5 => Severity::High,
                _ => Severity::Medium,
            };
            out.push(LateralEvent {
                movement_type: "multi_target_admin".into(),
                severity,
                ..base.clone()
            });
        }
        if protocols.len() as u32 >= MIN_PROTOCOLS && s.targets.len() >= MIN_SPREAD_TARGETS {
            let severity = if protocols.len() >= 4 {
                Severity::High
            } else {
                Severity::Medium
            };
            out.push(LateralEvent {
                movement_type: "admin_protocol_spread".into(),
                severity,
                ..base.clone()
            });
        }
        // Most targets whose first contact falls within one window (first contacts are in
        // time order, so a two-pointer sweep finds it).
        let mut best = 0usize;
        let mut lo = 0usize;
        for hi in 0..s.targets.len() {
            while s.targets[hi].first_ns - s.targets[lo].first_ns > self.window_ns {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        if best as u64 >= self.min_targets {
            let severity = if best >= 10 {
                Severity::Critical
            } else {
                Severity::High
            };
            out.push(LateralEvent {
                movement_type: "rapid_movement".into(),
                severity,
                targets_in_window: Some(best as u64),
                ..base
            });
        }
        let answered = s.targets.iter().filter(|t| t.answered).count();
        if s.targets.len() >= SWEEP_TARGETS && answered * 2 < s.targets.len() {
            for e in &mut out {
                e.severity = e.severity.min(Severity::Low);
            }
        }
        out
    }
}

impl Analyzer for LateralMovementDetection {
    fn packets(&self) -> Kinds {
        Kinds::SYN
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, _meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        if !tcp.has(TCP_SYN) {
            return;
        }
        if tcp.has(TCP_ACK) {
            // A SYN/ACK from an administration port answers its destination's attempt.
            if ADMIN_PORTS.contains(&tcp.src_port) {
                if let Some(ip) = pkt.ip() {
                    if let Some(s) = self.sources.get_mut(&ip.dst) {
                        if let Some(t) = s.targets.iter_mut().find(|t| t.ip == ip.src) {
                            t.answered = true;
                        }
                    }
                }
            }
            return;
        }
        let Some(port_bit) = ADMIN_PORTS.iter().position(|p| *p == tcp.dst_port) else {
            return;
        };
        let Some(ip) = pkt.ip() else { return };
        if excluded(ip, self.include_localhost) || !is_internal(ip.src) || !is_internal(ip.dst) {
            return;
        }
        if ip.src == ip.dst {
            return;
        }
        if !self.sources.contains_key(&ip.src) && self.sources.len() >= MAX_SOURCES {
            self.not_tracked += 1;
            return;
        }
        let now = pkt.ts_ns;
        let s = self.sources.entry(ip.src).or_default();
        if s.first_frame == 0 {
            s.first_frame = pkt.number;
            s.first_ns = now;
        }
        s.last_ns = now;
        s.ports |= 1 << port_bit;
        match s.targets.iter_mut().find(|t| t.ip == ip.dst) {
            Some(t) => {
                if now - t.last_syn_ns >= DEDUP_NS {
                    s.attempts += 1;
                }
                t.last_syn_ns = now;
            }
            None => {
                s.attempts += 1;
                if s.targets.len() < MAX_TARGETS_PER_SOURCE {
                    s.targets.push(Target {
                        ip: ip.dst,
                        first_ns: now,
                        last_syn_ns: now,
                        answered: false,
                    });
                }
            }
        }
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut events: Vec<LateralEvent> = self
            .sources
            .iter()
            .flat_map(|(ip, s)| self.events(*ip, s))
            .collect();
        worst_first(
            &mut events,
            |e| e.severity,
            |e| e.target_count as f64,
            |e| e.first_packet,
        );
        let mut movement_type_breakdown = BTreeMap::new();
        for e in &events {
            *movement_type_breakdown
                .entry(e.movement_type.clone())
                .or_insert(0) += 1;
        }
        let severity_breakdown = SeverityBreakdown::of(events.iter().map(|e| &e.severity));
        let total = events.len() as u64;
        events.truncate(MAX_FINDINGS);
        report.findings.extend(findings(&events));
        report.lateral_movement_detection = Some(LateralMovementReport {
            total_movements_detected: total,
            severity_breakdown,
            movement_type_breakdown,
            lateral_movement_events: events,
            sources_not_tracked: self.not_tracked,
            detection_thresholds: LateralThresholds {
                min_targets: self.min_targets,
                time_window: self.window_ns as f64 / 1e9,
                min_protocols: MIN_PROTOCOLS,
                admin_ports: ADMIN_PORTS.to_vec(),
            },
        });
    }
}

/// One typed finding per source, at the worst of its events (they come worst first).
fn findings(events: &[LateralEvent]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for e in events {
        if seen.contains(&e.source_ip.as_str()) {
            continue;
        }
        seen.push(&e.source_ip);
        let kinds: Vec<&str> = events
            .iter()
            .filter(|o| o.source_ip == e.source_ip)
            .map(|o| o.movement_type.as_str())
            .collect();
        let summary = format!(
            "Lateral movement from {}: administration connections ({}) to {} internal hosts in {:.0} s ({})",
            e.source_ip,
            e.protocols.join(", "),
            e.target_count,
            e.duration,
            kinds.join(", ")
        );
        let mut evidence = Evidence::new()
            .with("targets", e.target_count as f64)
            .with("protocols", e.protocols.len() as f64)
            .with("connection_attempts", e.connection_attempts as f64)
            .with("duration_s", e.duration);
        if let Some(w) = events
            .iter()
            .filter(|o| o.source_ip == e.source_ip)
            .find_map(|o| o.targets_in_window)
        {
            evidence = evidence.with("targets_in_window", w as f64);
        }
        let mut hosts = vec![e.source_ip.clone()];
        hosts.extend(e.target_ips.iter().cloned());
        out.push(
            Finding::new("lateral_movement_detection", e.severity, summary)
                .cause(Cause::LateralMovement)
                .evidence(evidence)
                .hosts(hosts)
                .frames([e.first_packet])
                .filter(e.display_filter.clone()),
        );
    }
    out
}
