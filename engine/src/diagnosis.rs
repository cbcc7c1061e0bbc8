//! The diagnosis: why the network hurts, as ranked causes from a fixed vocabulary
//! ([`Cause`]), each backed by the findings of the analyses (figures, streams, hosts, frames and a
//! display filter to open them in Wireshark).
//!
//! ```text
//! analyses ─> Report::findings (typed, one per thing found) ─> diagnose ─> Diagnosis
//!                                                                │ at most one entry per cause,
//!                                                                │ worst first; explained
//!                                                                │ symptoms folded away
//!                                                                └─> health score band, advice
//! ```
//!
//! Findings below [`Severity::Low`] are facts, not causes. Where one cause explains the
//! symptoms of another (a port scan explains the refused and unanswered SYNs it provokes; a
//! zero window that never reopens is more than a window that limits the sender), the explained
//! one is folded into the cause that explains it.

use serde::{Deserialize, Serialize};

use crate::finding::{Cause, Evidence, Finding, Severity, MAX_FINDING_FRAMES, MAX_FINDING_SCOPE};

/// The capture as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No cause of medium severity or above.
    #[default]
    Healthy,
    /// Something hurts, the traffic still flows.
    Degraded,
    /// A critical cause, or connections that fail (refused, unreachable, stalled, aborted).
    Failing,
}

/// One cause, aggregated over every finding that names it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CauseEntry {
    pub cause: Option<Cause>,
    pub severity: Severity,
    /// The worst finding's sentence, with how many more there are.
    pub summary: String,
    pub evidence: Evidence,
    pub streams: Vec<u64>,
    pub hosts: Vec<String>,
    pub frames: Vec<u64>,
    pub display_filter: String,
    /// What to do about it (one per cause).
    pub recommendation: String,
    /// The analyses whose findings back this cause.
    pub analyses: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub verdict: Verdict,
    /// Worst first; empty when nothing is wrong.
    pub causes: Vec<CauseEntry>,
}

impl Diagnosis {
    /// The worst cause's severity, `Info` when there is none.
    pub fn worst(&self) -> Severity {
        self.causes
            .iter()
            .map(|c| c.severity)
            .max()
            .unwrap_or(Severity::Info)
    }

    /// The first cause's word, or `healthy`.
    pub fn primary(&self) -> &'static str {
        self.causes
            .first()
            .and_then(|c| c.cause)
            .map(Cause::as_str)
            .unwrap_or("healthy")
    }
}

/// At equal severity, the cause that explains the others comes first: an attack before the
/// trouble it makes, a failure before a slowness, the network's own loss before what it causes.
const PRECEDENCE: [Cause; 28] = [
    Cause::ArpSpoofing,
    Cause::C2Beaconing,
    Cause::BruteForce,
    Cause::PortScan,
    Cause::Ddos,
    Cause::DnsTunneling,
    Cause::DataExfiltration,
    Cause::LateralMovement,
    Cause::ZeroWindowStall,
    Cause::ServerUnreachable,
    Cause::ConnectionRefused,
    Cause::ConnectionAborted,
    Cause::PmtuBlackhole,
    Cause::DuplicatedFrames,
    Cause::TimeReversal,
    Cause::PacketLoss,
    Cause::Reordering,
    Cause::Bufferbloat,
    Cause::BandwidthLimited,
    Cause::ReceiveWindowLimited,
    Cause::HighLatency,
    Cause::SlowServer,
    Cause::SlowClient,
    Cause::HttpErrors,
    Cause::DnsFailure,
    Cause::DnsSlow,
    Cause::IcmpUnreachable,
    Cause::Jitter,
];

fn precedence(c: Cause) -> usize {
    PRECEDENCE
        .iter()
        .position(|&p| p == c)
        .unwrap_or(PRECEDENCE.len())
}

/// Causes that a worse one explains when they touch the same hosts: (explained, explainer).
const EXPLAINED_BY: &[(Cause, Cause)] = &[
    // A scan provokes refusals (closed ports) and unanswered SYNs (filtered ports).
    (Cause::ConnectionRefused, Cause::PortScan),
    (Cause::ServerUnreachable, Cause::PortScan),
    (Cause::ConnectionRefused, Cause::BruteForce),
    (Cause::ConnectionAborted, Cause::BruteForce),
    // A window that never reopens is the receiver limiting the sender, to the end.
    (Cause::ReceiveWindowLimited, Cause::ZeroWindowStall),
    // Copies of frames are not a second time-line.
    (Cause::TimeReversal, Cause::DuplicatedFrames),
];

