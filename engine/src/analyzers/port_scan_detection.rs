//! `port_scan_detection`: sources that send pure SYNs (RFC 9293 connection requests) to many
//! ports or many hosts, most of which never answer with a SYN/ACK.
//!
//! Attempts are counted per source in windows of `port_scan_time_window` seconds (v5 declared
//! the window but counted the whole capture as one). In a window with at least 5 attempts and a
//! non-zero duration: vertical = ≥ `port_scan_vertical_threshold` ports of ≤ 3 hosts (one host,
//! many ports), horizontal = ≥ `port_scan_horizontal_threshold` hosts on ≤ 3 ports (one port,
//! many hosts), distributed = both. (v5 had the two names the other way round.) A failure
//! rate (SYNs without SYN/ACK) above `port_scan_failure_rate` or more than `port_scan_rate`
//! attempts per second raises the severity, as in v5.
//!
//! Differences from v5, on purpose: private↔private traffic is scanned too (v5 skipped it and so
//! missed every internal scan); a window where at least half of the SYNs were answered is a busy
//! client (a browser opening 30 connections), not a scan; retransmitted SYNs are not new attempts.
//! Consecutive scanning windows of one source make one event. The ports that answered with a
//! SYN/ACK (open) are listed with the event and in its finding.
//!
//! Probes of one host by many sources (`inbound_distributed`, new): at least
//! [`INBOUND_MIN_SOURCES`] sources sending SYNs to at least [`INBOUND_MIN_PORTS`] of its ports,
//! most never answered with a SYN/ACK (worms and scanners sweeping the Internet for backdoor
//! ports). Low, or medium when the sources are at least [`INBOUND_MANY_SOURCES`]: it is the
//! background of any host on the Internet, and says the host is exposed, not compromised.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::security::{excluded, ip_field, worst_first, Severity, SeverityBreakdown};
use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_SYN};
use crate::finding::{Cause, Evidence, Finding};
use crate::flow::{fast_map, table_cap, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round3;
use crate::Options;

/// Sources followed at once; past this, sources idle for a whole window are closed and dropped,
/// and if none is idle new sources are counted but not followed.
const MAX_SOURCES: usize = table_cap(1 << 16);
/// (source, port) and (source, target) pairs remembered to count distinct ones per window;
/// past this, pairs of closed windows are forgotten.
const MAX_DISTINCT_PAIRS: usize = table_cap(1 << 18);
/// v5: fewer attempts than this are never a scan.
const MIN_ATTEMPTS: u64 = 5;
/// "Few" targets (horizontal) or ports (vertical), v5's 3.
const FEW: u64 = 3;
/// Below this failure rate a window is ordinary client traffic, whatever its fan-out.
const MIN_FAILURE_RATE: f64 = 0.5;
const SAMPLE_TARGETS: usize = 10;
const SAMPLE_PORTS: usize = 20;
/// Open ports (SYN/ACK answered) listed per event.
const MAX_OPEN: usize = 50;
/// Probed hosts followed for inbound distributed probes; past this, new hosts are not.
const MAX_PROBED: usize = table_cap(1 << 14);
/// Distinct sources and ports remembered per probed host.
const MAX_PROBE_SET: usize = 64;
pub const INBOUND_MIN_SOURCES: usize = 10;
pub const INBOUND_MIN_PORTS: usize = 5;
pub const INBOUND_MANY_SOURCES: usize = 50;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScanEvent {
    pub source_ip: String,
    /// "horizontal", "vertical" or "distributed".
    pub scan_type: String,
    pub severity: Severity,
    pub start_time: String,
    pub duration: f64,
    /// Most distinct targets in one window.
    pub unique_targets: u64,
    /// Most distinct ports in one window.
    pub unique_ports: u64,
    pub total_attempts: u64,
    pub failed_attempts: u64,
    pub success_rate: f64,
    /// Attempts per second.
    pub scan_rate: f64,
    pub windows_flagged: u64,
    pub target_ips: Vec<String>,
    pub target_ports: Vec<u16>,
    /// Ports that answered with a SYN/ACK, ascending (`target:port` in `open_services`).
    pub open_ports: Vec<u16>,
    pub open_services: Vec<String>,
    /// Frames of the first SYN/ACKs of open ports.
    pub open_frames: Vec<u64>,
    pub first_packet: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PortScanThresholds {
    pub horizontal_threshold: u64,
    pub vertical_threshold: u64,
    pub time_window: f64,
    pub failure_rate_threshold: f64,
    pub scan_rate_threshold: f64,
    pub min_attempts: u64,
    pub min_failure_rate: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PortScanReport {
    pub total_scans_detected: u64,
    pub severity_breakdown: SeverityBreakdown,
    pub scan_type_breakdown: BTreeMap<String, u64>,
    /// Worst first, at most `MAX_FINDINGS`.
    pub scan_events: Vec<ScanEvent>,
    /// Distinct sources that sent pure SYNs.
    pub sources_tracked: u64,
    /// Sources not followed because the table was full of active ones.
    pub sources_not_tracked: u64,
    pub detection_thresholds: PortScanThresholds,
}

#[derive(Default)]
struct Window {
    id: u32,
    start_ns: i64,
    last_ns: i64,
    first_frame: u64,
    attempts: u64,
    answered: u64,
    targets: u64,
    ports: u64,
    sample_targets: Vec<IpAddr>,
    sample_ports: Vec<u16>,
}

struct Found {
    scan_type: &'static str,
    severity: Severity,
    start_ns: i64,
    end_ns: i64,
    first_frame: u64,
    attempts: u64,
    failed: u64,
    targets: u64,
    ports: u64,
    windows: u64,
    sample_targets: Vec<IpAddr>,
    sample_ports: Vec<u16>,
}

/// (target, port, frame of the first SYN/ACK) of the ports that answered a source.
type OpenPorts = Vec<(IpAddr, u16, u64)>;

#[derive(Default)]
struct Source {
    w: Window,
    found: Option<Found>,
    open: OpenPorts,
}

/// SYNs toward one host from any source.
#[derive(Default)]
struct Probed {
    sources: Vec<IpAddr>,
    ports: Vec<u16>,
    syns: u64,
    answered: u64,
    first_ns: i64,
    last_ns: i64,
    first_frame: u64,
}

pub struct PortScanDetection {
    horizontal: u64,
    vertical: u64,
    window_ns: i64,
    failure_rate: f64,
    scan_rate: f64,
    include_localhost: bool,
    sources: FastMap<IpAddr, Source>,
    ports_seen: FastMap<(IpAddr, u16), u32>,
    targets_seen: FastMap<(IpAddr, IpAddr), u32>,
    next_window: u32,
    not_tracked: u64,
    sources_seen: u64,
    done: Vec<(IpAddr, Found, OpenPorts)>,
    probed: FastMap<IpAddr, Probed>,
}

impl PortScanDetection {
    pub fn new(config: &Config, options: &Options) -> Self {
        let t = &config.thresholds;
        PortScanDetection {
            horizontal: t.port_scan_horizontal_threshold,
            vertical: t.port_scan_vertical_threshold,
            window_ns: (t.port_scan_time_window * 1e9) as i64,
            failure_rate: t.port_scan_failure_rate,
            scan_rate: t.port_scan_rate,
            include_localhost: options.include_localhost,
            sources: fast_map(),
            ports_seen: fast_map(),
            targets_seen: fast_map(),
            next_window: 1,
            not_tracked: 0,
            sources_seen: 0,
            done: Vec::new(),
            probed: fast_map(),
        }
    }

    /// Classifies a finished window and folds it into the source's event.
    fn close_window(&self, s: &mut Source) {
        let w = std::mem::take(&mut s.w);
        let duration_s = (w.last_ns - w.start_ns) as f64 / 1e9;
        if w.attempts < MIN_ATTEMPTS || duration_s <= 0.0 {
            return;
        }
        let failed = w.attempts - w.answered.min(w.attempts);
        let failure = failed as f64 / w.attempts as f64;
        if failure < MIN_FAILURE_RATE {
            return;
        }
        let (scan_type, mut severity) = if w.ports >= self.vertical && w.targets <= FEW {
            let sev = match w.ports {
                p if p > 50 => Severity::Critical,
                p if p > 25 => Severity::High,
                p if p > 15 => Severity::Medium,
                _ => Severity::Low,
            };
            ("vertical", sev)
        } else if w.targets >= self.horizontal && w.ports <= FEW {
            let sev = match w.targets {
                t if t > 50 => Severity::Critical,
                t if t > 20 => Severity::High,
                t if t > 10 => Severity::Medium,
                _ => Severity::Low,
            };
            ("horizontal", sev)
        } else if w.ports >= self.vertical && w.targets >= self.horizontal {
            ("distributed", Severity::High)
        } else {
            return;
        };
        // v5's bumps: failure raises low→medium→high; rate raises low/medium→high, high→critical.
        if failure > self.failure_rate && severity <= Severity::Medium {
            severity = severity.bump();
        }
        if w.attempts as f64 / duration_s > self.scan_rate {
            severity = if severity <= Severity::Medium {
                Severity::High
            } else {
                Severity::Critical
            };
        }
        match &mut s.found {
            Some(f) => {
                f.end_ns = w.last_ns;
                f.attempts += w.attempts;
                f.failed += failed;
                f.windows += 1;
                if severity > f.severity {
                    f.severity = severity;
                    f.scan_type = scan_type;
                }
                if w.targets + w.ports > f.targets + f.ports {
                    f.sample_targets = w.sample_targets;
                    f.sample_ports = w.sample_ports;
                }
                f.targets = f.targets.max(w.targets);
                f.ports = f.ports.max(w.ports);
            }
            None => {
                s.found = Some(Found {
                    scan_type,
                    severity,
                    start_ns: w.start_ns,
                    end_ns: w.last_ns,
                    first_frame: w.first_frame,
                    attempts: w.attempts,
                    failed,
                    targets: w.targets,
                    ports: w.ports,
                    windows: 1,
                    sample_targets: w.sample_targets,
                    sample_ports: w.sample_ports,
                })
            }
        }
    }

    /// Makes room in the source table: closes sources idle for a whole window.
    fn make_room(&mut self, now: i64) {
        let window = self.window_ns;
        let idle: Vec<IpAddr> = self
            .sources
            .iter()
            .filter(|(_, s)| now - s.w.last_ns >= window)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in idle {
            if let Some(mut s) = self.sources.remove(&ip) {
                self.close_window(&mut s);
                if let Some(f) = s.found {
                    self.done.push((ip, f, s.open));
                }
            }
        }
    }

    fn forget_closed_pairs(&mut self) {
        let sources = &self.sources;
        let live = |src: &IpAddr, id: u32| sources.get(src).is_some_and(|s| s.w.id == id);
        self.ports_seen.retain(|(src, _), id| live(src, *id));
        self.targets_seen.retain(|(src, _), id| live(src, *id));
        if self.ports_seen.len() >= MAX_DISTINCT_PAIRS {
            self.ports_seen.clear();
        }
        if self.targets_seen.len() >= MAX_DISTINCT_PAIRS {
            self.targets_seen.clear();
        }
    }

    fn on_probe(&mut self, src: IpAddr, dst: IpAddr, port: u16, pkt: &Packet<'_>) {
        if self.probed.len() >= MAX_PROBED && !self.probed.contains_key(&dst) {
            return;
        }
        let p = self.probed.entry(dst).or_default();
        if p.syns == 0 {
            p.first_ns = pkt.ts_ns;
            p.first_frame = pkt.number;
        }
        p.syns += 1;
        p.last_ns = pkt.ts_ns;
        if p.sources.len() < MAX_PROBE_SET && !p.sources.contains(&src) {
            p.sources.push(src);
        }
        if p.ports.len() < MAX_PROBE_SET && !p.ports.contains(&port) {
            p.ports.push(port);
        }
    }

    /// The inbound distributed probes of one host, if there are.
    fn probe_event(&self, dst: IpAddr, p: &Probed) -> Option<ScanEvent> {
        let answered = p.answered.min(p.syns);
        if p.sources.len() < INBOUND_MIN_SOURCES
            || p.ports.len() < INBOUND_MIN_PORTS
            || (p.syns - answered) as f64 / (p.syns as f64) < MIN_FAILURE_RATE
        {
            return None;
        }
        // A source that scans the host by itself is already its own event.
        if self
            .done
            .iter()
            .any(|(_, f, _)| f.sample_targets.contains(&dst) && f.targets <= FEW)
        {
            return None;
        }
        let severity = if p.sources.len() >= INBOUND_MANY_SOURCES {
            Severity::Medium
        } else {
            Severity::Low
        };
        let duration = (p.last_ns - p.first_ns) as f64 / 1e9;
        let mut ports = p.ports.clone();
        ports.sort_unstable();
        ports.truncate(SAMPLE_PORTS);
        Some(ScanEvent {
            source_ip: format!("{} sources", p.sources.len()),
            scan_type: "inbound_distributed".to_string(),
            severity,
            start_time: crate::time::iso_utc(p.first_ns),
            duration: round3(duration),
            unique_targets: 1,
            unique_ports: p.ports.len() as u64,
            total_attempts: p.syns,
            failed_attempts: p.syns - answered,
            success_rate: round3(answered as f64 / p.syns as f64),
            scan_rate: round3(if duration > 0.0 {
                p.syns as f64 / duration
            } else {
                0.0
            }),
            windows_flagged: 0,
            target_ips: vec![dst.to_string()],
            target_ports: ports,
            first_packet: p.first_frame,
            display_filter: format!(
                "{} && tcp.flags.syn == 1 && tcp.flags.ack == 0",
                ip_field(dst, "dst")
            ),
            ..ScanEvent::default()
        })
    }

    fn on_syn(&mut self, src: IpAddr, dst: IpAddr, port: u16, pkt: &Packet<'_>) {
        self.on_probe(src, dst, port, pkt);
        let now = pkt.ts_ns;
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&src) {
            self.make_room(now);
            if self.sources.len() >= MAX_SOURCES {
                self.not_tracked += 1;
                return;
            }
        }
        if self.ports_seen.len() >= MAX_DISTINCT_PAIRS
            || self.targets_seen.len() >= MAX_DISTINCT_PAIRS
        {
            self.forget_closed_pairs();
        }
        let mut s = match self.sources.remove(&src) {
            Some(s) => s,
            None => {
                self.sources_seen += 1;
                Source::default()
            }
        };
        if s.w.attempts > 0 && now - s.w.start_ns >= self.window_ns {
            self.close_window(&mut s);
        }
        if s.w.attempts == 0 {
            s.w.id = self.next_window;
            self.next_window = self.next_window.wrapping_add(1).max(1);
            s.w.start_ns = now;
            s.w.first_frame = pkt.number;
        }
        let w = &mut s.w;
        w.attempts += 1;
        w.last_ns = now;
        if self.ports_seen.insert((src, port), w.id) != Some(w.id) {
            w.ports += 1;
            if w.sample_ports.len() < SAMPLE_PORTS {
                w.sample_ports.push(port);
            }
        }
        if self.targets_seen.insert((src, dst), w.id) != Some(w.id) {
            w.targets += 1;
            if w.sample_targets.len() < SAMPLE_TARGETS {
                w.sample_targets.push(dst);
            }
        }
        self.sources.insert(src, s);
    }
}

impl Analyzer for PortScanDetection {
    fn packets(&self) -> Kinds {
        Kinds::SYN
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        if !tcp.has(TCP_SYN) || meta.tcp.is_retransmission() {
            return;
        }
        let Some(ip) = pkt.ip() else { return };
        if excluded(ip, self.include_localhost) {
            return;
        }
        if tcp.has(TCP_ACK) {
            if let Some(p) = self.probed.get_mut(&ip.src) {
                p.answered += 1;
            }
            // A SYN/ACK answers an attempt of its destination.
            if let Some(s) = self.sources.get_mut(&ip.dst) {
                if s.w.answered < s.w.attempts {
                    s.w.answered += 1;
                }
                let port = tcp.src_port;
                if s.open.len() < MAX_OPEN
                    && !s.open.iter().any(|&(t, p, _)| t == ip.src && p == port)
                {
                    s.open.push((ip.src, port, pkt.number));
                }
            }
        } else {
            self.on_syn(ip.src, ip.dst, tcp.dst_port, pkt);
        }
    }

    fn finish(mut self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let sources = std::mem::take(&mut self.sources);
        for (ip, mut s) in sources {
            self.close_window(&mut s);
            if let Some(f) = s.found {
                self.done.push((ip, f, s.open));
            }
        }
        let probes: Vec<ScanEvent> = self
            .probed
            .iter()
            .filter_map(|(dst, p)| self.probe_event(*dst, p))
            .collect();
        let mut events: Vec<ScanEvent> = self
            .done
            .iter()
            .map(|(ip, f, open)| {
                let duration = (f.end_ns - f.start_ns) as f64 / 1e9;
                let mut ports = f.sample_ports.clone();
                ports.sort_unstable();
                let mut open = open.clone();
                open.sort_by_key(|&(t, p, _)| (p, t));
                let mut open_ports: Vec<u16> = open.iter().map(|&(_, p, _)| p).collect();
                open_ports.dedup();
                let mut open_frames: Vec<u64> = open.iter().map(|&(_, _, n)| n).collect();
                open_frames.sort_unstable();
                ScanEvent {
                    source_ip: ip.to_string(),
                    scan_type: f.scan_type.to_string(),
                    severity: f.severity,
                    start_time: crate::time::iso_utc(f.start_ns),
                    duration: round3(duration),
                    unique_targets: f.targets,
                    unique_ports: f.ports,
                    total_attempts: f.attempts,
                    failed_attempts: f.failed,
                    success_rate: round3(1.0 - f.failed as f64 / f.attempts.max(1) as f64),
                    scan_rate: round3(if duration > 0.0 {
                        f.attempts as f64 / duration
                    } else {
                        0.0
                    }),
                    windows_flagged: f.windows,
                    target_ips: f.sample_targets.iter().map(|t| t.to_string()).collect(),
                    target_ports: ports,
                    open_ports,
                    open_services: open.iter().map(|(t, p, _)| endpoint(*t, *p)).collect(),
                    open_frames,
                    first_packet: f.first_frame,
                    display_filter: format!(
                        "{} && tcp.flags.syn == 1 && tcp.flags.ack == 0",
                        ip_field(*ip, "src")
                    ),
                }
            })
            .chain(probes)
            .collect();
        worst_first(
            &mut events,
            |e| e.severity,
            |e| e.total_attempts as f64,
            |e| e.first_packet,
        );
        let mut scan_type_breakdown = BTreeMap::new();
        for e in &events {
            *scan_type_breakdown.entry(e.scan_type.clone()).or_insert(0) += 1;
        }
        let severity_breakdown = SeverityBreakdown::of(events.iter().map(|e| &e.severity));
        let total = events.len() as u64;
        events.truncate(MAX_FINDINGS);
        report.findings.extend(events.iter().map(finding));
        report.port_scan_detection = Some(PortScanReport {
            total_scans_detected: total,
            severity_breakdown,
            scan_type_breakdown,
            scan_events: events,
            sources_tracked: self.sources_seen,
            sources_not_tracked: self.not_tracked,
            detection_thresholds: PortScanThresholds {
                horizontal_threshold: self.horizontal,
                vertical_threshold: self.vertical,
                time_window: self.window_ns as f64 / 1e9,
                failure_rate_threshold: self.failure_rate,
                scan_rate_threshold: self.scan_rate,
                min_attempts: MIN_ATTEMPTS,
                min_failure_rate: MIN_FAILURE_RATE,
            },
        });
    }
}

/// `host:port`, with brackets for IPv6.
fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}:{port}"),
        IpAddr::V6(_) => format!("[{ip}]:{port}"),
    }
}

