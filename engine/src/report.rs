//! The report: v5's top-level keys (in v5's order) plus `schema_version` and `conversations`.
//! Every list is capped (top N plus a total count), so a report stays small for any capture.

use serde::{Deserialize, Serialize};

use crate::analyzers::{
    arp_spoofing_detection::ArpSpoofingReport, asymmetric_traffic::AsymmetricTrafficReport,
    brute_force_detection::BruteForceReport, burst::BurstReport,
    c2_beaconing_detection::C2BeaconingReport, conversations::ConversationsReport,
    data_exfiltration_detection::DataExfiltrationReport, ddos_detection::DdosReport,
    dns::DnsReport, dns_tunneling_detection::DnsTunnelingReport, health_score::HealthScoreReport,
    icmp::IcmpReport, ip_fragmentation::IpFragmentationReport, jitter::JitterReport,
    lateral_movement_detection::LateralMovementReport, port_scan_detection::PortScanReport,
    protocol_distribution::ProtocolDistributionReport, retransmission::RetransmissionReport,
    rtt::RttReport, sack::SackReport, service_classification::ServiceClassificationReport,
    syn_retransmissions::SynRetransmissionsReport, tcp_handshake::HandshakeReport,
    tcp_reset::TcpResetReport, tcp_timeout::TcpTimeoutReport, tcp_window::TcpWindowReport,
    temporal::TemporalReport, throughput::ThroughputReport, timestamps::TimestampsReport,
    top_talkers::TopTalkersReport, transfers::TransfersReport,
};
use crate::diagnosis::Diagnosis;
use crate::finding::Finding;

/// Longest list kept for findings (retransmissions, gaps, DNS errors...).
pub const MAX_FINDINGS: usize = 100;
/// Longest list kept for rankings (top talkers, worst flows...).
pub const MAX_RANKED: usize = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: String,
    /// Why the network hurts: ranked causes, built from [`Report::findings`]. First, as an
    /// engineer reads it first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<TimestampsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_handshake: Option<HandshakeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retransmission: Option<RetransmissionReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt: Option<RttReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_window: Option<TcpWindowReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_reset: Option<TcpResetReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_talkers: Option<TopTalkersReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_retransmissions: Option<SynRetransmissionsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_timeout: Option<TcpTimeoutReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<BurstReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporal: Option<TemporalReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_distribution: Option<ProtocolDistributionReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<JitterReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_classification: Option<ServiceClassificationReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_scan_detection: Option<PortScanReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brute_force_detection: Option<BruteForceReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddos_detection: Option<DdosReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_tunneling_detection: Option<DnsTunnelingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_exfiltration_detection: Option<DataExfiltrationReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub c2_beaconing_detection: Option<C2BeaconingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lateral_movement_detection: Option<LateralMovementReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp_spoofing_detection: Option<ArpSpoofingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_fragmentation: Option<IpFragmentationReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asymmetric_traffic: Option<AsymmetricTrafficReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sack: Option<SackReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversations: Option<ConversationsReport>,
    /// Why each TCP conversation went as it did: loss vs reordering, think times, what limited it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfers: Option<TransfersReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_score: Option<HealthScoreReport>,
    /// What every analysis found, typed (the renderers and the diagnosis read this list).
    #[serde(default)]
    pub findings: Vec<Finding>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// Base name of the analysed file.
    pub pcap_file: String,
    /// Every frame in the file (Wireshark's frame count).
    pub total_packets: u64,
    /// Last timestamp minus first, in seconds.
    pub capture_duration: f64,
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
    /// "pcap", "pcap (nanosecond)", "pcap (modified)" or "pcapng".
    pub format: String,
    pub bytes_read: u64,
    pub link_types: Vec<String>,
    /// Frames whose link or network layer could not be decoded (other link types, cut headers).
    pub undecoded_packets: u64,
    pub flows_evicted: u64,
    /// Problems that did not stop the analysis, e.g. a file cut in the middle of a packet.
    pub warnings: Vec<String>,
    pub analysis_seconds: f64,
    pub engine_version: String,
}

impl Report {
    pub fn new(file_name: &str) -> Self {
        Report {
            schema_version: crate::SCHEMA_VERSION.to_string(),
            metadata: Metadata {
                pcap_file: file_name.to_string(),
                engine_version: env!("CARGO_PKG_VERSION").to_string(),
                ..Metadata::default()
            },
            ..Report::default()
        }
    }

    /// Takes the analysis sections `part` has (analyses that finished on another thread).
    pub fn absorb(&mut self, part: Report) {
        macro_rules! sections {
            ($($section:ident),* $(,)?) => {{
                // Every field named: a section added to the report and not here fails to build.
                let Report { schema_version: _, metadata: _, diagnosis: _, findings, $($section),* } = part;
                self.findings.extend(findings);
                $(if $section.is_some() {
                    self.$section = $section;
                })*
            }};
        }
        sections!(
            timestamps,
            tcp_handshake,
            retransmission,
            rtt,
            tcp_window,
            tcp_reset,
            top_talkers,
            throughput,
            syn_retransmissions,
            tcp_timeout,
            burst,
            temporal,
            dns,
            icmp,
            protocol_distribution,
            jitter,
            service_classification,
            port_scan_detection,
            brute_force_detection,
            ddos_detection,
            dns_tunneling_detection,
            data_exfiltration_detection,
            c2_beaconing_detection,
            lateral_movement_detection,
            arp_spoofing_detection,
            ip_fragmentation,
            asymmetric_traffic,
            sack,
            conversations,
            transfers,
            health_score,
        );
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Keeps the `n` largest items by `key` (ties keep the first-sorted by `tie`).
pub fn top_n<T, K: PartialOrd>(mut items: Vec<T>, n: usize, key: impl Fn(&T) -> K) -> Vec<T> {
    items.sort_by(|a, b| {
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    items.truncate(n);
    items
}