/// The ranked causes of everything the analyses found.
pub fn diagnose(findings: &[Finding]) -> Diagnosis {
    let mut entries: Vec<CauseEntry> = Vec::new();
    let mut ordered: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.cause.is_some() && f.severity >= Severity::Low)
        .collect();
    // Worst first, so each entry starts from its worst finding.
    ordered.sort_by_key(|b| std::cmp::Reverse(b.severity));
    for f in ordered {
        match entries.iter_mut().find(|e| e.cause == f.cause) {
            Some(e) => merge(e, f),
            None => entries.push(start(f)),
        }
    }
    fold_explained(&mut entries);
    entries.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(
            precedence(a.cause.unwrap_or(Cause::Jitter))
                .cmp(&precedence(b.cause.unwrap_or(Cause::Jitter))),
        )
    });
    for e in &mut entries {
        e.recommendation = recommendation(e);
    }
    let verdict = verdict(&entries);
    Diagnosis {
        verdict,
        causes: entries,
    }
}

fn start(f: &Finding) -> CauseEntry {
    CauseEntry {
        cause: f.cause,
        severity: f.severity,
        summary: f.summary.clone(),
        evidence: f.evidence.clone(),
        streams: f.streams.clone(),
        hosts: f.hosts.clone(),
        frames: f.frames.clone(),
        display_filter: f.display_filter.clone(),
        recommendation: String::new(),
        analyses: vec![f.analysis.clone()],
    }
}

fn merge(e: &mut CauseEntry, f: &Finding) {
    extend_unique(&mut e.streams, &f.streams, MAX_FINDING_SCOPE);
    extend_unique(&mut e.hosts, &f.hosts, MAX_FINDING_SCOPE);
    extend_unique(&mut e.frames, &f.frames, MAX_FINDING_FRAMES);
    e.frames.sort_unstable();
    if !e.analyses.contains(&f.analysis) {
        e.analyses.push(f.analysis.clone());
    }
}

fn extend_unique<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T], cap: usize) {
    for x in from {
        if into.len() >= cap {
            break;
        }
        if !into.contains(x) {
            into.push(x.clone());
        }
    }
}

/// Drops a cause that a cause of at least its severity explains on overlapping hosts (or on
/// any host when the explained one names none).
fn fold_explained(entries: &mut Vec<CauseEntry>) {
    let snapshot = entries.clone();
    entries.retain(|e| {
        let Some(cause) = e.cause else { return true };
        !EXPLAINED_BY.iter().any(|&(explained, by)| {
            explained == cause
                && snapshot.iter().any(|o| {
                    o.cause == Some(by)
                        && o.severity >= Severity::Medium
                        && (e.hosts.is_empty() || e.hosts.iter().any(|h| o.hosts.contains(h)))
                })
        })
    });
}

fn verdict(entries: &[CauseEntry]) -> Verdict {
    let failing = entries.iter().any(|e| {
        e.severity == Severity::Critical
            || (e.severity >= Severity::High
                && matches!(
                    e.cause,
                    Some(
                        Cause::ServerUnreachable
                            | Cause::ConnectionRefused
                            | Cause::ZeroWindowStall
                            | Cause::ConnectionAborted
                    )
                ))
    });
    if failing {
        Verdict::Failing
    } else if entries.iter().any(|e| e.severity >= Severity::Medium) {
        Verdict::Degraded
    } else {
        Verdict::Healthy
    }
}