/// The typed finding of one scan.
fn finding(e: &ScanEvent) -> Finding {
    let targets = if e.unique_targets == 1 {
        e.target_ips.first().cloned().unwrap_or_default()
    } else {
        format!("{} hosts", e.unique_targets)
    };
    let open = if e.open_ports.is_empty() {
        "no port answered".to_string()
    } else {
        let list: Vec<String> = e.open_ports.iter().map(u16::to_string).collect();
        format!("open: {}", list.join(", "))
    };
    if e.scan_type == "inbound_distributed" {
        let ports: Vec<String> = e.target_ports.iter().map(u16::to_string).collect();
        let summary = format!(
            "{} probed by {}: {} SYNs to {} ports ({}) in {:.0} s, {} unanswered by a SYN/ACK",
            targets,
            e.source_ip,
            e.total_attempts,
            e.unique_ports,
            ports.join(", "),
            e.duration,
            e.failed_attempts
        );
        let evidence = Evidence::new()
            .with("syn_attempts", e.total_attempts as f64)
            .with("unanswered", e.failed_attempts as f64)
            .with("unique_ports", e.unique_ports as f64)
            .with("duration_s", e.duration);
        return Finding::new("port_scan_detection", e.severity, summary)
            .cause(Cause::PortScan)
            .evidence(evidence)
            .hosts(e.target_ips.iter().cloned())
            .frames([e.first_packet])
            .filter(e.display_filter.clone());
    }
    let summary = format!(
        "{} port scan from {}: {} SYNs to {} ports of {targets} in {:.1} s, {} unanswered by a SYN/ACK; {open}",
        capitalised(&e.scan_type),
        e.source_ip,
        e.total_attempts,
        e.unique_ports,
        e.duration,
        e.failed_attempts,
    );
    let evidence = Evidence::new()
        .with("syn_attempts", e.total_attempts as f64)
        .with("unanswered", e.failed_attempts as f64)
        .with("unique_ports", e.unique_ports as f64)
        .with("unique_targets", e.unique_targets as f64)
        .with("open_ports", e.open_ports.len() as f64)
        .with("scan_rate_per_s", e.scan_rate)
        .with("duration_s", e.duration);
    let mut hosts = vec![e.source_ip.clone()];
    hosts.extend(e.target_ips.iter().cloned());
    Finding::new("port_scan_detection", e.severity, summary)
        .cause(Cause::PortScan)
        .evidence(evidence)
        .hosts(hosts)
        .frames(std::iter::once(e.first_packet).chain(e.open_frames.iter().copied()))
        .filter(e.display_filter.clone())
}

fn capitalised(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
