//! The analyses. Each one lives in its own file, implements [`Analyzer`], and is listed once in
//! [`registry`]; it fills its own typed section of the [`Report`](crate::report::Report).

use crate::capture::ReadSummary;
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{Direction, FlowKey};
use crate::report::Report;
use crate::tcp::TcpAnalysis;
use crate::Options;

pub mod brute_force_detection;
pub mod c2_beaconing_detection;
pub mod conversations;
pub mod data_exfiltration_detection;
pub mod ddos_detection;
pub mod dns;
pub mod dns_tunneling_detection;
pub mod health_score;
pub mod lateral_movement_detection;
pub mod port_scan_detection;
pub mod protocol_distribution;
pub mod retransmission;
pub mod security;
pub mod tcp_handshake;
pub mod timestamps;
pub mod top_talkers;

/// The protocol a frame counts for at layer 4. Fragmented datagrams count once, on the frame
/// that completes them, as tshark's reassembly does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer4 {
    Tcp,
    Udp,
    Icmp,
    Other,
}

/// What the engine worked out about a packet before the analyses see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketMeta {
    /// Symmetric 5-tuple and direction, for IP packets.
    pub flow: Option<(FlowKey, Direction)>,
    /// TCP stream and sequence-analysis flags (default for non-TCP packets).
    pub tcp: TcpAnalysis,
    pub layer4: Option<Layer4>,
}

/// What the analyses get at the end.
pub struct Finish<'a> {
    pub read: &'a ReadSummary,
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    pub tcp_streams: u64,
    pub config: &'a Config,
    pub options: &'a Options,
}

impl Finish<'_> {
    pub fn duration_s(&self) -> f64 {
        match (self.first_ts_ns, self.last_ts_ns) {
            (Some(a), Some(b)) => (b - a).max(0) as f64 / 1e9,
            _ => 0.0,
        }
    }
}

/// One analysis: sees every packet once, in order, then writes its section.
pub trait Analyzer {
    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta);
    fn finish(self: Box<Self>, end: &Finish<'_>, report: &mut Report);
}

/// Every analysis, in report order. `health_score` reads the other sections, so it stays last.
pub fn registry(config: &Config, options: &Options) -> Vec<Box<dyn Analyzer>> {
    vec![
        Box::new(timestamps::Timestamps::new(config, options)),
        Box::new(tcp_handshake::TcpHandshake::new(config, options)),
        Box::new(retransmission::Retransmission::new(config, options)),
        Box::new(top_talkers::TopTalkers::new(options)),
        Box::new(dns::Dns::new(config, options)),
        Box::new(protocol_distribution::ProtocolDistribution::default()),
        Box::new(port_scan_detection::PortScanDetection::new(config, options)),
        Box::new(brute_force_detection::BruteForceDetection::new(
            config, options,
        )),
        Box::new(ddos_detection::DdosDetection::new(config, options)),
        Box::new(dns_tunneling_detection::DnsTunnelingDetection::new(
            config, options,
        )),
        Box::new(data_exfiltration_detection::DataExfiltrationDetection::new(
            config, options,
        )),
        Box::new(c2_beaconing_detection::C2BeaconingDetection::new(
            config, options,
        )),
        Box::new(lateral_movement_detection::LateralMovementDetection::new(
            config, options,
        )),
        Box::new(conversations::Conversations::new(options)),
        Box::new(health_score::HealthScore),
    ]
}