/// One piece of advice per cause, naming the worst flow or host.
fn recommendation(e: &CauseEntry) -> String {
    let Some(cause) = e.cause else {
        return String::new();
    };
    let host = e.hosts.first().map(String::as_str).unwrap_or("the host");
    let text = match cause {
        Cause::PacketLoss => format!(
            "Find where segments are dropped on the path of {host}: interface error and discard counters, duplex and speed on each hop, a congested or policed link; open `{}`",
            e.display_filter
        ),
        Cause::Reordering => "Segments arrive out of order but are not lost: look for per-packet load balancing (ECMP, LAG, bonding in round-robin mode) or parallel paths; the receiver's duplicate ACKs may cause spurious retransmissions".into(),
        Cause::DuplicatedFrames => "Frames were recorded twice: the capture setup duplicates them (SPAN of both directions or of several ports, a TAP and a mirror together); deduplicate with `editcap -D` before judging retransmissions".into(),
        Cause::TimeReversal => "Time goes backwards in the capture: it was merged or recorded on several interfaces with unsynchronised clocks; sort it (`reordercap`) before reading delays".into(),
        Cause::HighLatency => format!("The path to {host} is long: serve from closer, or make the application need fewer round trips (connection reuse, larger windows, fewer sequential requests)"),
        Cause::Bufferbloat => "Delay grows far above the path's own RTT while the link is busy: a queue fills at the bottleneck; enable active queue management (fq_codel, CAKE) or shape just below the link rate".into(),
        Cause::BandwidthLimited => format!("Transfers run at the bottleneck's rate ({host}): the link is full; add capacity or prioritise the traffic that matters"),
        Cause::SlowServer => format!("The server {host} takes long to answer although the path is fast: look at the application and what it waits on (database, disk, upstream calls)"),
        Cause::SlowClient => format!("The client {host} waits before sending its requests: the delay is in the client application or its user, not the network"),
        Cause::ReceiveWindowLimited => format!("The receiver's window limits the sender ({host}): enable window scaling and raise the receive buffer, or make the receiving application read faster"),
        Cause::ZeroWindowStall => format!("The receiver {host} stopped reading: its window stays at zero; find why the application does not consume its socket (blocked, hung, overloaded)"),
        Cause::ConnectionRefused => format!("Connections are refused by {host}: the service is not listening on that port, or a firewall answers with RST; check the service and the port"),
        Cause::ServerUnreachable => format!("SYNs to {host} get no answer: the server is down or a firewall drops them silently; check routing, ACLs and the service"),
        Cause::ConnectionAborted => format!("Transfers are reset in the middle ({host}): find which side sends the RST and why (application error, timeout, middlebox, load balancer idle limit)"),
        Cause::HttpErrors => format!("HTTP requests to {host} fail with 4xx/5xx answers: read the status lines and the server's logs"),
        Cause::DnsFailure => format!("DNS lookups fail ({host}): check the names asked and the resolver's answers (NXDOMAIN, SERVFAIL, REFUSED)"),
        Cause::DnsSlow => format!("DNS answers are slow or missing ({host}): check the resolver's load and its upstream, or use a closer resolver"),
        Cause::Jitter => "Real-time media sees variable delay: give it priority (DSCP EF) and a jitter buffer sized for the measured variation".into(),
        Cause::IcmpUnreachable => format!("ICMP unreachable messages point at a missing route, host or port ({host})"),
        Cause::PmtuBlackhole => format!("Large packets to {host} vanish: a hop drops them without ICMP 'fragmentation needed'; allow that ICMP, or clamp the MSS"),
        Cause::PortScan => format!("A port scan from {host}: block or rate-limit the source, and check which ports answered"),
        Cause::BruteForce => format!("Password guessing from {host}: lock out or rate-limit the source, and check for a successful login"),
        Cause::Ddos => format!("Flood traffic toward {host}: filter upstream or rate-limit at the edge"),
        Cause::DnsTunneling => format!("DNS looks used as a tunnel ({host}): inspect the long, random query names and block the domain"),
        Cause::DataExfiltration => format!("Large outbound transfers from {host}: check what was sent and whether it is expected"),
        Cause::C2Beaconing => format!("Regular check-ins from {host} look like malware calling its controller: isolate the host and inspect it"),
        Cause::LateralMovement => format!("Internal host {host} reaches many others on admin ports: check it for compromise"),
        Cause::ArpSpoofing => format!("An IP address changed its MAC ({host}): a host is poisoning ARP caches to intercept traffic; find the MAC's port on the switch and enable dynamic ARP inspection"),
    };
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(cause: Cause, severity: Severity, host: &str) -> Finding {
        Finding::new("test", severity, format!("{cause} on {host}"))
            .cause(cause)
            .hosts([host])
    }

    #[test]
    fn no_cause_is_healthy() {
        let d = diagnose(&[Finding::new("dns", Severity::Info, "one NXDOMAIN")]);
        assert_eq!(d.verdict, Verdict::Healthy);
        assert_eq!(d.primary(), "healthy");
    }

    #[test]
    fn one_entry_per_cause_with_the_worst_severity() {
        let d = diagnose(&[
            finding(Cause::PacketLoss, Severity::Low, "10.0.0.1"),
            finding(Cause::PacketLoss, Severity::High, "10.0.0.2"),
        ]);
        assert_eq!(d.causes.len(), 1);
        assert_eq!(d.causes[0].severity, Severity::High);
        assert_eq!(d.causes[0].hosts, vec!["10.0.0.2", "10.0.0.1"]);
        assert_eq!(d.verdict, Verdict::Degraded);
    }

    #[test]
    fn a_scan_explains_the_refusals_it_provokes() {
        let d = diagnose(&[
            finding(Cause::ConnectionRefused, Severity::Medium, "64.13.134.52"),
            finding(Cause::PortScan, Severity::High, "64.13.134.52"),
        ]);
        assert_eq!(d.primary(), "port_scan");
        assert_eq!(d.causes.len(), 1);
    }

    #[test]
    fn worse_causes_come_first_then_the_explaining_one() {
        let d = diagnose(&[
            finding(Cause::HighLatency, Severity::Medium, "a"),
            finding(Cause::PacketLoss, Severity::Medium, "b"),
            finding(Cause::ServerUnreachable, Severity::High, "c"),
        ]);
        let order: Vec<&str> = d
            .causes
            .iter()
            .filter_map(|c| c.cause)
            .map(Cause::as_str)
            .collect();
        assert_eq!(order, ["server_unreachable", "packet_loss", "high_latency"]);
        assert_eq!(d.verdict, Verdict::Failing);
    }
}
