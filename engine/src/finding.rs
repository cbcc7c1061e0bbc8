//! Typed findings: what every analysis says it found, in one shape.
//!
//! An analysis writes its section of the report (counts, tables) and, beside it, a list of
//! [`Finding`]s: a [`Severity`], the [`Cause`] the finding is evidence for (when it is one), a
//! one-sentence summary, evidence figures, the scope (streams, hosts), the first frames (1-based,
//! as in Wireshark) and a display filter. The console, the HTML report, `findings.csv` and the
//! [`crate::diagnosis`] read this list; nothing reads findings out of the JSON by field name.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How much a finding matters, by its impact on the traffic; lowest first, so `max` is the worst.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, not a problem (a lone NXDOMAIN, one spurious retransmission).
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL_WORST_FIRST: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// One step up (critical stays critical).
    pub fn bump(self) -> Self {
        match self {
            Severity::Info => Severity::Low,
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }

    /// The severity of `value` against increasing thresholds for low, medium, high and
    /// critical (`None` for a level that `value` cannot reach this way).
    pub fn by_thresholds(value: f64, low_medium_high_critical: [Option<f64>; 4]) -> Severity {
        let levels = [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ];
        let mut s = Severity::Info;
        for (level, threshold) in levels.into_iter().zip(low_medium_high_critical) {
            if threshold.is_some_and(|t| value >= t) {
                s = level;
            }
        }
        s
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The causes the diagnosis names: a fixed vocabulary (DESIGN.md, "Diagnosis"), held by tests
/// and by tools that read the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    PacketLoss,
    Reordering,
    DuplicatedFrames,
    TimeReversal,
    /// Path round-trip time.
    HighLatency,
    /// Queueing delay far above the path's own baseline RTT while the link is busy.
    Bufferbloat,
    BandwidthLimited,
    /// Server think time: request → first answer byte, with the path RTT low.
    SlowServer,
    /// Client think time: the connection is up and the client waits before asking.
    SlowClient,
    /// Window full or zero windows limit the sender, and the window recovers.
    ReceiveWindowLimited,
    /// A zero window that does not reopen.
    ZeroWindowStall,
    ConnectionRefused,
    /// SYNs unanswered, or ICMP unreachable for the server.
    ServerUnreachable,
    /// RST in the middle of a transfer.
    ConnectionAborted,
    HttpErrors,
    DnsFailure,
    DnsSlow,
    /// Real-time media only (RTP/RTCP, VoIP, isochronous UDP).
    Jitter,
    IcmpUnreachable,
    PmtuBlackhole,
    PortScan,
    BruteForce,
    Ddos,
    DnsTunneling,
    DataExfiltration,
    C2Beaconing,
    LateralMovement,
    ArpSpoofing,
}

impl Cause {
    pub const ALL: [Cause; 28] = [
        Cause::PacketLoss,
        Cause::Reordering,
        Cause::DuplicatedFrames,
        Cause::TimeReversal,
        Cause::HighLatency,
        Cause::Bufferbloat,
        Cause::BandwidthLimited,
        Cause::SlowServer,
        Cause::SlowClient,
        Cause::ReceiveWindowLimited,
        Cause::ZeroWindowStall,
        Cause::ConnectionRefused,
        Cause::ServerUnreachable,
        Cause::ConnectionAborted,
        Cause::HttpErrors,
        Cause::DnsFailure,
        Cause::DnsSlow,
        Cause::Jitter,
        Cause::IcmpUnreachable,
        Cause::PmtuBlackhole,
        Cause::PortScan,
        Cause::BruteForce,
        Cause::Ddos,
        Cause::DnsTunneling,
        Cause::DataExfiltration,
        Cause::C2Beaconing,
        Cause::LateralMovement,
        Cause::ArpSpoofing,
    ];

    /// The vocabulary's word (`packet_loss`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::PacketLoss => "packet_loss",
            Cause::Reordering => "reordering",
            Cause::DuplicatedFrames => "duplicated_frames",
            Cause::TimeReversal => "time_reversal",
            Cause::HighLatency => "high_latency",
            Cause::Bufferbloat => "bufferbloat",
            Cause::BandwidthLimited => "bandwidth_limited",
            Cause::SlowServer => "slow_server",
            Cause::SlowClient => "slow_client",
            Cause::ReceiveWindowLimited => "receive_window_limited",
            Cause::ZeroWindowStall => "zero_window_stall",
            Cause::ConnectionRefused => "connection_refused",
            Cause::ServerUnreachable => "server_unreachable",
            Cause::ConnectionAborted => "connection_aborted",
            Cause::HttpErrors => "http_errors",
            Cause::DnsFailure => "dns_failure",
            Cause::DnsSlow => "dns_slow",
            Cause::Jitter => "jitter",
            Cause::IcmpUnreachable => "icmp_unreachable",
            Cause::PmtuBlackhole => "pmtu_blackhole",
            Cause::PortScan => "port_scan",
            Cause::BruteForce => "brute_force",
            Cause::Ddos => "ddos",
            Cause::DnsTunneling => "dns_tunneling",
            Cause::DataExfiltration => "data_exfiltration",
            Cause::C2Beaconing => "c2_beaconing",
            Cause::LateralMovement => "lateral_movement",
            Cause::ArpSpoofing => "arp_spoofing",
        }
    }

    pub fn parse(word: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == word)
    }

    /// Threats an attacker causes, as opposed to the network's own trouble.
    pub fn is_security(self) -> bool {
        matches!(
            self,
            Cause::PortScan
                | Cause::BruteForce
                | Cause::Ddos
                | Cause::DnsTunneling
                | Cause::DataExfiltration
                | Cause::C2Beaconing
                | Cause::LateralMovement
                | Cause::ArpSpoofing
        )
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Named figures behind a finding (`{"lost_segments": 118, "data_segments": 1230}`), in the
/// order the analysis gave them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence(pub Vec<(String, f64)>);

impl Evidence {
    pub fn new() -> Self {
        Evidence(Vec::new())
    }

    /// Adds a figure (builder style).
    pub fn with(mut self, name: &str, value: impl Into<f64>) -> Self {
        self.set(name, value.into());
        self
    }

    /// Sets a figure, replacing one of the same name.
    pub fn set(&mut self, name: &str, value: f64) {
        let value = if value.is_finite() {
            crate::stats::round3(value)
        } else {
            0.0
        };
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// `name=value` pairs, for one line of text.
    pub fn text(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={}", figure_text(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Figures;
        impl<'de> Visitor<'de> for Figures {
            type Value = Evidence;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of named figures")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Evidence, A::Error> {
                let mut e = Evidence::new();
                while let Some((k, v)) = m.next_entry::<String, f64>()? {
                    e.0.push((k, v));
                }
                Ok(e)
            }
        }
        d.deserialize_map(Figures)
    }
}

/// A figure as short text: integers without a fraction, others to three decimals at most.
pub fn figure_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Frames kept per finding: enough to open the first occurrences in Wireshark.
pub const MAX_FINDING_FRAMES: usize = 10;
/// Streams and hosts kept per finding (the worst first).
pub const MAX_FINDING_SCOPE: usize = 10;

/// One thing an analysis found, with what backs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The report key of the analysis that found it.
    pub analysis: String,
    pub severity: Severity,
    /// The cause this is evidence for; `None` for facts that explain nothing by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// One sentence, with the figures and the worst flow.
    pub summary: String,
    #[serde(default)]
    pub evidence: Evidence,
    /// `tcp.stream` numbers, worst first.
    #[serde(default)]
    pub streams: Vec<u64>,
    #[serde(default)]
    pub hosts: Vec<String>,
    /// 1-based frame numbers of the first occurrences.
    #[serde(default)]
    pub frames: Vec<u64>,
    /// A Wireshark display filter that shows the packets.
    #[serde(default)]
    pub display_filter: String,
}

