//! `brute_force_detection`: repeated logins from one source to one service.
//!
//! Per (source, target, port) on v5's authentication ports, two kinds of evidence:
//! * connection level (v5): pure SYNs, and the share of them never answered by a SYN/ACK;
//! * application level (new): failed logins the server states in clear text at the start of a
//!   reply, FTP `530` (RFC 959 section 4.2), SMTP `535` (RFC 4954 section 6), HTTP `401`
//!   (RFC 9110 section 15.5.2), POP3 `-ERR [AUTH]` (RFC 3206) and IMAP `NO
//!   [AUTHENTICATIONFAILED]` (RFC 5530), against their success codes FTP `230` and SMTP `235`. v5 saw only
//!   SYNs, so an FTP password guesser that connects fine and is refused at `PASS` went unseen.
//!
//! * repeated short sessions (new): on services whose login result is encrypted or not parsed
//!   (SSH, RDP, VNC, SMB, Telnet, databases), answered connections that the client closes again
//!   (FIN or RST) one after the other: a password guesser opens one session per guess or few.
//!   Severity by count as below without the failure bump, and at most high (no refusal is seen).
//!
//! Any evidence flags an attack with at least `brute_force_min_attempts` attempts, a failure
//! rate above `brute_force_failure_rate` and at least `brute_force_min_rate` attempts per second.
//! Severity follows v5: by count (> 20 / 30 / 50), raised for a failure rate above 0.9, a rate
//! above 2/s and for SSH, SMB and RDP. Unlike v5, private↔private traffic is examined: internal
//! brute force is the common case.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::security::{excluded, ip_field, worst_first, Severity, SeverityBreakdown};
use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_SYN};
use crate::finding::{Cause, Evidence, Finding};
use crate::flow::{fast_map, table_cap, FastMap};
use crate::report::{Report, MAX_FINDINGS, MAX_RANKED};
use crate::stats::round3;
use crate::Options;