impl Finding {
    pub fn new(analysis: &str, severity: Severity, summary: impl Into<String>) -> Self {
        Finding {
            analysis: analysis.to_string(),
            severity,
            summary: summary.into(),
            ..Finding::default()
        }
    }

    pub fn cause(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    pub fn evidence(mut self, evidence: Evidence) -> Self {
        self.evidence = evidence;
        self
    }

    pub fn streams(mut self, streams: impl IntoIterator<Item = u64>) -> Self {
        self.streams = streams.into_iter().take(MAX_FINDING_SCOPE).collect();
        self
    }

    pub fn hosts<S: ToString>(mut self, hosts: impl IntoIterator<Item = S>) -> Self {
        self.hosts = hosts
            .into_iter()
            .map(|h| h.to_string())
            .take(MAX_FINDING_SCOPE)
            .collect();
        self
    }

    /// Keeps the first [`MAX_FINDING_FRAMES`] frames, ascending, without zero or repeats.
    pub fn frames(mut self, frames: impl IntoIterator<Item = u64>) -> Self {
        let mut f: Vec<u64> = frames.into_iter().filter(|&f| f > 0).collect();
        f.sort_unstable();
        f.dedup();
        f.truncate(MAX_FINDING_FRAMES);
        self.frames = f;
        self
    }

    pub fn filter(mut self, display_filter: impl Into<String>) -> Self {
        self.display_filter = display_filter.into();
        self
    }
}

/// A display filter for a set of TCP streams (`tcp.stream in {1 4}`), or `tcp` when empty.
pub fn stream_filter(streams: &[u64]) -> String {
    match streams {
        [] => "tcp".to_string(),
        [s] => format!("tcp.stream == {s}"),
        many => format!(
            "tcp.stream in {{{}}}",
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_thresholds_pick_the_highest_level_reached() {
        let t = [Some(1.0), Some(3.0), Some(5.0), None];
        assert_eq!(Severity::by_thresholds(0.5, t), Severity::Info);
        assert_eq!(Severity::by_thresholds(3.0, t), Severity::Medium);
        assert_eq!(Severity::by_thresholds(99.0, t), Severity::High);
    }

    #[test]
    fn every_cause_word_parses_back_to_its_cause() {
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).expect("serializes");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn evidence_keeps_its_order_through_json() {
        let e = Evidence::new().with("lost", 3).with("sent", 10.5);
        let json = serde_json::to_string(&e).expect("serializes");
        assert_eq!(json, r#"{"lost":3.0,"sent":10.5}"#);
        let back: Evidence = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, e);
    }

    #[test]
    fn a_finding_keeps_its_first_frames_sorted_and_unique() {
        let f = Finding::new("x", Severity::Low, "s").frames([9, 3, 3, 0, 12]);
        assert_eq!(f.frames, vec![3, 9, 12]);
    }

    #[test]
    fn stream_filters_name_one_or_several_streams() {
        assert_eq!(stream_filter(&[4]), "tcp.stream == 4");
        assert_eq!(stream_filter(&[1, 4]), "tcp.stream in {1 4}");
    }
}