/// v5's authentication ports.
const AUTH_PORTS: [u16; 15] = [
    21, 22, 23, 80, 443, 445, 1433, 3306, 3389, 5432, 5900, 6379, 8080, 8443, 27017,
];
/// Ports whose replies are read for clear-text login results (SMTP submission included).
const APP_PORTS: [u16; 7] = [21, 25, 587, 80, 8080, 110, 143];
/// Services whose login result is not readable here: guesses show as repeated short sessions.
const SESSION_PORTS: [u16; 9] = [22, 23, 445, 1433, 3306, 3389, 5432, 5900, 27017];
/// Share of answered connections the client must have closed for repeated short sessions.
const MIN_CLOSED_SHARE: f64 = 0.8;
/// v5 raises the severity for these (SSH, SMB, RDP).
const CRITICAL_PORTS: [u16; 3] = [22, 445, 3389];
/// (source, target, port) tuples followed; past this, tuples with fewer than
/// [`PRUNE_BELOW`] attempts are dropped, then new tuples are not followed.
const MAX_TUPLES: usize = table_cap(1 << 16);
const PRUNE_BELOW: u64 = 3;
/// v5: failure rate above which the severity is raised.
const HIGH_FAILURE_RATE: f64 = 0.9;
/// v5: attempts per second above which the severity is raised.
const HIGH_RATE: f64 = 2.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BruteForceEvent {
    pub source_ip: String,
    pub target_ip: String,
    pub target_port: u16,
    pub service: String,
    pub severity: Severity,
    /// "authentication_failures" (the server refused logins), "connection_failures" (SYNs
    /// mostly unanswered) or "repeated_sessions" (answered sessions closed one after the other).
    pub evidence: String,
    pub start_time: String,
    pub duration: f64,
    pub total_attempts: u64,
    pub failed_attempts: u64,
    pub success_rate: f64,
    /// Attempts per second.
    pub attempt_rate: f64,
    pub syn_attempts: u64,
    pub syn_answered: u64,
    pub auth_failures: u64,
    pub auth_successes: u64,
    pub first_packet: u64,
    pub last_packet: u64,
    /// Frames of the first refused logins.
    pub failure_frames: Vec<u64>,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BruteForceThresholds {
    pub attempt_threshold: u64,
    pub failure_rate_threshold: f64,
    pub attempt_rate_threshold: f64,
    pub auth_ports: Vec<u16>,
    pub include_localhost: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BruteForceReport {
    pub total_attacks_detected: u64,
    pub severity_breakdown: SeverityBreakdown,
    pub service_breakdown: BTreeMap<String, u64>,
    /// Attacks per target address (at most `MAX_RANKED`).
    pub target_breakdown: BTreeMap<String, u64>,
    /// Worst first, at most `MAX_FINDINGS`.
    pub brute_force_events: Vec<BruteForceEvent>,
    pub tuples_not_tracked: u64,
    pub detection_thresholds: BruteForceThresholds,
}

#[derive(Default, Clone, Copy)]
struct Tuple {
    syns: u64,
    synacks: u64,
    auth_failures: u64,
    auth_successes: u64,
    /// FIN or RST sent by the client.
    client_closes: u64,
    first_ns: i64,
    last_ns: i64,
    first_frame: u64,
    last_frame: u64,
    /// Frames of the first refused logins.
    failure_frames: [u64; FAILURE_FRAMES],
}

/// Refused-login frames kept per tuple for the finding.
const FAILURE_FRAMES: usize = 5;

pub struct BruteForceDetection {
    min_attempts: u64,
    failure_rate: f64,
    min_rate: f64,
    include_localhost: bool,
    tuples: FastMap<(IpAddr, IpAddr, u16), Tuple>,
    not_tracked: u64,
}

/// Login result stated at the start of a server reply.
fn login_result(port: u16, payload: &[u8]) -> Option<bool> {
    let code = payload.get(..4)?;
    let three = &code[..3];
    let sep_ok = code[3] == b' ' || code[3] == b'-';
    match port {
        21 if sep_ok => match three {
            b"530" => Some(false),
            b"230" => Some(true),
            _ => None,
        },
        25 | 587 if sep_ok => match three {
            b"535" => Some(false),
            b"235" => Some(true),
            _ => None,
        },
        // RFC 3206 response code: the credentials were refused.
        110 => payload.starts_with(b"-ERR [AUTH]").then_some(false),
        // RFC 5530 response code in a tagged NO: "a1 NO [AUTHENTICATIONFAILED] ...".
        143 => {
            let head = &payload[..payload.len().min(64)];
            head.windows(25)
                .any(|w| w == b"NO [AUTHENTICATIONFAILED]")
                .then_some(false)
        }
        80 | 8080 => {
            // "HTTP/1.1 401 ": only the status line's code, never a body.
            let line = payload.get(..13)?;
            (line.starts_with(b"HTTP/1.") && &line[8..13] == b" 401 ").then_some(false)
        }
        _ => None,
    }
}

pub fn service_name(port: u16) -> &'static str {
    match port {
        21 => "FTP",
        22 => "SSH",
        23 => "Telnet",
        25 | 587 => "SMTP",
        110 => "POP3",
        143 => "IMAP",
        80 | 8080 => "HTTP",
        443 | 8443 => "HTTPS",
        445 => "SMB",
        1433 => "MSSQL",
        3306 => "MySQL",
        3389 => "RDP",
        5432 => "PostgreSQL",
        5900 => "VNC",
        6379 => "Redis",
        27017 => "MongoDB",
        _ => "other",
    }
}

impl BruteForceDetection {
    pub fn new(config: &Config, options: &Options) -> Self {
        let t = &config.thresholds;
        BruteForceDetection {
            min_attempts: t.brute_force_min_attempts,
            failure_rate: t.brute_force_failure_rate,
            min_rate: t.brute_force_min_rate,
            include_localhost: options.include_localhost,
            tuples: fast_map(),
            not_tracked: 0,
        }
    }

    fn tuple(&mut self, key: (IpAddr, IpAddr, u16), create: bool) -> Option<&mut Tuple> {
        if !self.tuples.contains_key(&key) {
            if !create {
                return None;
            }
            if self.tuples.len() >= MAX_TUPLES {
                self.tuples
                    .retain(|_, t| t.syns + t.auth_failures >= PRUNE_BELOW);
                if self.tuples.len() >= MAX_TUPLES {
                    self.not_tracked += 1;
                    return None;
                }
            }
        }
        Some(self.tuples.entry(key).or_default())
    }

    fn touch(t: &mut Tuple, pkt: &Packet<'_>) {
        if t.first_frame == 0 {
            t.first_ns = pkt.ts_ns;
            t.first_frame = pkt.number;
        }
        t.last_ns = pkt.ts_ns;
        t.last_frame = pkt.number;
    }

    fn event(&self, key: &(IpAddr, IpAddr, u16), t: &Tuple) -> Option<BruteForceEvent> {
        let duration = (t.last_ns - t.first_ns) as f64 / 1e9;
        let rate = |n: u64| {
            if duration > 0.0 {
                n as f64 / duration
            } else {
                f64::INFINITY
            }
        };
        let auth_total = t.auth_failures + t.auth_successes;
        let auth_failure = t.auth_failures as f64 / auth_total.max(1) as f64;
        let conn_failed = t.syns - t.synacks.min(t.syns);
        let conn_failure = conn_failed as f64 / t.syns.max(1) as f64;
        let (evidence, attempts, failed, failure) = if t.auth_failures >= self.min_attempts
            && auth_failure > self.failure_rate
            && rate(t.auth_failures) >= self.min_rate
        {
            (
                "authentication_failures",
                auth_total,
                t.auth_failures,
                auth_failure,
            )
        } else if t.syns >= self.min_attempts
            && conn_failure > self.failure_rate
            && rate(t.syns) >= self.min_rate
        {
            ("connection_failures", t.syns, conn_failed, conn_failure)
        } else if SESSION_PORTS.contains(&key.2)
            && t.synacks.min(t.syns) >= self.min_attempts
            && t.client_closes as f64 >= MIN_CLOSED_SHARE * t.synacks.min(t.syns) as f64
            && rate(t.syns) >= self.min_rate
        {
            ("repeated_sessions", t.syns, 0, 0.0)
        } else {
            return None;
        };
        let mut severity = match attempts {
            n if n > 50 => Severity::Critical,
            n if n > 30 => Severity::High,
            n if n > 20 => Severity::Medium,
            _ => Severity::Low,
        };
        if failure > HIGH_FAILURE_RATE {
            severity = severity.bump();
        }
        let attempt_rate = rate(attempts);
        if attempt_rate > HIGH_RATE {
            severity = severity.bump();
        }
        let (src, dst, port) = *key;
        if CRITICAL_PORTS.contains(&port) {
            severity = severity.bump();
        }
        if evidence == "repeated_sessions" {
            severity = severity.min(Severity::High);
        }
        Some(BruteForceEvent {
            source_ip: src.to_string(),
            target_ip: dst.to_string(),
            target_port: port,
            service: service_name(port).to_string(),
            severity,
            evidence: evidence.to_string(),
            start_time: crate::time::iso_utc(t.first_ns),
            duration: round3(duration),
            total_attempts: attempts,
            failed_attempts: failed,
            success_rate: round3(1.0 - failure),
            attempt_rate: if attempt_rate.is_finite() {
                round3(attempt_rate)
            } else {
                0.0
            },
            syn_attempts: t.syns,
            syn_answered: t.synacks,
            auth_failures: t.auth_failures,
            auth_successes: t.auth_successes,
            first_packet: t.first_frame,
            last_packet: t.last_frame,
            failure_frames: t
                .failure_frames
                .iter()
                .copied()
                .filter(|&n| n > 0)
                .collect(),
            display_filter: format!(
                "{} && {} && tcp.port == {port}",
                ip_field(src, "addr"),
                ip_field(dst, "addr")
            ),
        })
    }
}

impl Analyzer for BruteForceDetection {
    fn packets(&self) -> Kinds {
        Kinds::TCP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        let (sp, dp) = (tcp.src_port, tcp.dst_port);
        let to_auth = AUTH_PORTS.contains(&dp);
        let from_app = APP_PORTS.contains(&sp);
        if !to_auth && !from_app && !AUTH_PORTS.contains(&sp) {
            return;
        }
        if meta.tcp.is_retransmission() {
            return;
        }
        let Some(ip) = pkt.ip() else { return };
        if excluded(ip, self.include_localhost) {
            return;
        }
        let syn = tcp.has(TCP_SYN);
        let ack = tcp.has(TCP_ACK);
        if syn && !ack && to_auth {
            if let Some(t) = self.tuple((ip.src, ip.dst, dp), true) {
                t.syns += 1;
                Self::touch(t, pkt);
            }
        } else if syn && ack {
            if let Some(t) = self.tuple((ip.dst, ip.src, sp), false) {
                t.synacks += 1;
            }
        } else if to_auth && tcp.has(crate::decode::TCP_FIN | crate::decode::TCP_RST) {
            if let Some(t) = self.tuple((ip.src, ip.dst, dp), false) {
                t.client_closes += 1;
            }
        } else if from_app && !pkt.tcp_payload.is_empty() {
            if let Some(ok) = login_result(sp, pkt.tcp_payload) {
                if let Some(t) = self.tuple((ip.dst, ip.src, sp), true) {
                    if ok {
                        t.auth_successes += 1;
                    } else {
                        if let Some(slot) = t.failure_frames.get_mut(t.auth_failures as usize) {
                            *slot = pkt.number;
                        }
                        t.auth_failures += 1;
                    }
                    Self::touch(t, pkt);
                }
            }
        }
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut events: Vec<BruteForceEvent> = self
            .tuples
            .iter()
            .filter_map(|(k, t)| self.event(k, t))
            .collect();
        worst_first(
            &mut events,
            |e| e.severity,
            |e| e.failed_attempts as f64,
            |e| e.first_packet,
        );
        let mut service_breakdown = BTreeMap::new();
        let mut targets: BTreeMap<String, u64> = BTreeMap::new();
        for e in &events {
            *service_breakdown.entry(e.service.clone()).or_insert(0) += 1;
            *targets.entry(e.target_ip.clone()).or_insert(0) += 1;
        }
        let mut ranked: Vec<(String, u64)> = targets.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(MAX_RANKED);
        let severity_breakdown = SeverityBreakdown::of(events.iter().map(|e| &e.severity));
        let total = events.len() as u64;
        events.truncate(MAX_FINDINGS);
        report.findings.extend(events.iter().map(finding));
        report.brute_force_detection = Some(BruteForceReport {
            total_attacks_detected: total,
            severity_breakdown,
            service_breakdown,
            target_breakdown: ranked.into_iter().collect(),
            brute_force_events: events,
            tuples_not_tracked: self.not_tracked,
            detection_thresholds: BruteForceThresholds {
                attempt_threshold: self.min_attempts,
                failure_rate_threshold: self.failure_rate,
                attempt_rate_threshold: self.min_rate,
                auth_ports: AUTH_PORTS.to_vec(),
                include_localhost: self.include_localhost,
            },
        });
    }
}

/// The typed finding of one attack.
fn finding(e: &BruteForceEvent) -> Finding {
    let how = if e.evidence == "authentication_failures" {
        format!(
            "{} logins refused by the server, {} accepted",
            e.auth_failures, e.auth_successes
        )
    } else if e.evidence == "repeated_sessions" {
        format!(
            "{} sessions opened and closed again one after the other",
            e.syn_attempts
        )
    } else {
        format!(
            "{} connection attempts, {} answered",
            e.syn_attempts, e.syn_answered
        )
    };
    let summary = format!(
        "{} brute force from {} on {}:{}: {how} in {:.1} s ({:.1} attempts/s)",
        e.service, e.source_ip, e.target_ip, e.target_port, e.duration, e.attempt_rate
    );
    let evidence = Evidence::new()
        .with("attempts", e.total_attempts as f64)
        .with("failed_attempts", e.failed_attempts as f64)
        .with("auth_failures", e.auth_failures as f64)
        .with("auth_successes", e.auth_successes as f64)
        .with("connections", e.syn_attempts as f64)
        .with("attempt_rate_per_s", e.attempt_rate)
        .with("duration_s", e.duration);
    Finding::new("brute_force_detection", e.severity, summary)
        .cause(Cause::BruteForce)
        .evidence(evidence)
        .hosts([e.source_ip.clone(), e.target_ip.clone()])
        .frames(std::iter::once(e.first_packet).chain(e.failure_frames.iter().copied()))
        .filter(e.display_filter.clone())
}
